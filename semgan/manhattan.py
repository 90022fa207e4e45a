"""Manhattan clean-up of hand-drawn masks (the UI's "Clean up") and of predicted probabilities.

Both drop specks and small holes and straighten stair-step wobble on the pixel-boundary rings
(``semgan.rings``); vectorisation then moves each edge to its sub-pixel 0.5 crossing.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from semgan.metric_inputs import as_unit_float
from semgan.rings import PolygonError, check_pixel_size, check_shape, signed_area, trace_rings

# --- clean-up of hand-drawn masks ----------------------------------------------------------------


def _drop_small(mask: np.ndarray, min_area_px: float) -> np.ndarray:
    labels, count = ndimage.label(mask)
    if count == 0:
        return mask
    areas = np.bincount(labels.ravel())
    keep = areas >= min_area_px
    keep[0] = False
    return keep[labels]


def _fill_small_holes(mask: np.ndarray, min_area_px: float) -> np.ndarray:
    background = ~mask
    labels, count = ndimage.label(background)
    areas = np.bincount(labels.ravel(), minlength=count + 1)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    small = areas < min_area_px
    small[0] = False
    small[border] = False  # background that reaches the border is not a hole
    return mask | small[labels]


def _remove_jogs(positions: np.ndarray, vertical: np.ndarray, tolerance: int) -> tuple[np.ndarray, np.ndarray]:
    # A rectilinear ring as the positions of its edges (a column for vertical edges, a row for
    # horizontal ones; they alternate). Edge k spans positions[k-1] → positions[k+1]. A short edge
    # whose two neighbours run the same way is a jog (a stair step): merge those neighbours into one
    # edge at their length-weighted position. U-turns (line ends, notches) are never merged.
    s, v = positions.astype(np.int64), vertical.copy()
    while len(s) > 4:
        length = np.abs(np.roll(s, -1) - np.roll(s, 1))
        step = np.sign(s - np.roll(s, 2))  # direction of edge k-1
        jog = step == np.roll(step, -2)  # edge k-1 and edge k+1 run the same way
        candidates = (length == 0) | (jog & (length <= tolerance))
        if not candidates.any():
            break
        k = int(np.flatnonzero(candidates)[np.argmin(length[candidates])])
        weights = np.array([length[(k - 1) % len(s)], length[(k + 1) % len(s)]], dtype=np.float64)
        s, v = np.roll(s, 1 - k), np.roll(v, 1 - k)  # edge k now at index 1
        merged = s[0] if weights.sum() == 0 else math.floor(weights @ s[[0, 2]] / weights.sum() + 0.5)
        s, v = np.concatenate([[merged], s[3:]]), np.concatenate([v[:1], v[3:]])
    return s, v


def _ring_edges(ring: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Edge k runs from corner k to corner k+1: its position and whether it is vertical.
    vertical = (np.roll(ring, -1, axis=0) - ring)[:, 1] == 0  # constant column
    return np.where(vertical, ring[:, 1], ring[:, 0]), vertical


def _winding_raster(rings: list[tuple[np.ndarray, np.ndarray]], shape: tuple[int, int]) -> np.ndarray:
    # Non-zero winding at pixel centres: a vertical edge going N (up the screen) is a left side.
    height, width = shape
    diff = np.zeros((height + 1, width + 1), np.int32)
    for s, vertical in rings:
        k = np.flatnonzero(vertical)
        col, row_from, row_to = s[k], s[(k - 1) % len(s)], s[(k + 1) % len(s)]
        sign = np.where(row_to < row_from, 1, -1)
        lo, hi = np.minimum(row_from, row_to), np.maximum(row_from, row_to)
        np.add.at(diff, (lo, col), sign)
        np.add.at(diff, (hi, col), -sign)
    winding = np.cumsum(np.cumsum(diff, axis=0), axis=1)
    return winding[:height, :width] > 0


def clean_manhattan(
    mask_float_or_bool: np.ndarray,
    nm_per_px: float,
    min_area_nm2: float,
    threshold: float = 0.5,
    snap_tolerance_px: int = 2,
) -> np.ndarray:
    """Threshold, drop specks and small holes below ``min_area_nm2``, straighten stair-step wobble.

    Steps of at most ``snap_tolerance_px`` between two edges running the same way are removed, so
    a jittered edge becomes one axis-aligned edge. A mask with no such steps and no specks is
    returned unchanged (so a 1-px diagonal staircase is coarsened: it counts as wobble).
    """
    image = as_unit_float(check_shape(mask_float_or_bool), "mask")
    scale = check_pixel_size(nm_per_px)
    if min_area_nm2 < 0 or snap_tolerance_px < 0:
        raise PolygonError("min_area_nm2 and snap_tolerance_px must not be negative")
    min_area_px = min_area_nm2 / scale**2
    mask = _fill_small_holes(_drop_small(image >= threshold, min_area_px), min_area_px)
    if snap_tolerance_px == 0:
        return mask
    rings = [_remove_jogs(*_ring_edges(ring), snap_tolerance_px) for ring in trace_rings(mask)]
    return _winding_raster(rings, mask.shape)


# --- Manhattan vectorisation of a probability map ------------------------------------------------

SUBPIXEL_SEARCH_PX = 3  # how far across an edge the 0.5 crossing of the probability is looked for
VECTOR_MIN_AREA_NM2 = 400.0  # specks below 20 × 20 nm are dropped from a vectorised prediction


def _crossings(profile: np.ndarray, centres: np.ndarray, edge: float) -> np.ndarray:
    # Per row of ``profile`` (rows × samples across the edge): the 0.5 crossing nearest ``edge``
    # by linear interpolation between sample centres; NaN where the row never crosses 0.5.
    above = profile >= 0.5
    change = above[:, 1:] != above[:, :-1]
    a, b = profile[:, :-1], profile[:, 1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(change, (a - 0.5) / (a - b), np.nan)
    where = centres[:-1] + t * (centres[1:] - centres[:-1])
    distance = np.where(change, np.abs(where - edge), np.inf)
    nearest = np.argmin(distance, axis=1)
    picked = where[np.arange(len(where)), nearest]
    return np.where(np.isfinite(distance[np.arange(len(where)), nearest]), picked, np.nan)


def _subpixel_positions(probability: np.ndarray, s: np.ndarray, vertical: np.ndarray) -> np.ndarray:
    # Each edge moved to the median 0.5 crossing of the probability along its length (ends left
    # out where the edge is long enough); edges with no crossing stay on their pixel boundary.
    height, width = probability.shape
    out = s.astype(np.float64)
    n = len(s)
    for k in range(n):
        lo, hi = sorted((int(s[(k - 1) % n]), int(s[(k + 1) % n])))
        if hi - lo > 4:
            lo, hi = lo + 1, hi - 1
        position = int(s[k])
        first = max(position - SUBPIXEL_SEARCH_PX, 0)
        last = min(position + SUBPIXEL_SEARCH_PX, width if vertical[k] else height)
        if hi <= lo or last - first < 2:
            continue
        block = probability[lo:hi, first:last] if vertical[k] else probability[first:last, lo:hi].T
        found = _crossings(block, np.arange(first, last) + 0.5, float(position))
        found = found[np.isfinite(found)]
        if len(found):
            out[k] = float(np.median(found))
    return out


def manhattan_vectorize(
    probability: np.ndarray,
    nm_per_px: float,
    min_area_nm2: float,
    *,
    snap_tolerance_px: int = 2,
    grid_nm: float | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Manhattan outlines of a probability map with sub-pixel edges.

    The mask ``probability ≥ 0.5`` is cleaned as by :func:`clean_manhattan` (specks, small holes,
    stair steps up to ``snap_tolerance_px``); then every edge moves to the median position, along
    its length, where the probability crosses 0.5 (linear interpolation between pixel centres),
    and, with ``grid_nm``, onto the nearest multiple of that design grid (in the x-right, y-up nm
    coordinates of :func:`vector_polygons` with its origin at the image's bottom-left). Each ring is returned as
    (edge positions in pixels, float; vertical flags): edge k is a column (vertical) or a row, and
    it runs between the positions of edges k-1 and k+1, as ``_remove_jogs`` keeps them.
    """
    image = as_unit_float(check_shape(probability), "probability")
    scale = check_pixel_size(nm_per_px)
    if grid_nm is not None and not (math.isfinite(grid_nm) and grid_nm > 0):
        raise PolygonError(f"grid_nm must be a positive number of nm, got {grid_nm!r}")
    min_area_px = min_area_nm2 / scale**2
    mask = _fill_small_holes(_drop_small(image >= 0.5, min_area_px), min_area_px)
    rings = []
    for ring in trace_rings(mask):
        s, vertical = _remove_jogs(*_ring_edges(ring), snap_tolerance_px)
        positions = _subpixel_positions(image, s, vertical)
        if grid_nm is not None:  # on the grid of vector_polygons' coordinates (x right, y up)
            height = image.shape[0]
            nm = np.where(vertical, positions, height - positions) * scale
            snapped = np.round(nm / grid_nm) * grid_nm / scale
            positions = np.where(vertical, snapped, height - snapped)
        if abs(signed_area(_ring_corners(positions, vertical))) >= min_area_px:  # moved edges can shrink it
            rings.append((positions, vertical))
    return rings


