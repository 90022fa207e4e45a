"""annotate.editing: large images are edited at reduced scale without losing untouched detail."""

from __future__ import annotations

import numpy as np
from PIL import Image

from annotate.editing import LAYER_ALPHA, EditorBase, edit_scale, edited_mask, editor_value

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


def _stroke(value: dict, rows: slice, cols: slice) -> dict:
    value["layers"][0][rows, cols] = (0, 160, 255, round(LAYER_ALPHA * 255))
    return value


def test_a_zoomed_window_is_edited_at_full_resolution_and_pasted_back_in_place() -> None:
    big = np.zeros((2048, 2048), bool)
    big[::5, :] = True  # one-pixel lines every 5 px: lost at half scale
    window = (512, 1024, 1024, 1024)  # top, left, rows, cols
    base = EditorBase(big, window=window)
    value = _returned(editor_value(np.zeros(big.shape, np.uint8), big, window))
    assert value["layers"][0].shape == (1024, 1024, 4)  # full resolution, not 50 %
    assert np.array_equal(base.edited(value), big)  # untouched: every line kept
    result = base.edited(_stroke(value, slice(1, 2), slice(10, 13)))  # a 1×3 px dot
    changed = np.argwhere(result != big)
    assert changed.tolist() == [[513, 1034], [513, 1035], [513, 1036]]


def test_a_panned_editor_ignores_an_upload_of_the_window_it_showed_before() -> None:
    mask = np.zeros((2048, 2048), bool)
    mask[100:200, 100:900] = True
    old, new = (0, 0, 1024, 1024), (0, 1024, 1024, 1024)  # panned right: same size
    sem = np.zeros(mask.shape, np.uint8)
    panned = EditorBase(mask, superseded=mask, window=new, superseded_window=old)
    stale = _returned(editor_value(sem, mask, old))  # the browser still shows the left half
    assert np.array_equal(panned.edited(stale), mask)  # not pasted over the right half
    drawn = panned.edited(_stroke(_returned(editor_value(sem, mask, new)),
                                  slice(0, 4), slice(0, 4)))
    assert drawn[0:4, 1024:1028].all() and np.count_nonzero(drawn != mask) == 16
