"""End-to-end: the annotation app in headless Chromium, on a temp workspace with two tiny models."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from annotate.render import ONLY_A_RGB, ONLY_B_RGB, layout_image
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


def fetch_image(page, selector: str) -> np.ndarray:
    """The pixels a gr.Image currently shows, downloaded from its src."""
    source = page.locator(f"{selector} img").first.get_attribute("src")
    body = page.request.get(source).body()
    return np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))


def empty_window(mask: np.ndarray, height: int, width: int, margin: int = 12) -> tuple[int, int]:
    """Top-left (x, y) of a height×width window (plus margin) with no predicted pattern."""
    rows, cols = mask.shape
    for y in range(margin, rows - height - margin, 4):
        for x in range(margin, cols - width - margin, 4):
            if not mask[y - margin:y + height + margin, x - margin:x + width + margin].any():
                return x, y
    raise AssertionError("no empty window in the prediction to draw into")


def open_editor(page, name: str = "demo-clean") -> int:
    """Pick the first queued sample whose name has ``name``, click Correct; returns its id."""
    wait_for_change(page, "#review-header", lambda: page.locator(
        '#queue-table [data-testid$="-1"]', has_text=name).first.click(), name)
    wait_for_change(page, "#correct-header", lambda: page.click("#correct-btn"), name)
    wait_for_editor(page)
    return shown_sample(page, "#correct-header")


def screen_colour(page, point: tuple[float, float]) -> np.ndarray:
    """The RGB colour the page shows at a point."""
    shot = page.screenshot(clip={"x": point[0] - 1, "y": point[1] - 1, "width": 3, "height": 3})
    return np.asarray(Image.open(io.BytesIO(shot)).convert("RGB"))[1, 1].astype(int)


def stored_change(app, sample_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(pixels added, pixels removed) of the sample's latest pair vs its prediction."""
    with app.store() as store:
        pair = store.latest_pair(sample_id)
        saved = store.pair_mask(pair)
        predicted = store.prediction_mask(store.get_prediction_by_id(pair.prediction_id))
    return saved & ~predicted, predicted & ~saved


def test_first_sample_shows_its_sem_and_prediction(page, app) -> None:
    sample_id = shown_sample(page)
    with app.store() as store:
        sem = store.sample_image(sample_id)
        mask = store.prediction_mask(store.get_prediction(sample_id, 1))
    assert "Prediction by model v1" in page.locator("#prediction-note").inner_text()
    assert np.array_equal(fetch_image(page, "#sem-image")[..., 0], sem)
    assert np.array_equal(fetch_image(page, "#pred-image")[..., 0], layout_image(mask))


