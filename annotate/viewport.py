"""Zoom and pan of the result image, so tool clicks on a large image land on exact pixels.

A 4096² image fitted into a 600 px column puts about 7 image pixels under each screen pixel.
The view shows a window of the full-resolution picture instead (1/zoom of each side), with
small windows enlarged by whole pixels; a click is mapped back through the same window, so a
tool always acts on full-resolution coordinates. A view is ``(zoom, centre x, centre y)``.
"""

from __future__ import annotations

import math

import numpy as np

from annotate import render

ZOOMS = ("Fit", "2×", "4×", "8×", "16×")
View = tuple[int, int, int]


def fit(shape: tuple[int, ...]) -> View:
    """The whole image, centred."""
    return 1, shape[1] // 2, shape[0] // 2


def zoom_of(label: str | None) -> int:
    """The zoom factor of a ZOOMS label ("Fit" is 1)."""
    return int(label.rstrip("×")) if label and label != "Fit" else 1


def window(shape: tuple[int, ...], view: View | None) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the image pixels the view shows, inside the image."""
    zoom, cx, cy = view or fit(shape)
    height, width = shape[:2]
    rows, cols = min(height, math.ceil(height / zoom)), min(width, math.ceil(width / zoom))
    top = int(np.clip(cy - rows // 2, 0, height - rows))
    left = int(np.clip(cx - cols // 2, 0, width - cols))
    return top, left, rows, cols


def show(picture: np.ndarray, view: View | None, target_px: int) -> np.ndarray:
    """The part of ``picture`` the view shows, enlarged by whole pixels up to ~target_px."""
    top, left, rows, cols = window(picture.shape, view)
    crop = picture[top:top + rows, left:left + cols]
    return render.enlarge(crop, render.display_factor(crop.shape, target_px))


def to_image(shape: tuple[int, ...], view: View | None, target_px: int,
             click_xy: tuple[int, int]) -> tuple[int, int]:
    """The image pixel (x, y) under a click at ``click_xy`` on the shown picture."""
    top, left, rows, cols = window(shape, view)
    factor = render.display_factor((rows, cols), target_px)
    x = min(int(click_xy[0]) // factor, cols - 1)
    y = min(int(click_xy[1]) // factor, rows - 1)
    return left + x, top + y


def zoomed(shape: tuple[int, ...], view: View | None, zoom: int) -> View:
    """The view at another zoom, around the same centre."""
    _, cx, cy = view or fit(shape)
    return zoom, cx, cy


def panned(shape: tuple[int, ...], view: View | None, dx: int, dy: int) -> View:
    """The view moved by half its window along x and y (dx, dy in -1, 0, 1), kept inside."""
    top, left, rows, cols = window(shape, view)
    zoom = (view or fit(shape))[0]
    cx = int(np.clip(left + cols // 2 + dx * (cols // 2), cols // 2, shape[1] - cols + cols // 2))
    cy = int(np.clip(top + rows // 2 + dy * (rows // 2), rows // 2, shape[0] - rows + rows // 2))
    return zoom, cx, cy


def describe(shape: tuple[int, ...], view: View | None) -> str:
    """What the view shows, for the line under the result image."""
    top, left, rows, cols = window(shape, view)
    zoom = (view or fit(shape))[0]
    where = f"x {left}–{left + cols - 1}, y {top}–{top + rows - 1} px"
    return f"Whole image ({where})" if zoom == 1 else f"Zoom {zoom}×: {where}"
