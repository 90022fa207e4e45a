"""Mask → exact Manhattan polygons → GDSII (the clean-up of hand-drawn masks: ``semgan.manhattan``).

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

from semgan.rings import PolygonError, check_mask, check_pixel_size, signed_area, trace_rings

__all__ = ["PolygonError", "mask_to_polygons", "trace_rings", "write_gds", "write_gds_cells"]


# --- exact outlines ---------------------------------------------------------------------------


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
    mask = check_mask(mask)
    scale = check_pixel_size(nm_per_px)
    height = mask.shape[0]
    labels, _ = ndimage.label(mask)  # 4-connected, as the rings are
    outers: dict[int, np.ndarray] = {}
    holes: dict[int, list[np.ndarray]] = {}
    for ring in trace_rings(mask):
        # (row, col) corners → (x, y) in pixel units with y up; reversed so outers run CCW.
        points = np.column_stack([ring[::-1, 1], height - ring[::-1, 0]]).astype(np.float64)
        owner = int(labels[_ring_owner(ring)])
        if signed_area(points) > 0:
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


# --- GDSII --------------------------------------------------------------------------------------


def _as_polygons(polygons_or_mask, nm_per_px, origin_nm) -> list[np.ndarray]:
    # An ndarray is always a mask; a polygon set is a list (or other sequence) of (N, 2) arrays.
    if isinstance(polygons_or_mask, np.ndarray):
        return mask_to_polygons(polygons_or_mask, check_pixel_size(nm_per_px), origin_nm)
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
    scale = check_pixel_size(nm_per_px)
    polygons = {name: mask_to_polygons(mask, scale, origin_nm) for name, mask in masks.items()}
    _library(polygons, layer, unit_nm).write_gds(str(path))
