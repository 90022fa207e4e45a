"""Safe image loading (PNG/TIFF/JPEG/BMP → grey float) and lossless PNG writing.

Sizes are read from the file header and checked against a pixel limit before any pixel is
decoded, so a decompression bomb is refused without allocating it. Colour becomes grey by
ITU-R BT.601 luminance (0.299 R + 0.587 G + 0.114 B, as Pillow's "L"); alpha is ignored.
Scaling to [0, 1]: 8-bit ÷ 255, 16-bit ÷ 65535; float (and 32-bit or signed integer) data
whose values all lie in [0, 1] is kept, anything else is min-max rescaled (a constant image
becomes 0). The pixel size and instrument come from the file's tags (``semgan.image_meta``).
"""

from __future__ import annotations

import io
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
from semgan.image_meta import (
    header_size,
    resolution_nm_per_px,
    sniff_format,
    tiff_nm_per_px,
    tiff_tool,
)

DEFAULT_MAX_PIXELS = 64_000_000
# File suffixes of what load_image reads (it goes by the content, these pick files in folders).
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")
_LUMINANCE = np.array([0.299, 0.587, 0.114])
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


def _check_size(width: int, height: int, max_pixels: int, name: str) -> None:
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"{name}: {width}×{height} = {width * height:,} pixels is above the limit of "
            f"{max_pixels:,}; crop or downsample it, or raise max_pixels if you trust the file"
        )
    if width == 0 or height == 0:
        raise UnsupportedImageError(f"{name}: the header says {width}×{height}; the image is empty")


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
            nm_per_px = tiff_nm_per_px(tif, page)
            tool = tiff_tool(tif, page)
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
    size = header_size(kind, data)
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
    nm_per_px = resolution_nm_per_px(float(dpi[0]), 2.54e7, float(dpi[0])) if dpi else None
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
    kind = sniff_format(data)
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
