"""What an image file's header and tags say, read before (or without) decoding its pixels.

The format comes from the first bytes and PNG/BMP/JPEG sizes from the header, so a size limit can
be checked first. The pixel size comes from, in order: FEI/Thermo metadata (Scan.PixelWidth),
Zeiss SEM metadata (ap_image_pixel_size), ImageJ unit + resolution, TIFF or PNG/JPEG
resolution with a physical unit. Resolutions are trusted only when they give 0.01–1000 nm/px
and are not a screen/print default (72, 96, 150, 300… dpi), which every editor writes.
"""

from __future__ import annotations

import math
import struct

import tifffile

PLAUSIBLE_NM_PER_PX = (0.01, 1000.0)
COMMON_DPI = (72, 96, 100, 120, 150, 200, 240, 300, 600, 1200, 2400, 4800)
_UNIT_NM = {"nm": 1.0, "nanometer": 1.0, "um": 1e3, "µm": 1e3, "\u03bcm": 1e3, "micron": 1e3,
            "microns": 1e3, "micrometer": 1e3, "mm": 1e6, "cm": 1e7, "m": 1e9, "pm": 1e-3}
_TIFF_RESUNIT_NM = {2: 2.54e7, 3: 1e7, 4: 1e6, 5: 1e3}  # inch, cm, mm, µm (DNG)


def sniff_format(data: bytes) -> str | None:
    """The format ("png", "jpeg", "tiff" or "bmp") from the first bytes; None for any other."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if data.startswith(b"BM"):
        return "bmp"
    return None


def header_size(kind: str, data: bytes) -> tuple[int, int] | None:
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


def resolution_nm_per_px(pixels_per_unit: float, unit_nm: float, dpi: float | None = None) -> float | None:
    """nm/px from a resolution, or None when it is a default or implausible for an SEM."""
    if not pixels_per_unit > 0 or not math.isfinite(pixels_per_unit):
        return None
    if dpi is not None and any(abs(dpi - common) < 0.5 for common in COMMON_DPI):
        return None
    nm_per_px = unit_nm / pixels_per_unit
    low, high = PLAUSIBLE_NM_PER_PX
    return nm_per_px if low <= nm_per_px <= high else None


def tiff_nm_per_px(tif: tifffile.TiffFile, page: tifffile.TiffPage) -> float | None:
    """nm/px from SEM metadata or a trusted resolution tag, in the order of the module docstring."""
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
        return resolution_nm_per_px(pixels_per_unit, unit_nm) if unit_nm else None
    unit = int(page.resolutionunit)
    if unit not in _TIFF_RESUNIT_NM:
        return None
    dpi = pixels_per_unit * (2.54e7 / _TIFF_RESUNIT_NM[unit])
    return resolution_nm_per_px(pixels_per_unit, _TIFF_RESUNIT_NM[unit], dpi)


def tiff_tool(tif: tifffile.TiffFile, page: tifffile.TiffPage) -> str | None:
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
