"""A sample's design clip: which file, cell and layer, where the site is, and its raster.

Geometry. An image of H×W px at p nm/px whose centre lies at design point (cx, cy) covers the
window (cx − W·p/2, cy − H·p/2, cx + W·p/2, cy + H·p/2); row 0 is the top (largest y), as in
``semgan.layouts.raster``. The search raster adds ``margin_px`` on every side, so a search over
±``search_nm`` correlates the image against every placement inside it.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from semgan.design.errors import DesignError
from semgan.layouts import rasterize, read_gds_cell, read_glp
from semgan.layouts.io import layout_kind
from semgan.layouts.raster import polygon_bounds

# "x12345_y-678", "X=12.3,Y=4.5", "cx 100 cy 200", "center_nm=100,200" in a name or TIFF text.
_CENTER_RE = re.compile(
    r"(?:center(?:_nm)?\s*[=:]\s*(?P<a>-?\d+(?:\.\d+)?)\s*[,;/ ]\s*(?P<b>-?\d+(?:\.\d+)?))|"
    r"(?:(?<![a-z])c?x\s*[=_:]?\s*(?P<x>-?\d+(?:\.\d+)?)[\s,;_]*c?y\s*[=_:]?\s*(?P<y>-?\d+(?:\.\d+)?))",
    re.IGNORECASE)
DEFAULT_SEARCH_NM = 200.0
MAX_SEARCH_PX = 512  # one side of the margin; beyond this the FFT search gets slow and memory-hungry


@dataclass(frozen=True)
class DesignSource:
    """Where a sample's design comes from: the layout file, its cell and layer/datatype."""

    path: str
    cell: str | None  # None: the single top cell (ignored for .glp)
    layer: tuple[int, int]

    def to_dict(self) -> dict:
        """JSON-serialisable form."""
        return {"path": self.path, "cell": self.cell, "layer": list(self.layer)}

    @classmethod
    def from_dict(cls, data: dict) -> DesignSource:
        """Inverse of ``to_dict``."""
        return cls(str(data["path"]), data["cell"], (int(data["layer"][0]), int(data["layer"][1])))


