"""Mask → exact Manhattan polygons → GDSII, and the UI's "Clean up" of hand-drawn masks.

Geometry convention: pixel (r, c) of an (H, W) mask covers x in [x0 + c·p, x0 + (c+1)·p) and
y in [y1 − (r+1)·p, y1 − r·p) with y1 = y0 + H·p, where p is nm/px and (x0, y0) = ``origin_nm``
is the bottom-left corner of the image. Row 0 is the top. A pixel belongs to a polygon iff its
centre is inside it, so rasterising the polygons at the same p and origin returns the mask.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import gdstk
import numpy as np
from scipy import ndimage

from semgan.errors import SemganError
from semgan.metrics import as_unit_float

# Unit steps in (row, col) for the four directions; E, S, W, N is clockwise on screen.
_STEPS = np.array([(0, 1), (1, 0), (0, -1), (-1, 0)])


class PolygonError(SemganError):
    """A mask or polygon set that cannot be converted or written."""


def _check_shape(mask: np.ndarray, what: str = "mask") -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.size == 0:
        raise PolygonError(f"{what} must be a non-empty 2-D array (H, W), got shape {mask.shape}")
    return mask


def _check_mask(mask: np.ndarray, what: str = "mask") -> np.ndarray:
    return _check_shape(mask, what).astype(bool)


def _check_pixel_size(nm_per_px: float | None) -> float:
    if nm_per_px is None or not (math.isfinite(nm_per_px) and nm_per_px > 0):
        raise PolygonError(f"nm_per_px must be a positive number to place a mask in nm, got {nm_per_px!r}")
    return float(nm_per_px)


# --- exact outlines ---------------------------------------------------------------------------


def trace_rings(mask: np.ndarray) -> list[np.ndarray]:
    """Pixel-boundary rings of a mask as (M, 2) int (row, col) grid corners, interior on the right.

    Outer rings run clockwise on screen (positive shoelace area in (col, row)), holes the other
    way; only the corners where the direction changes are kept. Diagonal neighbours are separate.
    """
    mask = _check_mask(mask)
    width = mask.shape[1]
    padded = np.pad(mask, 1)
    inner = padded[1:-1, 1:-1]
    starts, dirs = [], []
    # (unset neighbour, start-corner offset, direction): top edge runs E, right S, bottom W, left N.
    for neighbour, offset, direction in (
        (padded[:-2, 1:-1], (0, 0), 0),
        (padded[1:-1, 2:], (0, 1), 1),
        (padded[2:, 1:-1], (1, 1), 2),
        (padded[1:-1, :-2], (1, 0), 3),
    ):
        rows, cols = np.nonzero(inner & ~neighbour)
        starts.append(np.column_stack([rows + offset[0], cols + offset[1]]))
        dirs.append(np.full(len(rows), direction))
    start = np.concatenate(starts)
    direction = np.concatenate(dirs)
    if not len(start):
        return []
    end = start + _STEPS[direction]
    key = lambda corner: corner[:, 0] * (width + 1) + corner[:, 1]  # noqa: E731
    order = np.argsort(key(start), kind="stable")
    sorted_keys = key(start)[order]
    first = np.searchsorted(sorted_keys, key(end), side="left")
    count = np.searchsorted(sorted_keys, key(end), side="right") - first
    # Where two edges leave a corner (diagonal pixels), take the right turn: it hugs the same pixel.
    nxt = order[first]
    two = count == 2
    alt = order[np.minimum(first + 1, len(order) - 1)]
    take_alt = two & (direction[alt] == (direction + 1) % 4)
    nxt = np.where(take_alt, alt, nxt)
    used = np.zeros(len(start), bool)
    rings = []
    for seed in range(len(start)):
        if used[seed]:
            continue
        cycle = [seed]
        used[seed] = True
        edge = nxt[seed]
        while edge != seed:
            cycle.append(edge)
            used[edge] = True
            edge = nxt[edge]
        cyc = np.array(cycle)
        turns = direction[cyc] != direction[np.roll(cyc, 1)]
        rings.append(start[cyc[turns]])
    return rings


def _remove_collinear(points: np.ndarray) -> np.ndarray:
    # Drop repeated points and straight-through vertices; keep 180° turns (keyhole cuts).
    points = points[np.any(points != np.roll(points, 1, axis=0), axis=1)]
    while len(points) > 2:
        before = points - np.roll(points, 1, axis=0)
        after = np.roll(points, -1, axis=0) - points
        cross = before[:, 0] * after[:, 1] - before[:, 1] * after[:, 0]
        straight = (np.abs(cross) < 1e-9) & (np.sum(before * after, axis=1) > 0)
        if not straight.any():
            break
        points = points[~straight]
    return points


def _ring_owner(ring: np.ndarray) -> tuple[int, int]:
    # The pixel on the right of the ring's first edge: rings hug one 4-connected component.
    (i, j), (i2, j2) = ring[0], ring[1]
    di, dj = np.sign(i2 - i), np.sign(j2 - j)
    return int(i - (dj < 0) - (di < 0)), int(j - (di > 0) - (dj < 0))


def mask_to_polygons(
    mask: np.ndarray, nm_per_px: float, origin_nm: tuple[float, float] = (0.0, 0.0)
) -> list[np.ndarray]:
    """Exact Manhattan outlines of a mask as (N, 2) nm arrays (x right, y up); holes as keyholes."""
    mask = _check_mask(mask)
    scale = _check_pixel_size(nm_per_px)
    height = mask.shape[0]
    labels, _ = ndimage.label(mask)  # 4-connected, as the rings are
    outers: dict[int, np.ndarray] = {}
    holes: dict[int, list[np.ndarray]] = {}
    for ring in trace_rings(mask):
        # (row, col) corners → (x, y) in pixel units with y up; reversed so outers run CCW.
        points = np.column_stack([ring[::-1, 1], height - ring[::-1, 0]]).astype(np.float64)
        owner = int(labels[_ring_owner(ring)])
        if _signed_area(points) > 0:
            outers[owner] = points
        else:
            holes.setdefault(owner, []).append(points)
    polygons = []
    for owner, outer in outers.items():
        if owner in holes:  # GDSII has no holes: let gdstk cut keyholes (exact on integer units)
            cut = gdstk.boolean(gdstk.Polygon(outer), [gdstk.Polygon(h) for h in holes[owner]], "not")
            polygons += [_remove_collinear(piece.points) for piece in cut]
        else:
            polygons.append(outer)
    return [points * scale + np.asarray(origin_nm, dtype=np.float64) for points in polygons]


def _signed_area(points: np.ndarray) -> float:
    x, y = points[:, 0], points[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


# --- GDSII --------------------------------------------------------------------------------------


def _as_polygons(polygons_or_mask, nm_per_px, origin_nm) -> list[np.ndarray]:
    # An ndarray is always a mask; a polygon set is a list (or other sequence) of (N, 2) arrays.
    if isinstance(polygons_or_mask, np.ndarray):
        return mask_to_polygons(polygons_or_mask, _check_pixel_size(nm_per_px), origin_nm)
    polygons = [np.asarray(points, dtype=np.float64) for points in polygons_or_mask]
    for index, points in enumerate(polygons):
        if points.ndim != 2 or points.shape[1] != 2 or len(points) < 3:
            raise PolygonError(f"polygon {index} must be an (N ≥ 3, 2) array of nm, got shape {points.shape}")
    return polygons


def _library(polygons_by_cell: Mapping[str, list[np.ndarray]], layer, unit_nm: float) -> gdstk.Library:
    if not (math.isfinite(unit_nm) and unit_nm > 0):
        raise PolygonError(f"unit_nm must be positive, got {unit_nm!r}")
    coords = np.concatenate([p.ravel() for ps in polygons_by_cell.values() for p in ps] or [np.zeros(0)])
    # 1 nm database grid when every vertex is on it (the usual), else 1 pm so nothing moves.
    on_nm_grid = np.allclose(coords, np.round(coords), atol=1e-6)
    library = gdstk.Library(unit=unit_nm * 1e-9, precision=1e-9 if on_nm_grid else 1e-12)
    layer_number, datatype = layer
    for name, polygons in polygons_by_cell.items():
        if not name or not isinstance(name, str):
            raise PolygonError(f"GDS cell names must be non-empty strings, got {name!r}")
        cell = library.new_cell(name)
        for points in polygons:
            cell.add(gdstk.Polygon(points / unit_nm, layer=layer_number, datatype=datatype))
    return library


def write_gds(
    polygons_or_mask: np.ndarray | Sequence[np.ndarray],
    path: str | Path,
    nm_per_px: float | None = None,
    cell: str = "CORRECTED",
    layer: tuple[int, int] = (34, 0),
    unit_nm: float = 1.0,
    origin_nm: tuple[float, float] = (0.0, 0.0),
) -> None:
    """Write a bool mask (needs ``nm_per_px``) or a list of (N, 2) nm polygons as one GDS cell."""
    polygons = _as_polygons(polygons_or_mask, nm_per_px, origin_nm)
    _library({cell: polygons}, layer, unit_nm).write_gds(str(path))


def write_gds_cells(
    masks: Mapping[str, np.ndarray],
    path: str | Path,
    nm_per_px: float,
    layer: tuple[int, int] = (34, 0),
    unit_nm: float = 1.0,
    origin_nm: tuple[float, float] = (0.0, 0.0),
) -> None:
    """Write several masks, one GDS cell each (named by the dict keys), into one library."""
    if not masks:
        raise PolygonError("write_gds_cells needs at least one mask")
    scale = _check_pixel_size(nm_per_px)
    polygons = {name: mask_to_polygons(mask, scale, origin_nm) for name, mask in masks.items()}
    _library(polygons, layer, unit_nm).write_gds(str(path))


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
    image = as_unit_float(_check_shape(mask_float_or_bool), "mask")
    scale = _check_pixel_size(nm_per_px)
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
    image = as_unit_float(_check_shape(probability), "probability")
    scale = _check_pixel_size(nm_per_px)
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
        if abs(_signed_area(_ring_corners(positions, vertical))) >= min_area_px:  # moved edges can shrink it
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
    scale = _check_pixel_size(nm_per_px)
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
    min_area_px = min_area_nm2 / _check_pixel_size(nm_per_px) ** 2
    return _drop_small(vector_raster(rings, probability.shape), min_area_px), rings
