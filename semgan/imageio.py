"""Safe image loading (PNG/TIFF/JPEG/BMP → grey float) and lossless PNG writing.

Sizes are read from the file header and checked against a pixel limit before any pixel is
decoded, so a decompression bomb is refused without allocating it. Colour becomes grey by
ITU-R BT.601 luminance (0.299 R + 0.587 G + 0.114 B, as Pillow's "L"); alpha is ignored.
Scaling to [0, 1]: 8-bit ÷ 255, 16-bit ÷ 65535; float (and 32-bit or signed integer) data
whose values all lie in [0, 1] is kept, anything else is min-max rescaled (a constant image
becomes 0). The pixel size comes from, in order: FEI/Thermo metadata (Scan.PixelWidth),
Zeiss SEM metadata (ap_image_pixel_size), ImageJ unit + resolution, TIFF or PNG/JPEG
resolution with a physical unit. Resolutions are trusted only when they give 0.01–1000 nm/px
and are not a screen/print default (72, 96, 150, 300… dpi), which every editor writes.
"""

from __future__ import annotations

import io
import math
import os
import struct
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import tifffile
from PIL import Image

from semgan.errors import SemganError

DEFAULT_MAX_PIXELS = 64_000_000
PLAUSIBLE_NM_PER_PX = (0.01, 1000.0)
COMMON_DPI = (72, 96, 100, 120, 150, 200, 240, 300, 600, 1200, 2400, 4800)
_LUMINANCE = np.array([0.299, 0.587, 0.114])
_UNIT_NM = {"nm": 1.0, "nanometer": 1.0, "um": 1e3, "µm": 1e3, "\u03bcm": 1e3, "micron": 1e3,
            "microns": 1e3, "micrometer": 1e3, "mm": 1e6, "cm": 1e7, "m": 1e9, "pm": 1e-3}
_TIFF_RESUNIT_NM = {2: 2.54e7, 3: 1e7, 4: 1e6, 5: 1e3}  # inch, cm, mm, µm (DNG)
_PIL_LOCK = threading.Lock()


class ImageError(SemganError):
    """An image file cannot be used."""


class EmptyImageError(ImageError):
    """The file has no bytes."""


class TruncatedImageError(ImageError):
    """The file starts like an image but is cut off or damaged."""


class NotAnImageError(ImageError):
    """The file is not a PNG, TIFF, JPEG or BMP image."""


class ImageTooLargeError(ImageError):
    """The image has more pixels than the allowed limit."""


class MultiPageTiffError(ImageError):
    """The TIFF holds several images (a stack or a series); which one to use is not guessed."""


class NonFiniteImageError(ImageError):
    """The image holds NaN or infinite values."""


class UnsupportedImageError(ImageError):
    """The image is valid but its shape or type cannot become one grey image."""


@dataclass(frozen=True)
class LoadedImage:
    """A grey image in [0, 1] with what the file said about it."""

    pixels: np.ndarray  # (H, W) float32 in [0, 1]
    nm_per_px: float | None  # from TIFF tags / SEM metadata when present and plausible
    bit_depth: int  # 8, 16, or 32 (float or 32-bit integer data)
    mode: str  # "grey", "rgb", "rgba" or "grey+alpha"
    source: str  # file name or "<bytes>"
    tool: str | None = None  # the instrument the TIFF names (FEI System, Make/Model tags), if any


