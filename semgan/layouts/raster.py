"""Exact rasterisation of Manhattan polygons at a pixel size, and cropping into tiles.

The rule: pixel (r, c) of a window (x0, y0, x1, y1) at p nm/px is set when its centre
(x0 + (c + ½)p, y1 − (r + ½)p) lies inside a polygon, edges being half-open ([left, right),
[bottom, top)). So an edge-to-edge distance of k·p nm always covers exactly k pixel centres,
wherever the shape sits: a 100 nm line at 4 nm/px is 25 px wide, never 24 or 26.

How: each vertical edge adds ±1 (its winding contribution) to every pixel centre to its right
within its y-span. Those contributions go into a 2-D difference array; two cumulative sums
give each pixel's winding number, and the union of all polygons is "winding > 0" (every
polygon is first oriented counter-clockwise so overlapping polygons add rather than cancel).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from semgan.layouts.errors import EmptyWindowError, LayoutError, NonManhattanError
from semgan.layouts.shapes import LayoutClip, Polygon

# Coordinates closer than this (nm) count as equal when checking that edges are axis-aligned.
MANHATTAN_TOLERANCE_NM = 1e-6
# Pixel-centre positions closer than this (px) to an integer are snapped to it (float noise).
_SNAP_PX = 1e-7


def window_shape(window_nm: Sequence[float], nm_per_px: float) -> tuple[int, int]:
    """(height, width) in px of a window (x0, y0, x1, y1) at ``nm_per_px``."""
    x0, y0, x1, y1 = (float(v) for v in window_nm)
    if not nm_per_px > 0:
        raise LayoutError(f"nm_per_px must be positive, got {nm_per_px}")
    height, width = round((y1 - y0) / nm_per_px), round((x1 - x0) / nm_per_px)
    if height < 1 or width < 1:
        raise LayoutError(
            f"window {list(window_nm)} nm is smaller than one {nm_per_px} nm pixel; "
            "it must be (x0, y0, x1, y1) with x1 > x0 and y1 > y0"
        )
    return height, width


def _snap(t: np.ndarray) -> np.ndarray:
    nearest = np.round(t)
    return np.where(np.abs(t - nearest) < _SNAP_PX, nearest, t)


def _fill_vertical_edges(
    x: np.ndarray, y_bottom: np.ndarray, y_top: np.ndarray, sign: np.ndarray,
    window_nm: Sequence[float], nm_per_px: float,
) -> np.ndarray:
    """Union mask from vertical edges: each adds ``sign`` to pixel centres right of x, y in [bottom, top)."""
    height, width = window_shape(window_nm, nm_per_px)
    x0, _, _, y1 = (float(v) for v in window_nm)
    p = float(nm_per_px)
    # First column whose centre is at or right of the edge: x0 + (c + ½)p >= x.
    col = np.ceil(_snap((x - x0) / p - 0.5)).astype(np.int64)
    # Rows whose centre y1 - (r + ½)p lies in [bottom, top): r in [row_lo, row_hi).
    row_lo = np.floor(_snap((y1 - y_top) / p - 0.5)).astype(np.int64) + 1
    row_hi = np.floor(_snap((y1 - y_bottom) / p - 0.5)).astype(np.int64) + 1
    col = np.clip(col, 0, width)  # an edge left of the window acts on all of it; right: on none
    row_lo = np.clip(row_lo, 0, height)
    row_hi = np.clip(row_hi, 0, height)
    keep = (row_lo < row_hi) & (col < width) & (sign != 0)
    col, row_lo, row_hi, sign = col[keep], row_lo[keep], row_hi[keep], sign[keep]
    stride = width + 1
    size = (height + 1) * stride
    # One bincount: +sign where the edge's rows start, -sign just past where they end.
    index = np.concatenate([row_lo * stride + col, row_hi * stride + col])
    diff = np.bincount(index, weights=np.concatenate([sign, -sign]), minlength=size)
    winding = diff.astype(np.int32).reshape(height + 1, stride)  # (H+1, W+1)
    np.cumsum(winding, axis=0, out=winding)
    np.cumsum(winding, axis=1, out=winding)
    return winding[:height, :width] > 0  # (H, W)


def rasterize_rects(rects_nm: np.ndarray, window_nm: Sequence[float], nm_per_px: float) -> np.ndarray:
    """Rasterise axis-aligned rectangles given as (N, 4) rows [x0, y0, x1, y1] in nm."""
    rects = np.asarray(rects_nm, dtype=np.float64).reshape(-1, 4)
    rects = rects[(rects[:, 2] > rects[:, 0]) & (rects[:, 3] > rects[:, 1])]
    n = len(rects)
    x = np.concatenate([rects[:, 0], rects[:, 2]])
    bottom = np.concatenate([rects[:, 1], rects[:, 1]])
    top = np.concatenate([rects[:, 3], rects[:, 3]])
    sign = np.concatenate([np.ones(n), -np.ones(n)])
    return _fill_vertical_edges(x, bottom, top, sign, window_nm, nm_per_px)


def rasterize(polygons: Sequence[Polygon], window_nm: Sequence[float], nm_per_px: float) -> np.ndarray:
    """Rasterise Manhattan polygons (nm, y up) into a (H, W) bool mask, row 0 at the window top."""
    height, width = window_shape(window_nm, nm_per_px)
    arrays = [np.asarray(poly, dtype=np.float64).reshape(-1, 2) for poly in polygons]
    arrays = [a for a in arrays if len(a) >= 3]  # fewer than 3 vertices enclose nothing
    if not arrays:
        return np.zeros((height, width), dtype=bool)
    points = np.concatenate(arrays)  # (V, 2)
    counts = np.array([len(a) for a in arrays])
    starts = np.cumsum(counts) - counts
    owner = np.repeat(np.arange(len(arrays)), counts)
    following = np.arange(len(points)) + 1
    following[starts + counts - 1] = starts  # each polygon closes on its first vertex
    step = points[following] - points  # (V, 2) edge vectors
    flat = np.abs(step) > MANHATTAN_TOLERANCE_NM
    diagonal = flat[:, 0] & flat[:, 1]
    if diagonal.any():
        k = int(np.argmax(diagonal))
        poly, vertex = int(owner[k]), int(k - starts[owner[k]])
        raise NonManhattanError(
            f"polygon {poly}: edge from vertex {vertex} {points[k].tolist()} to "
            f"{points[following[k]].tolist()} nm is neither horizontal nor vertical; "
            "only Manhattan (axis-aligned) polygons can be rasterised"
        )
    # Orientation per polygon from the shoelace sum, relative to the window corner for precision.
    local = points - np.array([window_nm[0], window_nm[1]], dtype=np.float64)
    cross = local[:, 0] * local[following, 1] - local[following, 0] * local[:, 1]
    orientation = np.sign(np.bincount(owner, weights=cross, minlength=len(arrays)))
    vertical = flat[:, 1] & ~flat[:, 0]
    y_from, y_to = points[vertical, 1], points[following[vertical], 1]
    # In a counter-clockwise polygon a downward edge is a left edge: +1 to its right.
    sign = -np.sign(y_to - y_from) * orientation[owner[vertical]]
    return _fill_vertical_edges(points[vertical, 0], np.minimum(y_from, y_to),
                                np.maximum(y_from, y_to), sign, window_nm, nm_per_px)


def polygon_bounds(polygons: Sequence[Polygon]) -> np.ndarray:
    """(N, 4) rows [x0, y0, x1, y1] in nm: the bounding box of each polygon."""
    if not polygons:
        return np.zeros((0, 4))
    return np.array([[*np.min(p, axis=0), *np.max(p, axis=0)] for p in map(np.asarray, polygons)],
                    dtype=np.float64).reshape(-1, 4)


def _tile_starts(low: float, high: float, tile_nm: float, stride_nm: float, p: float) -> list[float]:
    # Starts are multiples of p in absolute nm, so tiles of one file share one pixel grid.
    if high - low <= tile_nm:
        return [round(((low + high) / 2 - tile_nm / 2) / p) * p]
    first = np.floor(low / p) * p
    starts = list(np.arange(first, high - tile_nm, stride_nm))
    last = np.ceil((high - tile_nm) / p) * p
    if not starts or last > starts[-1] + 1e-9:
        starts.append(last)  # one last tile flush with the far edge, so nothing is left out
    return [float(s) for s in starts]


def tile_layout(
    polygons: Sequence[Polygon],
    nm_per_px: float,
    size_px: int,
    stride_px: int | None = None,
    source: dict | None = None,
    window_nm: Sequence[float] | None = None,
    min_fill: float = 0.02,
    max_fill: float = 0.98,
) -> list[LayoutClip]:
    """Crop polygons (their bounding box, or ``window_nm``) into size×size tiles, skipping near-empty/full ones."""
    source = dict(source or {})
    where = f" in {source['file']}" if "file" in source else ""
    if size_px < 1 or (stride_px is not None and stride_px < 1):
        raise LayoutError(f"tile size and stride must be at least 1 px, got {size_px} and {stride_px}")
    if not nm_per_px > 0:
        raise LayoutError(f"nm_per_px must be positive, got {nm_per_px}")
    bounds = polygon_bounds(polygons)
    if len(bounds) == 0:
        raise EmptyWindowError(f"no polygons to tile{where}")
    if window_nm is None:
        window = (*bounds[:, :2].min(axis=0), *bounds[:, 2:].max(axis=0))
    else:
        window = tuple(float(v) for v in window_nm)
        window_shape(window, nm_per_px)
    wx0, wy0, wx1, wy1 = window
    hits = (bounds[:, 0] < wx1) & (bounds[:, 2] > wx0) & (bounds[:, 1] < wy1) & (bounds[:, 3] > wy0)
    if not hits.any():
        raise EmptyWindowError(f"no polygon{where} intersects the window {list(window)} nm")
    tile_nm = size_px * nm_per_px
    stride_nm = (stride_px or size_px) * nm_per_px
    tiles, fills = [], []
    for ty in _tile_starts(wy0, wy1, tile_nm, stride_nm, nm_per_px):
        for tx in _tile_starts(wx0, wx1, tile_nm, stride_nm, nm_per_px):
            tile_window = (tx, ty, tx + tile_nm, ty + tile_nm)
            inside = (bounds[:, 0] < tile_window[2]) & (bounds[:, 2] > tx) & \
                     (bounds[:, 1] < tile_window[3]) & (bounds[:, 3] > ty)
            mask = rasterize([polygons[i] for i in np.flatnonzero(inside)], tile_window, nm_per_px)
            fill = float(mask.mean())
            fills.append(fill)
            if min_fill <= fill <= max_fill:
                window_list = [round(v, 6) for v in tile_window]
                tiles.append(LayoutClip(mask, float(nm_per_px), None, {**source, "window_nm": window_list}))
    if not tiles:
        raise EmptyWindowError(
            f"all {len(fills)} tile(s){where} are nearly empty or full (fill {min(fills):.3f}–"
            f"{max(fills):.3f}, kept range [{min_fill}, {max_fill}])"
        )
    return tiles
