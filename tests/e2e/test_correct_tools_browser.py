"""End-to-end: the Correct tab's one-click tools and their undo, checked in the saved mask."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from annotate.correct_clicks import threshold_whole
from annotate.editing import move_all_edges, move_region_edges
from annotate.stamp import StampError, copy_to_matches
from annotate.threshold import threshold_in_box
from tests.e2e.helpers import (
    image_to_screen,
    show_in_review,
    shown_sample,
    wait_for_change,
    wait_for_editor,
)

pytestmark = pytest.mark.browser


def _click_image(page, width: int, x: int, y: int) -> None:
    """Click pixel (x, y) of the result image, mapped on screen right now (the page scrolls)."""
    page.locator("#result-image img").first.scroll_into_view_if_needed()
    page.mouse.click(*image_to_screen(page, "#result-image", width)(x, y))


def _click_and_wait(page, click, status_has: str) -> str:
    """Click; wait for the tool status and for the new result image to load."""
    source = page.locator("#result-image img").first.get_attribute("src")
    status = wait_for_change(page, "#rect-status", click, status_has)
    page.wait_for_function("(old) => { const i = document.querySelector('#result-image img');"
                           " return i && i.src !== old && i.complete; }", arg=source)
    return status


def _open_in_correct(page, name: str) -> int:
    """Pick the first queued sample whose name has ``name``, open it in Correct; its id."""
    sample_id = show_in_review(page, name)
    if shown_sample(page, "#correct-header") == sample_id:  # a save moved Correct onto it
        page.click("#correct-btn")
    else:
        wait_for_change(page, "#correct-header", lambda: page.click("#correct-btn"), name)
    wait_for_editor(page)
    return shown_sample(page, "#correct-header")


def test_delete_undo_then_move_edges_saves_the_moved_region(page, app) -> None:
    sample_id = _open_in_correct(page, "demo-clean")
    with app.store() as store:
        predicted = store.prediction_mask(store.get_prediction(sample_id, 1))
        nm_per_px = store.get_sample(sample_id).nm_per_px
    # the deepest point inside the pattern: a click there is in the same region even 2 px off
    depth = cv2.distanceTransform(predicted.astype(np.uint8), cv2.DIST_L2, 3)
    y, x = np.unravel_index(np.argmax(depth), depth.shape)
    page.wait_for_selector("#result-image img")
    width = predicted.shape[1]

    page.locator("#rect-mode label", has_text="Delete / fill region").click()
    status = _click_and_wait(page, lambda: _click_image(page, width, x, y), "Delete / fill region")
    assert "px changed" in status and ": 0 px changed" not in status  # the region was deleted
    _click_and_wait(page, lambda: page.click("#undo-tool-btn"), "Undid")

    page.locator("#rect-mode label", has_text="Move region edges").click()
    page.locator("#shift-nm input").fill(str(2 * nm_per_px))
    page.locator("#shift-nm input").press("Tab")
    page.wait_for_timeout(1000)
    _click_and_wait(page, lambda: _click_image(page, width, x, y), "Move region edges")
    page.wait_for_timeout(1500)  # the editor receives the new layer
    wait_for_change(page, "#change-summary", lambda: page.click("#save-btn"), "Saved")
    with app.store() as store:
        saved = store.pair_mask(store.latest_pair(sample_id))
    expected = move_region_edges(predicted, (int(x), int(y)), 2 * nm_per_px, nm_per_px)
    assert np.array_equal(saved, expected)  # the deleted region is back, then grown by 2 px
    assert saved.sum() > predicted.sum()


def test_threshold_other_side_then_move_all_edges_save_what_the_keys_did(page, app) -> None:
    # a clean image: the Review uncertainty test wants the first drifted one unsaved
    sample_id = _open_in_correct(page, "demo-clean")
    with app.store() as store:
        predicted = store.prediction_mask(store.get_prediction(sample_id, 1))
        sem = store.sample_image(sample_id)
        nm_per_px = store.get_sample(sample_id).nm_per_px
    page.wait_for_selector("#result-image img")
    height, width = predicted.shape
    corners = ((3, 2), (width - 4, height - 3))

    page.locator("#correct-header").click()
    page.keyboard.press("Shift+T")
    _click_and_wait(page, lambda: _click_image(page, width, *corners[0]), "First corner")
    status = _click_and_wait(page, lambda: _click_image(page, width, *corners[1]),
                             "Thresholded a")
    assert "the other side" in status
    page.locator("#shift-nm input").fill(str(-nm_per_px))
    page.locator("#shift-nm input").press("Tab")
    page.wait_for_timeout(1000)
    page.locator("#correct-header").click()
    page.keyboard.press("Shift+M")
    _click_and_wait(page, lambda: _click_image(page, width, 5, 5), "Move all edges by")
    page.wait_for_timeout(1500)  # the editor receives the new layer
    wait_for_change(page, "#change-summary", lambda: page.click("#save-btn"), "Saved")
    with app.store() as store:
        saved = store.pair_mask(store.latest_pair(sample_id))
    thresholded = threshold_in_box(predicted, sem, *corners, invert=True)
    expected = move_all_edges(thresholded, -nm_per_px, nm_per_px)
    assert np.array_equal(saved, expected)
    assert not np.array_equal(expected, thresholded)  # the edges did move


def _example_box(mask: np.ndarray, sem: np.ndarray) -> tuple[tuple[int, int], tuple[int, int]]:
    """Around one small feature of ``mask``, the box whose copy changes the most pixels."""
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=4)
    best, most = None, 0
    for i in range(1, count):
        x, y, w, h, area = (int(v) for v in stats[i])
        if not 30 <= area <= 600 or max(w, h) > mask.shape[0] // 5:
            continue
        pad = max(2, (max(w, h) + 1) // 2)
        box = ((x - pad, y - pad), (x + w - 1 + pad, y + h - 1 + pad))
        if min(*box[0]) < 2 or max(*box[1]) > min(mask.shape) - 3:
            continue  # clicks near the border would be clipped
        try:
            changed = int(np.count_nonzero(copy_to_matches(mask, sem, *box).mask != mask))
        except StampError:
            continue
        if changed > most:
            best, most = box, changed
    assert best is not None, "no small feature whose copy changes the mask"
    return best


def test_copy_box_to_matches_saves_the_copies(page, app) -> None:
    # a drifted image with contacts, not the first drifted one (the Review uncertainty test's)
    sample_id = _open_in_correct(page, "demo-drifted-07")
    with app.store() as store:
        predicted = store.prediction_mask(store.get_prediction(sample_id, 1))
        sem = store.sample_image(sample_id)
    page.wait_for_selector("#result-image img")
    height, width = sem.shape
    corners = ((0, 0), (width - 1, height - 1))
    # first the whole SEM thresholded, as an engineer starts, with the dark features as pattern
    invert = threshold_in_box(predicted, sem, *corners).mean() > 0.5
    thresholded = threshold_in_box(predicted, sem, *corners, invert=invert)
    page.locator("#correct-header").click()
    page.keyboard.press("Shift+T" if invert else "t")
    _click_and_wait(page, lambda: _click_image(page, width, *corners[0]), "First corner")
    _click_and_wait(page, lambda: _click_image(page, width, *corners[1]), "Thresholded a")
    box = _example_box(thresholded, sem)

    page.locator("#correct-header").click()
    page.keyboard.press("a")
    _click_and_wait(page, lambda: _click_image(page, width, *box[0]), "First corner")
    status = _click_and_wait(page, lambda: _click_image(page, width, *box[1]),
                             "Copy box to matches")
    assert "match" in status and "px changed" in status
    page.wait_for_timeout(1500)  # the editor receives the new layer
    wait_for_change(page, "#change-summary", lambda: page.click("#save-btn"), "Saved")
    with app.store() as store:
        saved = store.pair_mask(store.latest_pair(sample_id))
    expected = copy_to_matches(thresholded, sem, *box).mask
    assert np.array_equal(saved, expected)
    assert not np.array_equal(saved, thresholded)


def test_threshold_whole_image_keys_save_the_thresholded_image(page, app) -> None:
    sample_id = _open_in_correct(page, "demo-drifted-09")
    with app.store() as store:
        predicted = store.prediction_mask(store.get_prediction(sample_id, 1))
        sem = store.sample_image(sample_id)
    page.wait_for_selector("#result-image img")
    # the dark features as pattern: G keeps the side the (empty) prediction had, ⇧G the other
    invert = threshold_whole(predicted, sem).mean() > 0.5
    wrong_side = "g" if invert else "Shift+G"
    page.locator("#correct-header").click()
    _click_and_wait(page, lambda: page.keyboard.press(wrong_side), "Thresholded the whole image")
    _click_and_wait(page, lambda: page.keyboard.press("u"), "Undid")
    page.locator("#correct-header").click()
    status = _click_and_wait(page, lambda: page.keyboard.press("Shift+G" if invert else "g"),
                             "Thresholded the whole image")
    assert ("the other side" in status) == invert and "px changed" in status
    page.wait_for_timeout(1500)  # the editor receives the new layer
    wait_for_change(page, "#change-summary", lambda: page.click("#save-btn"), "Saved")
    with app.store() as store:
        saved = store.pair_mask(store.latest_pair(sample_id))
    expected = threshold_whole(predicted, sem, invert)
    assert np.array_equal(saved, expected)
    assert 0.05 < expected.mean() < 0.5  # a layout, not an empty or a filled image
