"""Image loading: formats, bit depths, colour → grey, pixel size metadata, and every refusal."""

from __future__ import annotations

import io
import struct
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image

from semgan.errors import SemganError
from semgan.imageio import (
    EmptyImageError,
    ImageError,
    ImageTooLargeError,
    MultiPageTiffError,
    NonFiniteImageError,
    NotAnImageError,
    TruncatedImageError,
    UnsupportedImageError,
    encode_png,
    load_image,
    save_png,
    to_uint8,
)


def _pil_bytes(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def _tiff_bytes(data: np.ndarray, **kwargs) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, data, **kwargs)
    return buffer.getvalue()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png_header_only(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)


NOISE = np.random.default_rng(0).integers(0, 256, (48, 64), dtype=np.uint8)


def test_image_errors_are_semgan_errors() -> None:
    assert issubclass(ImageError, SemganError)
    assert issubclass(ImageTooLargeError, ImageError)


def test_save_then_load_grey_png_is_lossless(tmp_path: Path) -> None:
    save_png(tmp_path / "a.png", NOISE)
    loaded = load_image(tmp_path / "a.png")
    assert loaded.pixels.dtype == np.float32 and loaded.pixels.shape == (48, 64)
    assert np.array_equal(to_uint8(loaded.pixels), NOISE)
    assert (loaded.bit_depth, loaded.mode, loaded.nm_per_px) == (8, "grey", None)
    assert loaded.source == str(tmp_path / "a.png")


def test_save_png_mask_is_0_255_and_leaves_no_temp_file(tmp_path: Path) -> None:
    save_png(tmp_path / "m.png", np.eye(4, dtype=bool))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "m.png")), np.eye(4, dtype=np.uint8) * 255)
    assert [p.name for p in tmp_path.iterdir()] == ["m.png"]


def test_encode_png_refuses_floats() -> None:
    with pytest.raises(UnsupportedImageError, match="to_uint8"):
        encode_png(np.zeros((4, 4), np.float32))


def test_to_uint8_rounds_and_clips() -> None:
    assert to_uint8(np.array([0.0, 0.5, 1.0, 1.2, -0.1, 0.002])).tolist() == [0, 128, 255, 255, 0, 1]


def test_16_bit_png_scales_65535_to_one() -> None:
    data = cv2.imencode(".png", np.array([[0, 65535], [32768, 1]], np.uint16))[1].tobytes()
    loaded = load_image(data)
    assert loaded.bit_depth == 16 and loaded.mode == "grey"
    assert loaded.pixels.ravel().tolist() == pytest.approx([0.0, 1.0, 32768 / 65535, 1 / 65535])


def test_16_bit_rgb_png_keeps_16_bit_precision() -> None:
    rgb = np.zeros((2, 2, 3), np.uint16)
    rgb[..., 1] = 1000  # green only; 8-bit would round this to 0.0153 or 0.0157
    loaded = load_image(cv2.imencode(".png", rgb[..., ::-1])[1].tobytes())
    assert loaded.mode == "rgb" and loaded.bit_depth == 16
    assert loaded.pixels[0, 0] == pytest.approx(0.587 * 1000 / 65535, rel=1e-5)


def test_rgb_png_becomes_bt601_luminance() -> None:
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[0, 0] = (255, 0, 0)
    rgb[0, 1] = (0, 255, 0)
    rgb[0, 2] = (0, 0, 255)
    loaded = load_image(_pil_bytes(Image.fromarray(rgb), "PNG"))
    assert loaded.mode == "rgb"
    assert loaded.pixels[0].tolist() == pytest.approx([0.299, 0.587, 0.114], abs=1e-6)


def test_rgba_alpha_is_ignored() -> None:
    rgba = np.full((2, 2, 4), 200, np.uint8)
    rgba[..., 3] = [[0, 255], [10, 128]]
    loaded = load_image(_pil_bytes(Image.fromarray(rgba), "PNG"))
    assert loaded.mode == "rgba"
    assert np.allclose(loaded.pixels, 200 / 255)


def test_grey_alpha_png() -> None:
    loaded = load_image(_pil_bytes(Image.new("LA", (3, 2), (100, 7)), "PNG"))
    assert loaded.mode == "grey+alpha"
    assert np.allclose(loaded.pixels, 100 / 255)