def _ring_corners(positions: np.ndarray, vertical: np.ndarray) -> np.ndarray:
    # The corner after edge k, as (col, row): a vertical edge's column with the next edge's row.
    following = np.roll(positions, -1)
    return np.column_stack([np.where(vertical, positions, following), np.where(vertical, following, positions)])


def vector_raster(rings: list[tuple[np.ndarray, np.ndarray]], shape: tuple[int, int]) -> np.ndarray:
    """Rasterise :func:`manhattan_vectorize` rings: a pixel is inside when its centre is."""
    return _winding_raster([(np.floor(positions + 0.5).astype(np.int64), vertical)
                            for positions, vertical in rings], shape)


def vector_polygons(rings: list[tuple[np.ndarray, np.ndarray]], height_px: int, nm_per_px: float,
                    origin_nm: tuple[float, float] = (0.0, 0.0)) -> list[np.ndarray]:
    """:func:`manhattan_vectorize` rings as (N, 2) nm vertex arrays (x right, y up), as for GDS."""
    scale = check_pixel_size(nm_per_px)
    polygons = []
    for positions, vertical in rings:
        corners = _ring_corners(positions, vertical)
        points = np.column_stack([corners[:, 0], height_px - corners[:, 1]]).astype(np.float64)
        polygons.append(points * scale + np.asarray(origin_nm, dtype=np.float64))
    return polygons


def manhattan_mask(probability: np.ndarray, nm_per_px: float,
                   min_area_nm2: float = VECTOR_MIN_AREA_NM2) -> tuple[np.ndarray, list]:
    """A prediction's mask redrawn from its Manhattan outlines: (mask, rings of manhattan_vectorize).

    Pieces of the raster below ``min_area_nm2`` (a ring pinched to a one-pixel neck splits when
    rasterised at pixel centres) are dropped from the mask too."""
    rings = manhattan_vectorize(probability, nm_per_px, min_area_nm2)
    min_area_px = min_area_nm2 / check_pixel_size(nm_per_px) ** 2
    return _drop_small(vector_raster(rings, probability.shape), min_area_px), rings
