"""Page helpers for the browser tests: which sample is shown, image ↔ screen coordinates."""

from __future__ import annotations

import re
from collections.abc import Callable

from tests.e2e.conftest import SCREENSHOTS

SAMPLE_RE = re.compile(r"Sample (\d+)")


def shown_sample(page, header: str = "#review-header") -> int | None:
    """The sample id in a tab's header ("Sample 12 — …"), or None (also before its tab renders)."""
    match = SAMPLE_RE.search(text_of(page, header))
    return int(match.group(1)) if match else None


def wait_for_change(page, selector: str, action: Callable[[], None], contains: str = "",
                    timeout_ms: int = 30_000) -> str:
    """Run ``action``; wait until the text of ``selector`` changes (and holds ``contains``).

    Gradio shows a timer ("0.4s") in an output while its event runs: that is not a change.
    """
    before = page.evaluate("(sel) => { const e = document.querySelector(sel); "
                           "return e ? e.innerText : null; }", selector)  # tabs render lazily
    action()
    page.wait_for_function(
        "([sel, old, want]) => { const e = document.querySelector(sel); if (!e) return false;"
        " const text = e.innerText.trim(); if (/(^|\\s)[0-9.]+s$/.test(text)) return false;"
        " return text !== (old || '').trim() && text.includes(want); }",
        arg=[selector, before, contains], timeout=timeout_ms)
    return page.locator(selector).inner_text()


def text_of(page, selector: str) -> str:
    """The element's text, "" while its tab has not rendered it."""
    return page.evaluate("(sel) => { const e = document.querySelector(sel); "
                         "return e ? e.innerText : ''; }", selector)


def show_in_review(page, name: str, timeout_ms: int = 30_000) -> int:
    """Show the first queued sample whose name has ``name`` in Review; its id.

    A sample already shown is left as it is (a click on it would change nothing to wait for:
    after a save, Review may have moved onto it by itself). The queue table re-renders after a
    save, so a click can hit a row that moved: it is repeated."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for _ in range(5):
        if name in text_of(page, "#review-header"):
            return shown_sample(page)
        page.locator('#queue-table [data-testid$="-1"]', has_text=name).first.click()
        try:
            page.wait_for_function("([sel, want]) => { const e = document.querySelector(sel);"
                                   " return e && e.innerText.includes(want); }",
                                   arg=["#review-header", name], timeout=timeout_ms)
        except PlaywrightTimeout:
            continue
    if name not in text_of(page, "#review-header"):
        raise AssertionError(f"could not show {name!r} from the Review queue")
    return shown_sample(page)


def wait_for_editor(page) -> None:
    """Wait until the image editor has laid out an image (its zoom leaves the blank 72 %)."""
    page.wait_for_function("() => { const z = document.querySelector('#editor .zoom-number'); "
                           "return z && z.innerText.trim() !== '72%'; }")
    page.wait_for_timeout(300)  # the textures upload after the zoom is set
    # Loading the layer fires the editor's change event (the preview refresh): wait it out.
    page.wait_for_function("() => !document.querySelector('#editor').innerText"
                           ".includes('processing')")


def editor_to_screen(page, image_shape: tuple[int, int]) -> Callable[[float, float], tuple]:
    """Map image pixel centres (x, y) to page coordinates on the editor canvas.

    The editor draws the image centred in its canvas at the zoom shown in its toolbar.
    """
    box = page.locator("#editor canvas:visible").first.bounding_box()
    zoom = float(page.locator("#editor .zoom-number").inner_text().strip().rstrip("%")) / 100
    height, width = image_shape
    left = box["x"] + box["width"] / 2 - width * zoom / 2
    top = box["y"] + box["height"] / 2 - height * zoom / 2
    return lambda x, y: (left + (x + 0.5) * zoom, top + (y + 0.5) * zoom)


def brush_stroke(page, to_screen: Callable[[float, float], tuple], y: int, x_start: int,
                 x_end: int, step: int) -> None:
    """A horizontal brush stroke on the editor from x_start to x_end on row y (image pixels)."""
    page.locator('#editor button[aria-label="Brush"]').first.click()
    page.mouse.move(*to_screen(x_start, y))
    page.mouse.down()
    for x in range(x_start, x_end + 1, step):
        page.mouse.move(*to_screen(x, y))
    page.mouse.up()
    page.wait_for_timeout(500)


def image_to_screen(page, selector: str, image_width: int) -> Callable[[float, float], tuple]:
    """Map pixel centres (x, y) of an image ``image_width`` px wide to page coordinates on the
    gr.Image showing it (possibly enlarged server-side, then only ever scaled down by Gradio)."""
    image = page.locator(f"{selector} img").first
    box = image.bounding_box()
    natural_w, natural_h = image.evaluate("e => [e.naturalWidth, e.naturalHeight]")
    enlarged = natural_w / image_width
    scale = min(box["width"] / natural_w, box["height"] / natural_h, 1.0)  # as Gradio does
    left = box["x"] + (box["width"] - natural_w * scale) / 2
    top = box["y"] + (box["height"] - natural_h * scale) / 2
    return lambda x, y: (left + (x + 0.5) * enlarged * scale, top + (y + 0.5) * enlarged * scale)


def screenshot(page, name: str) -> None:
    """Full-page screenshot into the gitignored screenshots/ folder."""
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