def test_palette_png_is_colour() -> None:
    image = Image.new("P", (2, 2))
    image.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    image.putpixel((0, 0), 1)
    loaded = load_image(_pil_bytes(image, "PNG"))
    assert loaded.mode == "rgb"
    assert loaded.pixels[0, 0] == pytest.approx(1.0) and loaded.pixels[1, 1] == 0.0


def test_jpeg_and_bmp_load() -> None:
    flat = Image.fromarray(np.full((16, 16), 90, np.uint8))
    jpeg = load_image(_pil_bytes(flat, "JPEG", quality=95))
    bmp = load_image(_pil_bytes(flat.convert("RGB"), "BMP"))
    assert abs(jpeg.pixels.mean() - 90 / 255) < 2 / 255
    assert (bmp.mode, bmp.bit_depth) == ("rgb", 8)
    assert np.allclose(bmp.pixels, 90 / 255)


def test_16_bit_tiff_scales_65535_to_one() -> None:
    loaded = load_image(_tiff_bytes(np.array([[0, 65535, 256]], np.uint16)))
    assert loaded.bit_depth == 16
    assert loaded.pixels.ravel().tolist() == pytest.approx([0.0, 1.0, 256 / 65535])


def test_float_tiff_within_unit_range_is_kept() -> None:
    loaded = load_image(_tiff_bytes(np.array([[0.0, 0.25, 1.0]], np.float32)))
    assert loaded.bit_depth == 32
    assert loaded.pixels.tolist() == [[0.0, 0.25, 1.0]]


def test_float_tiff_outside_unit_range_is_min_max_scaled() -> None:
    loaded = load_image(_tiff_bytes(np.array([[-2.0, 0.0, 6.0]], np.float32)))
    assert loaded.pixels.tolist() == [[0.0, 0.25, 1.0]]


def test_constant_float_tiff_outside_unit_range_becomes_zero() -> None:
    assert load_image(_tiff_bytes(np.full((2, 2), 7.0, np.float32))).pixels.tolist() == [[0, 0], [0, 0]]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_float_tiff_is_refused(bad: float) -> None:
    data = np.zeros((4, 4), np.float32)
    data[1, 2] = bad
    with pytest.raises(NonFiniteImageError, match="1 pixel"):
        load_image(_tiff_bytes(data))


def test_planar_rgb_tiff_becomes_grey() -> None:
    planes = np.zeros((3, 8, 8), np.uint8)
    planes[1] = 255
    loaded = load_image(_tiff_bytes(planes, photometric="rgb", planarconfig="separate"))
    assert loaded.mode == "rgb"
    assert np.allclose(loaded.pixels, 0.587)


def test_multi_page_tiff_is_refused() -> None:
    pages = np.stack([np.full((8, 8), v, np.uint8) for v in (10, 20, 30, 40, 50)])
    with pytest.raises(MultiPageTiffError, match=r"multi-page TIFF \(5 images\)"):
        load_image(_tiff_bytes(pages, photometric="minisblack"))


def test_a_tiff_with_a_preview_page_reads_its_full_image() -> None:
    buffer = io.BytesIO()
    with tifffile.TiffWriter(buffer) as tif:
        tif.write(np.full((16, 16), 200, np.uint8))
        tif.write(np.full((4, 4), 9, np.uint8), subfiletype=1)  # reduced-resolution preview
    loaded = load_image(buffer.getvalue())
    assert loaded.pixels.shape == (16, 16)
    assert np.allclose(loaded.pixels, 200 / 255)


def test_five_channel_tiff_is_unsupported() -> None:
    data = _tiff_bytes(np.zeros((5, 8, 8), np.uint8), photometric="minisblack", planarconfig="separate")
    with pytest.raises(UnsupportedImageError, match="single 2-D frame"):
        load_image(data)


def test_zero_width_png_is_unsupported() -> None:
    with pytest.raises(UnsupportedImageError, match="0×5"):
        load_image(_png_header_only(0, 5))


def test_tiff_centimetre_resolution_gives_nm_per_px() -> None:
    data = _tiff_bytes(np.zeros((4, 4), np.uint8), resolution=(2.5e6, 2.5e6), resolutionunit="CENTIMETER")
    assert load_image(data).nm_per_px == pytest.approx(4.0)


def test_tiff_300_dpi_default_is_not_a_pixel_size() -> None:
    data = _tiff_bytes(np.zeros((4, 4), np.uint8), resolution=(300, 300), resolutionunit="INCH")
    assert load_image(data).nm_per_px is None


