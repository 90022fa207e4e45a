"""End-to-end: attach a design to a demo sample in the Review tab, check overlay, EPE, nudge, start."""

from __future__ import annotations

import re

import pytest

from annotate.overlay_view import WORST_SHOWN
from semgan.polygons import mask_to_polygons, write_gds
from tests.e2e.helpers import screenshot, shown_sample, wait_for_change

pytestmark = pytest.mark.browser

ORIGIN_NM = (5000.0, 2000.0)  # where the demo sample's clip sits in the design's coordinates
TYPED_OFF_NM = (24.0, -16.0)  # the typed centre is this far from the true one


def _offset(note: str) -> tuple[float, float]:
    match = re.search(r"dx ([+-][\d.]+) nm, dy ([+-][\d.]+) nm", note)
    assert match, note
    return float(match.group(1)), float(match.group(2))


def test_design_overlay_of_a_demo_sample(page, app, tmp_path) -> None:
    sample_id = shown_sample(page)
    with app.store() as store:
        sample = store.get_sample(sample_id)
        truth = store.read_mask(sample.truth_sha)
    nm = sample.nm_per_px
    gds = tmp_path / "site.gds"
    write_gds(mask_to_polygons(truth, nm, ORIGIN_NM), gds, cell="TOP", layer=(34, 0))
    true_center = (ORIGIN_NM[0] + truth.shape[1] * nm / 2, ORIGIN_NM[1] + truth.shape[0] * nm / 2)
    typed = (true_center[0] - TYPED_OFF_NM[0], true_center[1] - TYPED_OFF_NM[1])

    page.locator("#design-box").get_by_text("Design overlay").first.click()
    page.locator("#design-file input[type=file]").set_input_files(str(gds))
    page.wait_for_timeout(800)  # the upload lands before the button reads it
    page.locator("#design-cell textarea, #design-cell input").first.fill("TOP")
    page.locator("#design-center textarea, #design-center input").first.fill(f"{typed[0]},{typed[1]}")
    page.locator("#design-signal label", has_text="edges").click()
    note = wait_for_change(page, "#design-note", lambda: page.click("#design-attach-btn"), "Offset",
                           timeout_ms=60_000)
    dx, dy = _offset(note)
    assert abs(dx - TYPED_OFF_NM[0]) <= nm and abs(dy - TYPED_OFF_NM[1]) <= nm
    for selector in ("#design-over-sem", "#design-over-pred", "#design-epe-map"):
        page.wait_for_selector(f"{selector} img")
    assert "mean |EPE|" in page.locator("#design-epe-summary").inner_text()
    grid = page.locator("#design-epe-table [role=grid]")
    assert grid.get_attribute("aria-rowcount") == str(WORST_SHOWN + 1)  # header + the worst 15
    assert re.search(r"(^|\s)([+-]\d+\.\d|missing)(\s|$)", grid.inner_text())

    page.locator("body").click(position={"x": 5, "y": 5})  # focus off any text field
    nudged = wait_for_change(page, "#design-note", lambda: page.keyboard.press("6"), "Nudged")
    assert _offset(nudged)[0] == pytest.approx(dx + 4.0, abs=0.11)
    with app.store() as store:
        assert store.sample_design(sample_id).registration["nudge_x_nm"] == 4.0
    screenshot(page, "design-overlay")

    header = wait_for_change(page, "#correct-header", lambda: page.click("#design-correct-btn"),
                             f"Sample {sample_id}")
    assert f"Sample {sample_id}" in header
    assert "registered design clip" in page.locator("#change-summary").inner_text()
