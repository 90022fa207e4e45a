"""End-to-end: the polygon tool, the magic wand, the tool and brush keys — checked in the
saved mask."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest

from annotate.polygon import apply_polygon
from annotate.wand import apply_wand
from tests.e2e.helpers import (
    brush_stroke,
    editor_to_screen,
    image_to_screen,
    screenshot,
    shown_sample,
    wait_for_change,
    wait_for_editor,
)

pytestmark = pytest.mark.browser
POINT_RE = re.compile(r"x = (\d+), y = (\d+) px")
SLOW_MS = 120_000  # a tool round trip: seconds normally, far more on a shared, loaded CPU


def _open(page, name: str) -> int:
    """Pick the first queued sample whose name has ``name`` and open it in the Correct tab."""
    page.set_default_timeout(SLOW_MS)
    wait_for_change(page, "#review-header", lambda: page.locator(
        '#queue-table [data-testid$="-1"]', has_text=name).first.click(), name, SLOW_MS)
    wait_for_change(page, "#correct-header", lambda: page.click("#correct-btn"), name, SLOW_MS)
    wait_for_editor(page)
    page.wait_for_selector("#result-image img")
    return shown_sample(page, "#correct-header")


def _tool(page) -> str:
    """The tool selected in the tool radio."""
    return page.locator("#rect-mode input[type=radio]:checked").get_attribute("value")


def _press(page, key: str) -> None:
    """A key press with the focus on the page, not in a field."""
    page.locator("#correct-header").click()
    page.keyboard.press(key)


def _act(page, action, status_has: str) -> str:
    """Run ``action``; wait for the tool status and for the new result image to load."""
    source = page.locator("#result-image img").first.get_attribute("src")
    status = wait_for_change(page, "#rect-status", action, status_has, timeout_ms=SLOW_MS)
    page.wait_for_function("(old) => { const i = document.querySelector('#result-image img');"
                           " return i && i.src !== old && i.complete; }", arg=source)
    return status


def _click(page, width: int, x: int, y: int) -> None:
    """Click pixel (x, y) of the result image, mapped on screen right now (the page scrolls)."""
    page.locator("#result-image img").first.scroll_into_view_if_needed()
    page.mouse.click(*image_to_screen(page, "#result-image", width)(x, y))


def _point(status: str) -> tuple[int, int]:
    """The image pixel a status line reports."""
    x, y = POINT_RE.findall(status)[-1]
    return int(x), int(y)


def _save_and_read(page, app, sample_id: int) -> np.ndarray:
    page.wait_for_timeout(3000)  # the editor receives the new layer
    wait_for_change(page, "#change-summary", lambda: page.click("#save-btn"), "Saved",
                    timeout_ms=SLOW_MS)
    with app.store() as store:
        return store.pair_mask(store.latest_pair(sample_id))


def _empty_corner(mask: np.ndarray, side: int, margin: int = 6) -> tuple[int, int]:
    """Top-left (x, y) of a side×side window (plus margin) with no predicted pattern."""
    for y in range(margin, mask.shape[0] - side - margin, 4):
        for x in range(margin, mask.shape[1] - side - margin, 4):
            if not mask[y - margin:y + side + margin, x - margin:x + side + margin].any():
                return x, y
    raise AssertionError("no empty window in the prediction to draw into")


@pytest.mark.slow  # 20-30 s on 2 cores: `pytest -m slow`
def test_polygon_keys_vertices_undo_and_close_save_the_l_shape(page, app) -> None:
    sample_id = _open(page, "demo-clean")
    with app.store() as store:
        predicted = store.prediction_mask(store.get_prediction(sample_id, 1))
    width = predicted.shape[1]
    x0, y0 = _empty_corner(predicted, 32)
    before = page.locator("#brush-width input[type=radio]:checked").get_attribute("value")
    _press(page, "BracketRight")
    page.wait_for_timeout(300)
    after = page.locator("#brush-width input[type=radio]:checked").get_attribute("value")
    assert after != before  # ] widens the brush …
    _press(page, "BracketLeft")
    page.wait_for_timeout(300)
    assert page.locator("#brush-width input[type=radio]:checked").get_attribute("value") == before

    _press(page, "p")
    page.wait_for_function("() => document.querySelector('#rect-status').innerText"
                           ".includes('vertices on the result image')")  # the tool's hint
    assert _tool(page) == "Polygon: add [P]"
    vertices = []
    for dx, dy in [(0, 0), (30, 1), (29, 14), (15, 15), (16, 30), (0, 29)]:
        status = _act(page, lambda dx=dx, dy=dy: _click(page, width, x0 + dx, y0 + dy),
                      f"Polygon: {len(vertices) + 1} vert")
        vertices.append(_point(status))
    assert vertices[1][1] == vertices[0][1] and vertices[2][0] == vertices[1][0]  # snapped
    _act(page, lambda: _click(page, width, x0 + 8, y0 + 20), "7 vertices")  # a wrong vertex
    _act(page, lambda: _press(page, "Backspace"), "6 vertices left")
    screenshot(page, "correct-polygon-open")
    status = _act(page, lambda: _click(page, width, x0 + 1, y0 + 1), "Polygon added")
    assert "6 vertices" in status and ": 0 px changed" not in status
    saved = _save_and_read(page, app, sample_id)
    expected = apply_polygon(predicted, vertices, add=True)
    assert np.array_equal(saved, expected)
    assert saved.sum() - predicted.sum() == 31 * 31 - 15 * 16  # the L: 31² less its notch


@pytest.mark.slow  # about a minute on 2 cores: `pytest -m slow`
def test_magic_wand_remove_undo_key_and_add_save_the_sem_area(page, app) -> None:
    sample_id = _open(page, "demo-clean")
    with app.store() as store:
        predicted = store.prediction_mask(store.get_prediction(sample_id, 1))
        sem = store.sample_image(sample_id)
    width = predicted.shape[1]
    _, labels, stats, _ = cv2.connectedComponentsWithStats(predicted.astype(np.uint8),
                                                           connectivity=4)
    biggest = np.argsort(stats[1:, cv2.CC_STAT_AREA])[::-1][:2] + 1
    clicks = []
    for label in biggest:  # the middle of the two biggest predicted features
        depth = cv2.distanceTransform(np.pad(labels == label, 1).astype(np.uint8),
                                      cv2.DIST_L2, 3)[1:-1, 1:-1]
        y, x = np.unravel_index(np.argmax(depth), depth.shape)
        clicks.append((int(x), int(y)))

    _press(page, "Shift+W")
    page.wait_for_function("() => document.querySelector('#rect-status').innerText"
                           ".includes('up to the edges')")  # the tool's hint
    assert _tool(page) == "Magic wand: remove [⇧W]"
    first = _point(_act(page, lambda: _click(page, width, *clicks[0]), "Magic wand: remove at"))
    status = _act(page, lambda: _click(page, width, *clicks[1]), "Magic wand: remove at")
    assert ": 0 px changed" not in status
    _act(page, lambda: _press(page, "u"), "Undid")  # the second removal is undone
    _press(page, "w")
    page.wait_for_timeout(300)
    assert _tool(page) == "Magic wand: add [W]"
    added_at = _point(_act(page, lambda: _click(page, width, *first), "Magic wand: add at"))
    screenshot(page, "correct-wand")
    saved = _save_and_read(page, app, sample_id)
    removed = apply_wand(predicted, sem, first, add=False)
    expected = apply_wand(removed, sem, added_at, add=True)
    assert not np.array_equal(removed, predicted)
    assert np.array_equal(saved, expected)


def _open_2048(page, app, name: str, mirror: bool = False) -> tuple[int, np.ndarray]:
    """Add a 2048² sample (a demo image tiled 8 × 8, mirrored for a second one: the store keeps
    one sample per image), open it in Correct: (id, prediction)."""
    with app.store() as store:
        demo = next(s for s in store.list_samples(limit=100) if "demo-clean" in (s.name or ""))
        big = np.tile(store.sample_image(demo.id), (8, 8))
        big = np.ascontiguousarray(big[:, ::-1]) if mirror else big
        store.add_sample(big, demo.nm_per_px, "upload", tool="sim:clean", name=name)
    page.set_default_timeout(SLOW_MS)
    page.reload()
    page.wait_for_selector("#sem-image img")
    # Newest first: by drift score an unpredicted sample sits below the rows the table renders.
    page.get_by_label("date added").check()
    row = page.locator('#queue-table [data-testid$="-1"]', has_text=name).first
    row.wait_for()
    wait_for_change(page, "#review-header", row.click, name,
                    timeout_ms=180_000)  # the first view predicts the 2048² image on the CPU
    wait_for_change(page, "#correct-header", lambda: page.click("#correct-btn"), name,
                    timeout_ms=120_000)
    wait_for_editor(page)
    sample_id = shown_sample(page, "#correct-header")
    with app.store() as store:
        predicted = store.prediction_mask(store.get_prediction(sample_id, 1))
    assert predicted.shape == (2048, 2048)
    return sample_id, predicted


@pytest.mark.slow  # about a minute on 2 cores: `pytest -m slow`
def test_zoomed_polygon_on_a_2048_image_saves_exact_full_resolution_pixels(page, app) -> None:
    sample_id, predicted = _open_2048(page, app, "big-2048")

    def view(action, want: str) -> str:
        source = page.locator("#result-image img").first.get_attribute("src")
        line = wait_for_change(page, "#view-status", action, want, timeout_ms=SLOW_MS)
        page.wait_for_function("(old) => { const i = document.querySelector("
                               "'#result-image img'); return i && i.src !== old && i.complete; }",
                               arg=source)
        return line

    view(lambda: page.locator("#view-zoom label", has_text="16×").click(),
         "Zoom 16×: x 960–1087, y 960–1087 px")  # 128 px around the centre
    view(lambda: page.click("#view-right"), "x 1024–1151")  # panned by half a window
    left, top = 1024, 960
    _press(page, "p")
    page.wait_for_timeout(500)
    crop_clicks = [(10, 20), (70, 21), (69, 50), (10, 49)]  # pixels of the 128 px window
    vertices = []
    for x, y in crop_clicks:
        status = _act(page, lambda x=x, y=y: page.mouse.click(
            *image_to_screen(page, "#result-image", 128)(x, y)), f"{len(vertices) + 1} vert")
        vertices.append(_point(status))
    assert vertices == [(left + 10, top + 20), (left + 70, top + 20), (left + 70, top + 50),
                        (left + 10, top + 50)]  # exact full-resolution pixels, edges snapped
    _act(page, lambda: _press(page, "Enter"), "Polygon added")
    screenshot(page, "correct-zoom-2048")
    saved = _save_and_read(page, app, sample_id)
    assert np.array_equal(saved, apply_polygon(predicted, vertices, add=True))


@pytest.mark.slow  # about a minute on 2 cores: `pytest -m slow`
def test_zoomed_editor_brushes_a_2048_image_at_full_resolution(page, app) -> None:
    sample_id, predicted = _open_2048(page, app, "brush-2048", mirror=True)
    assert "50% scale" in page.locator("#correct-header").inner_text()
    page.locator("#brush-width label", has_text=re.compile(r"(^|\s)8 nm \(")).click()  # 2 px
    wait_for_change(page, "#view-status", lambda: page.locator(
        "#view-zoom label", has_text="2×").click(), "editor shows this window at full resolution",
        timeout_ms=SLOW_MS)
    assert "x 512–1535, y 512–1535" in page.locator("#view-status").inner_text()
    wait_for_editor(page)
    page.wait_for_timeout(1500)  # the new layer is drawn
    window = predicted[512:1536, 512:1536]
    x0, y0 = _empty_corner(window, 60)
    y, x_start, x_end = y0 + 30, x0 + 10, x0 + 50  # in the window's pixels
    to_screen = editor_to_screen(page, window.shape)
    brush_stroke(page, to_screen, y, x_start, x_end, 4)
    screenshot(page, "correct-brush-2048")
    saved = _save_and_read(page, app, sample_id)
    added, removed = saved & ~predicted, predicted & ~saved
    rows, cols = np.nonzero(added)
    assert not removed.any() and added.any()
    spread = f"rows {rows.min()}–{rows.max()}, cols {cols.min()}–{cols.max()}, y {512 + y}"
    # Where it was drawn, in full-image pixels (the screen mapping is good to a few pixels at
    # the editor's ~55 % zoom, as in the drawn-stroke test).
    assert abs(np.median(rows) - (512 + y)) <= 5, spread
    assert cols.min() >= 512 + x_start - 6 and cols.max() <= 512 + x_end + 6, spread
    # 2 px wide: at the whole image's 50 % scale the narrowest stroke would be 4 px.
    assert 1 <= added[:, 512 + (x_start + x_end) // 2].sum() <= 3, spread
