"""annotate.render: overlays, disagreement colours, rectangles, editor layers ↔ masks."""

from __future__ import annotations

import numpy as np
from PIL import Image

from annotate.editing import LAYER_ALPHA, editor_mask, editor_value
from annotate.render import (
    BOTH_RGB,
    ONLY_A_RGB,
    ONLY_B_RGB,
    RECT_ADD_RGB,
    RECT_REMOVE_RGB,
    change_picture,
    contour,
    disagreement_map,
    overlay,
    png_file,
    rectangle_mask,
    zoom,
)


def _square(size: int = 12, lo: int = 3, hi: int = 9) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    mask[lo:hi, lo:hi] = True
    return mask


def test_contour_is_the_one_pixel_rim_of_the_mask() -> None:
    rim = contour(_square())
    assert rim.sum() == 6 * 4 - 4
    assert not rim[4:8, 4:8].any()


def test_overlay_leaves_pixels_outside_the_mask_untouched() -> None:
    sem = np.full((12, 12), 77, np.uint8)
    picture = overlay(sem, _square(), opacity=0.5)
    assert picture.shape == (12, 12, 3)
    assert (picture[0, 0] == 77).all()
    assert not (picture[5, 5] == 77).all()


def test_disagreement_map_colours_only_a_only_b_and_both() -> None:
    sem = np.zeros((4, 4), np.uint8)
    mask_a = np.zeros((4, 4), bool)
    mask_b = np.zeros((4, 4), bool)
    mask_a[0, :2] = True
    mask_b[0, 1:3] = True
    picture = disagreement_map(sem, mask_a, mask_b)
    assert [tuple(picture[0, i]) for i in range(4)] == [ONLY_A_RGB, BOTH_RGB, ONLY_B_RGB,
                                                        (0, 0, 0)]


def test_rectangle_from_two_corners_includes_both_clicked_pixels() -> None:
    rect = rectangle_mask((20, 30), (25, 15), (4, 2))
    rows, cols = np.nonzero(rect)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (2, 15, 4, 25)
    assert rect.sum() == 14 * 22


def as_returned(value: dict) -> dict:
    """What the browser sends back for an untouched editor: the files as RGBA arrays."""
    return {"background": np.asarray(Image.open(value["background"]).convert("RGBA")),
            "layers": [np.asarray(Image.open(p).convert("RGBA")).copy() for p in value["layers"]],
            "composite": None}


def test_editor_value_round_trips_a_mask() -> None:
    value = as_returned(editor_value(np.zeros((12, 12), np.uint8), _square()))
    assert value["background"].shape == (12, 12, 4)
    assert np.array_equal(editor_mask(value), _square())


def test_rendered_pictures_are_written_once_per_content() -> None:
    first = png_file(np.full((5, 7, 3), 9, np.uint8))
    assert png_file(np.full((5, 7, 3), 9, np.uint8)) == first
    assert np.asarray(Image.open(first)).shape == (5, 7, 3)


def test_a_brush_stroke_over_the_layer_counts_as_pattern() -> None:
    value = as_returned(editor_value(np.zeros((12, 12), np.uint8), None))
    value["layers"][0][0, 0] = (0, 160, 255, round(LAYER_ALPHA * 255))  # a stroke
    value["layers"][0][0, 1] = (0, 160, 255, 20)  # faint anti-aliased fringe
    mask = editor_mask(value)
    assert (mask[0, 0], mask[0, 1], mask.sum()) == (True, False, 1)


def test_an_empty_editor_has_no_mask() -> None:
    assert editor_mask({"background": None, "layers": [], "composite": None}) is None


def test_zoom_enlarges_a_crop_around_the_point() -> None:
    picture = np.arange(100 * 100 * 3, dtype=np.uint32).reshape(100, 100, 3).astype(np.uint8)
    zoomed = zoom(picture, (99, 0), 4, window=10)
    assert zoomed.shape == (40, 40, 3)
    assert (zoomed[:4, -4:] == picture[0, 99]).all()  # clamped to the top-right corner


def test_change_picture_marks_added_and_removed_pixels() -> None:
    before = _square()
    after = before.copy()
    after[0, 0] = True
    after[5, 5] = False
    picture = change_picture(np.zeros((12, 12), np.uint8), before, after)
    assert (tuple(picture[0, 0]), tuple(picture[5, 5])) == (RECT_ADD_RGB, RECT_REMOVE_RGB)
