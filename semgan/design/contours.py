"""Prediction/correction contours as GDSII and OASIS layers at the design's own coordinates.

A mask's exact Manhattan outline (``semgan.polygons.mask_to_polygons``) is placed through the
registration, so re-reading the file and rasterising it over the registered image window gives
back the same pixels.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import gdstk
import numpy as np

from semgan.design.errors import MarkerError
from semgan.design.placement import Registration, pixels_to_design
from semgan.polygons import mask_to_polygons

# Datatypes of what semgan writes beside the design layer's own number.
CONTOUR_DATATYPES: dict[str, int] = {"prediction": 100, "correction": 101, "design": 0}


def contour_polygons(mask: np.ndarray, registration: Registration) -> list[np.ndarray]:
    """The mask's outlines as (N, 2) design-coordinate polygons (nm)."""
    mask = np.asarray(mask, bool)
    height = mask.shape[0]
    polygons = []
    for points in mask_to_polygons(mask, 1.0):  # pixel-corner units, y up from the bottom edge
        corners = np.column_stack([points[:, 0] - 0.5, height - points[:, 1] - 0.5])
        polygons.append(pixels_to_design(corners, registration, mask.shape))
    return polygons


def contour_library(masks: Mapping[str, np.ndarray], registration: Registration, cell: str,
                    layer: int) -> gdstk.Library:
    """A library with one cell holding each mask on ``layer``/its datatype (CONTOUR_DATATYPES)."""
    unknown = set(masks) - set(CONTOUR_DATATYPES)
    if unknown:
        raise MarkerError(f"unknown contour kind(s) {sorted(unknown)}; use {sorted(CONTOUR_DATATYPES)}")
    polygons = {kind: contour_polygons(mask, registration) for kind, mask in masks.items()}
    coords = np.concatenate([p.ravel() for ps in polygons.values() for p in ps] or [np.zeros(0)])
    on_nm_grid = np.allclose(coords, np.round(coords), atol=1e-6)
    # 1 nm database grid when every vertex is on it, else 1 pm so nothing moves.
    library = gdstk.Library(unit=1e-9, precision=1e-9 if on_nm_grid else 1e-12)
    top = library.new_cell(cell)
    for kind, shapes in polygons.items():
        for points in shapes:
            top.add(gdstk.Polygon(points, layer=int(layer), datatype=CONTOUR_DATATYPES[kind]))
    return library


def write_contours(folder: str | Path, masks: Mapping[str, np.ndarray], registration: Registration,
                   cell: str, layer: int, stem: str = "contours") -> tuple[Path, Path]:
    """Write ``stem.gds`` and ``stem.oas`` into ``folder``; returns both paths."""
    folder = Path(folder)
    library = contour_library(masks, registration, cell, layer)
    gds, oas = folder / f"{stem}.gds", folder / f"{stem}.oas"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        library.write_gds(str(gds))
        library.write_oas(str(oas))
    except (OSError, RuntimeError) as error:
        raise MarkerError(f"cannot write contours into {folder}: {error}") from None
    return gds, oas
