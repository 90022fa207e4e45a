"""annotate.editing: large images are edited at reduced scale without losing untouched detail."""

from __future__ import annotations

import numpy as np
from PIL import Image

from annotate.editing import LAYER_ALPHA, edit_scale, edited_mask, editor_value

SHAPE = (40, 2048)  # wider than EDIT_MAX_PX: edited at half scale


def _returned(value: dict) -> dict:
    """The editor value as the browser sends it back untouched (RGBA arrays)."""
    return {"background": None, "composite": None,
            "layers": [np.asarray(Image.open(p).convert("RGBA")).copy() for p in value["layers"]]}


def _fine_mask() -> np.ndarray:
    """One-pixel lines: detail that a half-scale round trip would destroy."""
    mask = np.zeros(SHAPE, bool)
    mask[:, 100:1900:7] = True
    mask[10:30, 50:60] = True
    return mask


def test_images_up_to_1024_px_are_edited_at_full_scale() -> None:
    assert (edit_scale((1024, 700)), edit_scale((40, 2048))) == (1.0, 0.5)


def test_an_untouched_editor_gives_back_the_full_resolution_mask() -> None:
    base = _fine_mask()
    value = _returned(editor_value(np.zeros(SHAPE, np.uint8), base))
    assert value["layers"][0].shape == (20, 1024, 4)
    assert np.array_equal(edited_mask(value, base), base)


def test_a_stroke_at_half_scale_sets_the_matching_full_resolution_pixels() -> None:
    base = _fine_mask()
    value = _returned(editor_value(np.zeros(SHAPE, np.uint8), base))
    value["layers"][0][2:4, 990:1000] = (0, 160, 255, round(LAYER_ALPHA * 255))  # a stroke
    result = edited_mask(value, base)
    changed = result != base
    assert changed[4:8, 1980:2000].all()  # every image pixel under the stroke
    assert not changed[:4].any() and not changed[8:].any()


def test_an_upload_of_another_size_is_ignored() -> None:
    base = _fine_mask()
    stale = {"layers": [np.zeros((8, 8, 4), np.uint8)]}
    assert np.array_equal(edited_mask(stale, base), base)


def test_an_upload_still_showing_the_replaced_mask_is_stale() -> None:
    sem = np.zeros((64, 64), np.uint8)
    before = np.zeros((64, 64), bool)
    before[10:20, 10:50] = True
    after = before.copy()
    after[30:40, 10:50] = True  # a tool added a line and sent this mask to the editor
    old_upload = _returned(editor_value(sem, before))  # the browser had not drawn it yet
    assert np.array_equal(edited_mask(old_upload, after, superseded=before), after)
    assert np.array_equal(edited_mask(old_upload, after), before)  # without the guard: lost
    stroke = _returned(editor_value(sem, after))
    stroke["layers"][0][50:52, 10:20] = (0, 160, 255, round(LAYER_ALPHA * 255))
    drawn = edited_mask(stroke, after, superseded=before)  # a real stroke is kept
    assert drawn[50:52, 10:20].all() and drawn[30:40, 10:50].all()