@dataclass(frozen=True)
class DesignLayout:
    """The polygons (nm, y up) of one cell and layer, flattened, with the name of the cell."""

    source: DesignSource
    polygons: list[np.ndarray]
    cell_name: str

    @property
    def bounds_nm(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of all polygons."""
        boxes = polygon_bounds(self.polygons)
        return (*boxes[:, :2].min(axis=0), *boxes[:, 2:].max(axis=0))


@dataclass(frozen=True)
class DesignClip:
    """The design rasterised at a sample's pixel size around the believed site centre."""

    mask: np.ndarray  # (H + 2·margin, W + 2·margin) bool, row 0 at the top
    nm_per_px: float
    center_nm: tuple[float, float]  # the believed image centre (design coordinates)
    image_shape: tuple[int, int]  # (H, W) of the SEM image
    margin_px: int

    def to_dict(self) -> dict:
        """JSON-serialisable description (without the raster)."""
        data = asdict(self)
        data.pop("mask")
        return data


def parse_layer(text: str) -> tuple[int, int]:
    """``"34/0"`` (or ``"34"``) → ``(34, 0)``."""
    parts = str(text).strip().split("/")
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        numbers = []
    if len(numbers) == 1:
        numbers.append(0)
    if len(numbers) != 2 or min(numbers) < 0:
        raise DesignError(f"layer must be LAYER/DATATYPE like 34/0, got {text!r}")
    return numbers[0], numbers[1]


def parse_center(text: str) -> tuple[float, float]:
    """``"1200,-340.5"`` (nm) → ``(1200.0, -340.5)``."""
    parts = [p for p in re.split(r"[,;\s]+", str(text).strip()) if p]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 2 or not np.all(np.isfinite(values)):
        raise DesignError(f"the site centre must be 'X,Y' in nm, got {text!r}")
    return values[0], values[1]


def center_from_text(text: str) -> tuple[float, float] | None:
    """A site centre (nm) written in a file name or TIFF description, or None."""
    match = _CENTER_RE.search(text or "")
    if match is None:
        return None
    a, b = (match.group("a"), match.group("b")) if match.group("a") else (match.group("x"), match.group("y"))
    return float(a), float(b)


def center_from_file(path: str | Path) -> tuple[float, float] | None:
    """A site centre from an image's file name, else from its TIFF ImageDescription, else None."""
    path = Path(path)
    found = center_from_text(path.stem)
    if found is not None or path.suffix.lower() not in (".tif", ".tiff") or not path.is_file():
        return found
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            description = tif.pages[0].description or ""
    except (OSError, ValueError, tifffile.TiffFileError):
        return None
    return center_from_text(description)


def load_design(source: DesignSource) -> DesignLayout:
    """Read the polygons of ``source`` (GDS/OASIS through gdstk, or a .glp clip)."""
    if layout_kind(source.path) == "glp":
        return DesignLayout(source, read_glp(source.path), Path(source.path).stem)
    polygons, cell_name = read_gds_cell(source.path, source.cell, source.layer)
    return DesignLayout(source, polygons, cell_name)


def image_window(center_nm: tuple[float, float], shape: tuple[int, int], nm_per_px: float,
                 margin_px: int = 0) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) nm of an image of ``shape`` centred at ``center_nm``, grown by a margin."""
    height, width = shape
    half_w, half_h = (width / 2 + margin_px) * nm_per_px, (height / 2 + margin_px) * nm_per_px
    cx, cy = center_nm
    return cx - half_w, cy - half_h, cx + half_w, cy + half_h


def rasterize_clip(layout: DesignLayout, center_nm: tuple[float, float], image_shape: tuple[int, int],
                   nm_per_px: float, search_nm: float = DEFAULT_SEARCH_NM) -> DesignClip:
    """The design around ``center_nm`` at the image's pixel size, with ±``search_nm`` of margin."""
    if not nm_per_px > 0:
        raise DesignError(f"nm_per_px must be positive, got {nm_per_px}")
    if not search_nm >= 0:
        raise DesignError(f"the search radius must not be negative, got {search_nm} nm")
    margin = int(np.ceil(search_nm / nm_per_px))
    if margin > MAX_SEARCH_PX:
        raise DesignError(f"a ±{search_nm:g} nm search is {margin} px at {nm_per_px:g} nm/px; "
                          f"at most {MAX_SEARCH_PX} px: narrow it or type the site centre")
    window = image_window(center_nm, image_shape, nm_per_px, margin)
    mask = rasterize(layout.polygons, window, nm_per_px)
    if not mask.any():
        raise DesignError(f"the design has no polygon within ±{search_nm:g} nm of the site centre "
                          f"({center_nm[0]:g}, {center_nm[1]:g}) nm; the cell spans "
                          f"{[round(v, 1) for v in layout.bounds_nm]} nm")
    return DesignClip(mask, float(nm_per_px), (float(center_nm[0]), float(center_nm[1])),
                      (int(image_shape[0]), int(image_shape[1])), margin)


def search_window(layout: DesignLayout, window_nm: tuple[float, float, float, float] | None = None,
                  ) -> tuple[tuple[float, float], float]:
    """(centre, radius nm) of an automatic search over ``window_nm`` (default: the whole cell)."""
    x0, y0, x1, y1 = window_nm if window_nm is not None else layout.bounds_nm
    if not (x1 > x0 and y1 > y0):
        raise DesignError(f"the search window must be (x0, y0, x1, y1) with x1 > x0 and y1 > y0, "
                          f"got {window_nm}")
    return ((x0 + x1) / 2, (y0 + y1) / 2), max(x1 - x0, y1 - y0) / 2


def registered_mask(layout: DesignLayout, center_nm: tuple[float, float], image_shape: tuple[int, int],
                    nm_per_px: float) -> np.ndarray:
    """The design rasterised exactly on the image's pixels, the image centre at ``center_nm``."""
    return rasterize(layout.polygons, image_window(center_nm, image_shape, nm_per_px), nm_per_px)