def _sniff(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if data.startswith(b"BM"):
        return "bmp"
    return None


def _header_size(kind: str, data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG/BMP/JPEG header, None when the header is cut off."""
    if kind == "png":
        return struct.unpack(">II", data[16:24]) if len(data) >= 24 and data[12:16] == b"IHDR" else None
    if kind == "bmp":
        if len(data) < 26:
            return None
        if struct.unpack("<I", data[14:18])[0] == 12:  # OS/2 core header
            return struct.unpack("<HH", data[18:22])
        width, height = struct.unpack("<ii", data[18:26])
        return abs(width), abs(height)
    pos = 2  # JPEG: walk the marker segments up to the first start-of-frame
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):
            pos += 2
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if pos + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
            return width, height
        if marker == 0xDA:  # scan data before any frame header
            return None
        pos += 2 + struct.unpack(">H", data[pos + 2:pos + 4])[0]
    return None


def _check_size(width: int, height: int, max_pixels: int, name: str) -> None:
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"{name}: {width}×{height} = {width * height:,} pixels is above the limit of "
            f"{max_pixels:,}; crop or downsample it, or raise max_pixels if you trust the file"
        )
    if width == 0 or height == 0:
        raise UnsupportedImageError(f"{name}: the header says {width}×{height}; the image is empty")


def _resolution_nm(pixels_per_unit: float, unit_nm: float, dpi: float | None = None) -> float | None:
    """nm/px from a resolution, or None when it is a default or implausible for an SEM."""
    if not pixels_per_unit > 0 or not math.isfinite(pixels_per_unit):
        return None
    if dpi is not None and any(abs(dpi - common) < 0.5 for common in COMMON_DPI):
        return None
    nm_per_px = unit_nm / pixels_per_unit
    low, high = PLAUSIBLE_NM_PER_PX
    return nm_per_px if low <= nm_per_px <= high else None


def _tiff_nm_per_px(tif: tifffile.TiffFile, page: tifffile.TiffPage) -> float | None:
    fei = tif.fei_metadata or {}
    for section in ("Scan", "EScan", "Image"):
        width_m = fei.get(section, {}).get("PixelWidth") if isinstance(fei.get(section), dict) else None
        if isinstance(width_m, int | float) and 0 < width_m < 1:
            return float(width_m) * 1e9
    zeiss = tif.sem_metadata or {}
    entry = zeiss.get("ap_image_pixel_size") or zeiss.get("ap_pixel_size")
    if isinstance(entry, tuple) and len(entry) == 3 and isinstance(entry[1], int | float):
        unit_nm = _UNIT_NM.get(str(entry[2]).lower())
        if unit_nm is not None and entry[1] > 0:
            return float(entry[1]) * unit_nm
    if 282 not in page.tags:  # XResolution absent: nothing to trust
        return None
    pixels_per_unit = page.resolution[0]
    imagej_unit = (tif.imagej_metadata or {}).get("unit")
    if imagej_unit is not None:
        unit_nm = _UNIT_NM.get(str(imagej_unit).strip().lower())
        return _resolution_nm(pixels_per_unit, unit_nm) if unit_nm else None
    unit = int(page.resolutionunit)
    if unit not in _TIFF_RESUNIT_NM:
        return None
    dpi = pixels_per_unit * (2.54e7 / _TIFF_RESUNIT_NM[unit])
    return _resolution_nm(pixels_per_unit, _TIFF_RESUNIT_NM[unit], dpi)


def _tiff_tool(tif: tifffile.TiffFile, page: tifffile.TiffPage) -> str | None:
    """The SEM that wrote the file, where its metadata says: FEI/Thermo ``[System]`` type and
    D-number, else the baseline Make and Model tags (271, 272)."""
    system = (tif.fei_metadata or {}).get("System")
    if isinstance(system, dict):
        parts = [str(system.get(key)).strip() for key in ("SystemType", "Type", "Dnumber")
                 if system.get(key) not in (None, "")]
        if parts:
            return " ".join(dict.fromkeys(parts))[:80]
    parts = [str(page.tags[code].value).strip() for code in (271, 272)
             if code in page.tags and str(page.tags[code].value).strip()]
    return " ".join(parts)[:80] if parts else None


def _refuse_stacks(tif: tifffile.TiffFile, name: str, limit: int = 10_000) -> None:
    """MultiPageTiffError unless the file holds one full image (thumbnails and masks aside)."""
    frames = 0
    for index, page in enumerate(tif.pages):
        if index >= limit:
            break
        # NewSubfileType bit 0: a reduced-resolution copy (preview); bit 2: a transparency mask.
        if not int(getattr(page, "subfiletype", 0) or 0) & 0b101:
            frames += 1
    if frames > 1:
        more = "+" if len(tif.pages) >= limit else ""
        raise MultiPageTiffError(
            f"{name}: multi-page TIFF ({frames}{more} images); semgan reads one SEM image per "
            "file: save the frame to review as its own TIFF or PNG (ImageJ: Image > Duplicate)")


def _read_tiff(data: bytes, name: str, max_pixels: int) -> tuple[np.ndarray, float | None, str | None]:
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            _refuse_stacks(tif, name)
            page = tif.pages.first
            _check_size(int(page.imagewidth), int(page.imagelength), max_pixels, name)
            ends = [o + c for o, c in zip(page.dataoffsets, page.databytecounts, strict=False) if c]
            if ends and max(ends) > len(data):
                raise TruncatedImageError(f"{name}: TIFF pixel data ends early; the file is truncated")
            nm_per_px = _tiff_nm_per_px(tif, page)
            tool = _tiff_tool(tif, page)
            array = page.asarray()
            axes = page.axes
            if page.photometric == tifffile.PHOTOMETRIC.PALETTE and page.colormap is not None:
                array, axes = np.moveaxis(page.colormap[:, array], 0, -1), axes + "S"
            elif page.photometric == tifffile.PHOTOMETRIC.MINISWHITE and array.dtype.kind == "u":
                array = np.iinfo(array.dtype).max - array
    except ImageError:
        raise
    except (tifffile.TiffFileError, ValueError, OSError, struct.error, IndexError, KeyError) as err:
        raise TruncatedImageError(f"{name}: TIFF is truncated or damaged ({err})") from None
    if "S" in axes:  # samples (channels) last, whatever the planar configuration
        array = np.moveaxis(array, axes.index("S"), -1)
    return array, nm_per_px, tool


def _pillow_decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _read_pillow(data: bytes, kind: str, name: str, max_pixels: int) -> tuple[np.ndarray, float | None]:
    size = _header_size(kind, data)
    if size is None:
        raise TruncatedImageError(f"{name}: the {kind.upper()} header is cut off or damaged")
    _check_size(*size, max_pixels, name)
    if kind == "png" and data[24] == 16 and data[25] in (2, 4, 6):
        # Pillow reduces 16-bit colour PNGs to 8 bits; OpenCV keeps all 16.
        array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if array is None:
            raise TruncatedImageError(f"{name}: PNG is truncated or damaged")
        if data[25] == 4 and array.ndim == 3 and array.shape[-1] == 4:
            return array[..., [0, 3]], None  # OpenCV expands grey+alpha to BGRA
        return array[..., [2, 1, 0, 3][: array.shape[-1]]], None  # BGR(A) → RGB(A)
    try:
        pillow_limit = Image.MAX_IMAGE_PIXELS
        if pillow_limit is None or size[0] * size[1] <= pillow_limit:
            image = _pillow_decode(data)
        else:
            # Our own check above is the guard: lift Pillow's (process-wide, hence the lock)
            # for an image the caller's max_pixels allowed.
            with _PIL_LOCK, warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                Image.MAX_IMAGE_PIXELS = None
                try:
                    image = _pillow_decode(data)
                finally:
                    Image.MAX_IMAGE_PIXELS = pillow_limit
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as err:
        raise TruncatedImageError(f"{name}: {kind.upper()} is truncated or damaged ({err})") from None
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif image.mode in ("1", "CMYK", "YCbCr", "LAB", "HSV"):
        image = image.convert("L" if image.mode == "1" else "RGB")
    dpi = image.info.get("dpi")
    nm_per_px = _resolution_nm(float(dpi[0]), 2.54e7, float(dpi[0])) if dpi else None
    return np.asarray(image), nm_per_px


def _to_grey(array: np.ndarray, name: str) -> tuple[np.ndarray, str]:
    """Reduce (H, W), (H, W, C) or planar (C, H, W) to (H, W) float64 luminance and a mode name."""
    while array.ndim > 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 3 and array.shape[0] in (2, 3, 4) and array.shape[-1] > 4:
        array = np.moveaxis(array, 0, -1)
    if array.ndim == 2:
        return array.astype(np.float64), "grey"
    if array.ndim != 3 or array.shape[-1] not in (1, 2, 3, 4) or min(array.shape[:2]) == 0:
        raise UnsupportedImageError(
            f"{name}: pixel array of shape {array.shape} is not one grey or colour image; "
            "save a single 2-D frame (e.g. one slice of the stack)"
        )
    channels = array.shape[-1]
    if channels <= 2:
        return array[..., 0].astype(np.float64), ("grey", "grey+alpha")[channels - 1]
    return array[..., :3].astype(np.float64) @ _LUMINANCE, ("rgb", "rgba")[channels - 3]


def _scale(grey: np.ndarray, dtype: np.dtype, name: str) -> tuple[np.ndarray, int]:
    if dtype in (np.uint8, np.bool_):
        return grey / (1.0 if dtype == np.bool_ else 255.0), 8
    if dtype == np.uint16:
        return grey / 65535.0, 16
    if dtype.kind == "f" and not np.isfinite(grey).all():
        bad = int(np.size(grey) - np.isfinite(grey).sum())
        raise NonFiniteImageError(f"{name}: {bad} pixel(s) are NaN or infinite; fix or mask them first")
    if dtype.kind not in "fiu":
        raise UnsupportedImageError(f"{name}: pixel type {dtype} is not supported")
    bit_depth = 32 if dtype.kind == "f" or dtype.itemsize >= 4 else dtype.itemsize * 8
    low, high = float(grey.min()), float(grey.max())
    if low >= 0.0 and high <= 1.0:
        return grey, bit_depth
    return ((grey - low) / (high - low) if high > low else np.zeros_like(grey)), bit_depth


def load_image(source: str | Path | bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Load a PNG/TIFF/JPEG/BMP file (or its bytes) as a grey float32 image in [0, 1]."""
    if isinstance(source, bytes | bytearray | memoryview):
        data, name = bytes(source), "<bytes>"
    else:
        name = str(source)
        try:
            data = Path(source).read_bytes()
        except FileNotFoundError:
            raise ImageError(f"{name}: no such file") from None
        except OSError as err:
            raise ImageError(f"{name}: cannot read the file ({err.strerror or err})") from None
    if not data:
        raise EmptyImageError(f"{name}: the file is empty (0 bytes); re-export or re-copy it")
    kind = _sniff(data)
    if kind is None:
        raise NotAnImageError(f"{name}: not a PNG, TIFF, JPEG or BMP image; export it in one of those")
    if kind == "tiff":
        array, nm_per_px, tool = _read_tiff(data, name, max_pixels)
    else:
        (array, nm_per_px), tool = _read_pillow(data, kind, name, max_pixels), None
    if array.ndim < 2:
        raise UnsupportedImageError(f"{name}: pixel array of shape {array.shape} is not an image")
    if array.dtype.kind not in "biuf":  # complex, bytes, objects: no grey level to take
        raise UnsupportedImageError(f"{name}: pixel type {array.dtype} is not supported")
    grey, mode = _to_grey(array, name)
    pixels, bit_depth = _scale(grey, array.dtype, name)
    pixels = np.clip(pixels, 0.0, 1.0).astype(np.float32)
    return LoadedImage(pixels=pixels, nm_per_px=nm_per_px, bit_depth=bit_depth, mode=mode, source=name,
                       tool=tool)


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """[0, 1] float → uint8 with rounding (clips outside values, NaN → 0)."""
    values = np.nan_to_num(np.asarray(pixels, dtype=np.float32), nan=0.0)
    return np.rint(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8)


def encode_png(image: np.ndarray) -> bytes:
    """Lossless PNG bytes of a uint8 grey/RGB image or a bool mask (→ 0/255)."""
    image = np.asarray(image)
    if image.dtype == np.bool_:
        image = image.astype(np.uint8) * 255
    if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise UnsupportedImageError(
            f"encode_png needs an (H, W) or (H, W, 3) uint8 image or a bool mask, got "
            f"{image.dtype} {image.shape}; convert floats with to_uint8 first"
        )
    if image.ndim == 3:
        image = image[..., ::-1]  # OpenCV writes BGR
    ok, buffer = cv2.imencode(".png", np.ascontiguousarray(image), [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise ImageError(f"PNG encoding failed for an image of shape {image.shape}")
    return buffer.tobytes()


def save_png(path: str | Path, image: np.ndarray) -> None:
    """Write ``image`` as a lossless PNG atomically (temporary file + rename)."""
    path = Path(path)
    data = encode_png(image)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