def test_imagej_micron_resolution_gives_nm_per_px() -> None:
    data = _tiff_bytes(np.zeros((4, 4), np.uint8), imagej=True, resolution=(400.0, 400.0),
                       metadata={"unit": "um"})  # 400 px per µm
    assert load_image(data).nm_per_px == pytest.approx(2.5)


def test_fei_pixel_width_gives_nm_per_px() -> None:
    fei = "[User]\r\nDate=01/01/2024\r\n[Scan]\r\nPixelWidth=3.5e-009\r\n"
    data = _tiff_bytes(np.zeros((4, 4), np.uint8), extratags=[(34682, "s", 0, fei, True)])
    assert load_image(data).nm_per_px == pytest.approx(3.5)


def test_zeiss_image_pixel_size_gives_nm_per_px() -> None:
    zeiss = "\r\n0\r\nAP_IMAGE_PIXEL_SIZE\r\nImage Pixel Size = 1.25 nm\r\nAP_WD\r\nWD = 5.0 mm\r\n"
    data = _tiff_bytes(np.zeros((4, 4), np.uint8), extratags=[(34118, "s", 0, zeiss, True)])
    assert load_image(data).nm_per_px == pytest.approx(1.25)


def test_png_physical_resolution_gives_nm_per_px() -> None:
    image = Image.fromarray(NOISE)
    assert load_image(_pil_bytes(image, "PNG", dpi=(6.35e6, 6.35e6))).nm_per_px == pytest.approx(4.0)
    assert load_image(_pil_bytes(image, "PNG", dpi=(72, 72))).nm_per_px is None


def test_empty_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(EmptyImageError, match=r"empty\.png: the file is empty"):
        load_image(tmp_path / "empty.png")


def test_missing_file_is_an_image_error(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "gone.tif")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_png_and_jpeg_are_refused(fmt: str) -> None:
    data = _pil_bytes(Image.fromarray(NOISE), fmt)
    with pytest.raises(TruncatedImageError, match="truncated"):
        load_image(data[: len(data) * 6 // 10])


def test_png_cut_inside_its_header_is_truncated() -> None:
    with pytest.raises(TruncatedImageError, match="header"):
        load_image(_pil_bytes(Image.fromarray(NOISE), "PNG")[:20])


def test_truncated_tiff_is_refused() -> None:
    data = _tiff_bytes(NOISE)
    with pytest.raises(TruncatedImageError, match="truncated"):
        load_image(data[:-100])


def test_text_file_is_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("line width 45 nm\n")
    with pytest.raises(NotAnImageError, match=r"notes\.png: not a PNG, TIFF, JPEG or BMP"):
        load_image(path)


def test_random_bytes_are_not_an_image() -> None:
    with pytest.raises(NotAnImageError):
        load_image(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())


def test_huge_png_header_is_refused_before_decoding() -> None:
    start = time.perf_counter()
    with pytest.raises(ImageTooLargeError, match=r"100000×100000 .* max_pixels"):
        load_image(_png_header_only(100_000, 100_000))
    assert time.perf_counter() - start < 0.5


def _tiff_header_only(width: int, height: int) -> bytes:
    """A little-endian TIFF whose one IFD claims ``width``×``height`` 8-bit pixels it lacks."""
    tags = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1),
            (273, 4, 8 + 2 + 12 * 9 + 4), (277, 3, 1), (278, 4, height), (279, 4, 4_000_000_000)]
    ifd = struct.pack("<H", len(tags))
    ifd += b"".join(struct.pack("<HHII", tag, kind, 1, value) for tag, kind, value in tags)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0)


def test_huge_tiff_header_is_refused_before_decoding() -> None:
    start = time.perf_counter()
    with pytest.raises(ImageTooLargeError, match="100000×100000"):
        load_image(_tiff_header_only(100_000, 100_000))
    assert time.perf_counter() - start < 0.5


def test_pixel_limit_is_configurable() -> None:
    data = _pil_bytes(Image.fromarray(NOISE), "PNG")  # 64 × 48 = 3072 px
    with pytest.raises(ImageTooLargeError, match="3,072 pixels is above the limit of 3,000"):
        load_image(data, max_pixels=3000)
    assert load_image(data, max_pixels=3072).pixels.shape == (48, 64)


def test_own_limit_not_pillows_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow would refuse 64 × 48
    data = _pil_bytes(Image.fromarray(NOISE), "PNG")
    assert load_image(data).pixels.shape == (48, 64)
    assert Image.MAX_IMAGE_PIXELS == 1000