@pytest.mark.slow  # 20-30 s on 2 cores: `pytest -m slow`
def test_a_drawn_stroke_is_saved_exactly_where_drawn(page, app) -> None:
    sample_id = open_editor(page)
    page.locator("#brush-width label", has_text="32 nm").click()
    page.wait_for_timeout(500)
    with app.store() as store:
        pairs_before = store.counts().corrected_samples
        shape = store.sample_image(sample_id).shape
        predicted = store.prediction_mask(store.get_prediction(sample_id, 1))
    x0, y0 = empty_window(predicted, 9, 121)
    y, x_start, x_end = y0 + 4, x0, x0 + 120
    to_screen = editor_to_screen(page, shape)
    inside = np.argwhere(ndimage.binary_erosion(predicted, iterations=3))[0]  # (row, col)
    red, _, blue = screen_colour(page, to_screen(inside[1], inside[0]))
    assert blue > red + 40  # the prediction shows as the translucent blue layer
    brush_stroke(page, to_screen, y, x_start, x_end, 10)
    text = wait_for_change(page, "#change-summary", lambda: page.click("#save-btn"), "Saved")
    assert f"Saved sample {sample_id}" in text
    added, removed = stored_change(app, sample_id)
    rows, cols = np.nonzero(added)
    with app.store() as store:
        assert store.counts().corrected_samples == pairs_before + 1
    assert not removed.any()
    assert added[y, x_start:x_end + 1].all()  # the whole centre line of the stroke
    assert rows.min() >= y - 6 and rows.max() <= y + 6  # 8 px wide, ±1 px anti-aliasing
    assert cols.min() >= x_start - 6 and cols.max() <= x_end + 6
    assert 6 <= added[:, (x_start + x_end) // 2].sum() <= 11


def test_rectangle_tool_adds_a_rectangle_of_the_clicked_size(page, app) -> None:
    sample_id = open_editor(page)
    with app.store() as store:
        predicted = store.prediction_mask(store.get_prediction(sample_id, 1))
    x0, y0 = empty_window(predicted, 31, 51)
    page.wait_for_selector("#result-image img")
    to_screen = image_to_screen(page, "#result-image", predicted.shape[1])
    source = page.locator("#result-image img").first.get_attribute("src")
    page.mouse.click(*to_screen(x0, y0))
    page.wait_for_function("() => document.querySelector('#rect-status').innerText"
                           ".includes('First corner')")
    page.wait_for_function("(old) => { const i = document.querySelector('#result-image img');"
                           " return i && i.src !== old && i.complete; }", arg=source)
    status = wait_for_change(page, "#rect-status",
                             lambda: page.mouse.click(*to_screen(x0 + 50, y0 + 30)), "Added")
    assert "Added a 51×31 px rectangle (204×124 nm)" in status
    page.wait_for_timeout(1500)  # the editor receives the new layer
    wait_for_change(page, "#change-summary", lambda: page.click("#save-btn"), "Saved")
    added, removed = stored_change(app, sample_id)
    expected = np.zeros_like(added)
    expected[y0:y0 + 31, x0:x0 + 51] = True
    assert np.array_equal(added, expected)
    assert not removed.any()


def test_compare_shows_two_models_and_their_disagreement(page, app) -> None:
    page.get_by_role("tab", name="Compare").click()
    page.wait_for_selector("#compare-diff img")
    assert page.locator("#compare-a input").input_value() == "v1 · production"
    assert page.locator("#compare-b input").input_value() == "v2 · candidate"
    page.click("#disagree-btn")
    first_name = page.locator('#disagree-table [data-testid="cell-0-1"]')  # most disagreeing
    first_name.wait_for()
    first_name.click()
    page.wait_for_function("() => document.querySelector('#compare-summary').innerText"
                           ".includes('IoU(A, B)')")
    page.wait_for_timeout(1000)
    picture = fetch_image(page, "#compare-diff")[..., :3]
    only_a = np.all(picture == ONLY_A_RGB, axis=-1).sum()
    only_b = np.all(picture == ONLY_B_RGB, axis=-1).sum()
    assert only_a + only_b > 0


def test_a_corrupt_upload_is_reported_and_the_app_keeps_working(page, app,
                                                                tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 8)
    good = tmp_path / "good.png"
    Image.fromarray(np.tile(np.arange(64, dtype=np.uint8) * 4, (64, 1))).save(good)
    with app.store() as store:
        samples_before = store.counts().samples
    page.locator("#upload-box").get_by_text("Upload SEM images").click()
    page.locator("#upload-files input[type=file]").set_input_files([str(broken), str(good)])
    page.locator("#upload-nm textarea, #upload-nm input").first.fill("2.5")
    page.wait_for_timeout(1000)
    status = wait_for_change(page, "#upload-status", lambda: page.click("#upload-btn"),
                             "good.png", timeout_ms=60_000)
    assert "✗ broken.png" in status
    assert "✓ good.png" in status and "2.5 nm/px (as entered)" in status
    assert page.locator(".toast-body", has_text="broken.png").count() >= 1
    with app.store() as store:
        assert store.counts().samples == samples_before + 1
    shown = shown_sample(page)
    page.locator("body").press("j")  # the keyboard shortcut for Next still works
    page.wait_for_function("(old) => !document.querySelector('#review-header').innerText"
                           ".includes('Sample ' + old + ' ')", arg=shown)
    assert shown_sample(page) != shown


@pytest.mark.slow  # 20-30 s on 2 cores: `pytest -m slow`
def test_screenshots_of_every_tab(page, app) -> None:
    # Most uncertain first: a clean-profile sample with a visible prediction.
    page.locator("label", has_text="uncertainty").first.click()
    page.wait_for_timeout(1500)
    wait_for_change(page, "#review-header", lambda: page.locator(
        '#queue-table [data-testid$="-1"]', has_text="demo-clean").first.click(), "demo-clean")
    page.locator("#overlay-image img").click()  # zoom into the middle
    page.wait_for_selector("#zoom-image img")
    screenshot(page, "review")
    page.click("#correct-btn")
    wait_for_editor(page)
    screenshot(page, "correct")
    page.get_by_role("tab", name="Compare").click()
    page.wait_for_selector("#compare-diff img")
    wait_for_change(page, "#metrics-table", lambda: page.click("#evaluate-btn"), "v2",
                    timeout_ms=60_000)
    screenshot(page, "compare")
    page.get_by_role("tab", name="Models").click()
    page.get_by_role("button", name="Procedural layout").click()
    page.wait_for_timeout(1500)
    page.click("#predict-sem-btn")
    page.wait_for_selector("#predicted-sem img")
    screenshot(page, "models")
    for tab in ("Export", "Fine-tune"):
        page.get_by_role("tab", name=tab).click()
        page.wait_for_timeout(1000)
        screenshot(page, tab.lower())
    names = {p.stem for p in (Path(__file__).resolve().parents[2] / "screenshots").glob("*.png")}
    assert {"review", "correct", "compare", "models", "export", "fine-tune"} <= names
