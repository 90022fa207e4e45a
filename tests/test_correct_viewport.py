"""Zoom and pan of the result image: windows, enlargement and clicks back to full resolution."""

from __future__ import annotations

import numpy as np

from annotate.polygon import add_vertex, apply_polygon
from annotate.viewport import describe, fit, panned, show, to_image, window, zoom_of, zoomed

BIG = (2048, 2048)
PREVIEW = 512


def test_fit_shows_the_whole_image_as_before() -> None:
    assert window(BIG, fit(BIG)) == (0, 0, 2048, 2048)
    small = (256, 256)  # enlarged 2× in the preview, clicks divided back
    assert show(np.zeros(small, np.uint8), None, PREVIEW).shape == (512, 512)
    assert to_image(small, None, PREVIEW, (101, 33)) == (50, 16)
    assert describe(BIG, None) == "Whole image (x 0–2047, y 0–2047 px)"


def test_zoom_shows_a_full_resolution_window_enlarged_by_whole_pixels() -> None:
    picture = np.arange(2048 * 2048, dtype=np.uint32).reshape(BIG)
    view = zoomed(BIG, None, zoom_of("16×"))  # 128 px around the centre, shown 4×
    assert window(BIG, view) == (960, 960, 128, 128)
    shown = show(picture, view, PREVIEW)
    assert shown.shape == (512, 512) and shown[4 * 5, 4 * 7] == picture[965, 967]
    assert to_image(BIG, view, PREVIEW, (4 * 7 + 3, 4 * 5 + 1)) == (967, 965)
    assert zoom_of("Fit") == 1 and zoom_of("4×") == 4


def test_pan_moves_half_a_window_and_stops_at_the_image_edge() -> None:
    view = zoomed(BIG, None, 4)  # 512 px window
    assert window(BIG, panned(BIG, view, 1, 0))[:2] == (768, 1024)
    for _ in range(5):
        view = panned(BIG, view, -1, -1)
    assert window(BIG, view) == (0, 0, 512, 512)
    assert describe(BIG, view) == "Zoom 4×: x 0–511, y 0–511 px"


def test_a_polygon_clicked_at_16x_lands_on_exact_full_resolution_pixels() -> None:
    view = panned(BIG, zoomed(BIG, None, 16), 1, 1)
    top, left, _, _ = window(BIG, view)
    vertices = []
    for click in [(8, 8), (45, 9), (44, 30), (9, 29)]:  # screen px of the 4× enlarged window
        vertices, _ = add_vertex(vertices, to_image(BIG, view, PREVIEW, click), radius=3)
    mask = apply_polygon(np.zeros(BIG, bool), vertices, add=True)
    expected = np.zeros(BIG, bool)
    expected[top + 2:top + 8, left + 2:left + 12] = True  # 4 screen px per image px
    assert np.array_equal(mask, expected)
