"""Correcting the demo's drifted images in a real browser: actions and seconds per image.

Run: ``.venv/bin/python bench/correction_browser.py [--goal 0.95] [--held-out 8]``
→ prints JSON and writes bench/results/correction.json. Needs /usr/bin/chromium and Playwright.

The app runs as a user starts it (``app.py`` on a fresh workspace with the shipped model and the
first-run demo). For each drifted demo image, Chromium opens it in the Correct tab on the model's
prediction and plays the operator of ``bench/correction_plan.py``: an engineer who knows the
true layout and uses only the tab's tools, by their keys, clicks and buttons. Each step is
applied in the browser and to a shadow mask; the pair the app saved is read back from the store
and compared with the shadow (they must be equal) and with the true layout.

Counted per image: actions (keys that change tool, clicks on the image, buttons, typed fields;
the Save click is counted too) and seconds. ``tool_seconds`` is the sum of the round trips, from
each key/click to its result shown; ``wall_seconds`` adds the script's own waits (the settle
pause before Save, none by default) but not the time the operator spends choosing a step, which a person spends
looking instead.

``--held-out N`` also plans (without a browser) corrections of N images per tool of images the
operator was not developed on: the drifted profile at another seed and the foreign-tool family,
on the shipped model's predictions.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import numpy as np

from annotate import correct_tools as tools
from bench.correction_plan import (
    CLEANUP,
    GOAL_IOU,
    MAX_ACTIONS,
    OperatorState,
    Step,
    next_step,
    plan,
    take,
)
from loop.bootstrap import DEMO_SETTING
from semgan.infer import DEFAULT_MODEL_DIR, Predictor
from semgan.metrics import iou
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, start_app, stop_app
from tests.e2e.helpers import (
    image_to_screen,
    show_in_review,
    shown_sample,
    text_of,
    wait_for_change,
    wait_for_editor,
)

RESULTS = Path(__file__).resolve().parent / "results" / "correction.json"
KEY_OF = {tool: key if key.islower() else f"Shift+{key}" for key, tool in tools.TOOL_KEYS.items()}
SLOW_MS = 120_000
SETTLE_MS = 0  # no pause before Save: the app must not save a stale editor upload


def _press(page, key: str) -> None:
    """A key with the focus on the page, not in a field (the focusing click is not counted)."""
    page.locator("#correct-header").click()
    page.keyboard.press(key)


def _until_result(page, action, selector: str, contains: str, new_image: bool = True) -> float:
    """Run ``action``; wait until ``selector`` says ``contains`` and (``new_image``) the result
    image is a new one. Seconds taken."""
    old = page.locator("#result-image img").first.get_attribute("src") if new_image else None
    started = time.perf_counter()
    action()
    page.wait_for_function(
        "([old, sel, want]) => { const i = document.querySelector('#result-image img');"
        " const s = document.querySelector(sel);"
        " return i && (old === null || i.src !== old) && i.complete && s &&"
        " s.innerText.includes(want); }",
        arg=[old, selector, contains], timeout=SLOW_MS)
    return time.perf_counter() - started


def _fill(page, selector: str, value: float) -> None:
    field = page.locator(f"{selector} input[type=number]").first
    field.fill(f"{value:g}")
    field.press("Tab")
    page.wait_for_timeout(300)


def _click(page, width: int, point: tuple[int, int]) -> None:
    page.locator("#result-image img").first.scroll_into_view_if_needed()
    page.mouse.click(*image_to_screen(page, "#result-image", width)(*point))


def play(page, state: OperatorState, step: Step, width: int) -> float:
    """Do ``step`` in the browser (the shadow ``state`` still holds the state before it)."""
    seconds = 0.0
    if step.tool == CLEANUP:
        area, snap = step.cleanup
        if area != state.cleanup[0]:
            _fill(page, "#min-area", area)
        if snap != state.cleanup[1]:
            _fill(page, "#cleanup-snap", snap)
        return _until_result(page, lambda: page.click("#cleanup-btn"), "#change-summary",
                             "Clean up")
    if step.tool in (tools.WHOLE, tools.WHOLE_INVERT):
        key = "g" if step.tool == tools.WHOLE else "Shift+G"
        return _until_result(page, lambda: _press(page, key), "#rect-status",
                             "Thresholded the whole image")
    if step.tool != state.tool:
        started = time.perf_counter()
        _press(page, KEY_OF[step.tool])
        # The server answers a tool change with the tool's hint and forgets any first corner:
        # a click before that answer would be undone by it.
        page.wait_for_function("([want, hint]) => { const r = document.querySelector("
                               "'#rect-mode input[type=radio]:checked'); const s = "
                               "document.querySelector('#rect-status'); return r && "
                               "r.value === want && s && s.innerText.includes(hint); }",
                               arg=[step.tool, tools.hint(step.tool)], timeout=SLOW_MS)
        seconds += time.perf_counter() - started
    if step.shift_nm is not None and step.shift_nm != state.shift_nm:
        _fill(page, "#shift-nm", step.shift_nm)
    if len(step.points) == 2:  # a box: the first corner only marks the image
        # The corner's mark can leave the picture as it was (red on a removed area): the
        # status naming the corner is what tells it arrived.
        x, y = step.points[0]
        seconds += _until_result(page, lambda: _click(page, width, step.points[0]),
                                 "#rect-status", f"First corner at x = {x}, y = {y} px",
                                 new_image=False)
    label = step.tool.split(" [")[0]
    expected = {tools.BOX_ADD: "Added a", tools.BOX_REMOVE: "Removed a",
                tools.OTSU: "Thresholded a", tools.OTSU_INVERT: "Thresholded a"}.get(step.tool, label)
    return seconds + _until_result(page, lambda: _click(page, width, step.points[-1]),
                                   "#rect-status", expected)


def _open(page, name: str) -> int:
    """Show ``name`` in Review and open it in the Correct tab; its sample id."""
    page.get_by_role("tab", name="Review").click()
    show_in_review(page, name, 15_000)
    if name in text_of(page, "#correct-header"):  # Save moved Correct onto it
        page.click("#correct-btn")
        page.wait_for_timeout(2000)
    else:
        wait_for_change(page, "#correct-header", lambda: page.click("#correct-btn"), name,
                        SLOW_MS)
    wait_for_editor(page)
    page.wait_for_selector("#result-image img")
    return shown_sample(page, "#correct-header")


def correct_one(page, app, name: str, goal: float,
                before: OperatorState | None = None) -> tuple[dict, OperatorState]:
    """Open ``name`` in Correct, correct it step by step, save, check the saved mask.

    The tool radio and the fields keep what the previous image (``before``) left in them."""
    sample_id = _open(page, name)
    with app.store() as store:
        sample = store.get_sample(sample_id)
        start = store.prediction_mask(store.latest_prediction(sample_id))
        truth = store.read_mask(sample.truth_sha)
        sem = store.sample_image(sample_id)
    state = OperatorState(start.copy())
    if before is not None:
        state.tool, state.shift_nm, state.cleanup = before.tool, before.shift_nm, before.cleanup
    tool_seconds, wall_started = 0.0, time.perf_counter()
    thinking = 0.0
    while iou(state.mask, truth) < goal:
        began = time.perf_counter()
        chosen = next_step(state, truth, sem, sample.nm_per_px)
        thinking += time.perf_counter() - began
        if chosen is None:
            break
        steps, after = chosen
        for step in steps:  # one step, or a sequence judged as one
            tool_seconds += play(page, state, step, start.shape[1])
            take(state, (step,), state.mask)
        state.mask = after
    page.wait_for_timeout(SETTLE_MS)
    started = time.perf_counter()
    wait_for_change(page, "#change-summary", lambda: page.click("#save-btn"), "Saved",
                    timeout_ms=SLOW_MS)
    tool_seconds += time.perf_counter() - started
    wall = time.perf_counter() - wall_started - thinking
    with app.store() as store:
        saved = store.pair_mask(store.latest_pair(sample_id))
    uses = Counter(step.tool.split(" [")[0] for step in state.steps)
    return {"name": name, "sample": sample_id, "start_iou": round(iou(start, truth), 4),
            "saved_iou": round(iou(saved, truth), 4), "reached": bool(iou(saved, truth) >= goal),
            "saved_equals_shadow": bool(np.array_equal(saved, state.mask)),
            "saved_vs_shadow_px": int(np.count_nonzero(saved != state.mask)),
            "actions": state.actions + 1, "steps": len(state.steps), "tools_used": dict(uses),
            "tool_seconds": round(tool_seconds, 2), "wall_seconds": round(wall, 2),
            "operator_seconds": round(thinking, 2)}, state


def browser_run(goal: float, root: Path) -> list[dict]:
    """The app on the first-run demo; every drifted image corrected in Chromium."""
    from playwright.sync_api import sync_playwright

    app = start_app(root / "workspace", DEFAULT_MODEL_DIR, root / "app.log")
    try:
        with app.store() as store:
            names = [store.get_sample(i).name for i in store.get_setting(DEMO_SETTING)["samples"]]
        drifted = [n for n in names if "drifted" in n]
        rows = []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1600, "height": 1100})
            page.set_default_timeout(SLOW_MS)
            page.goto(app.url)
            page.wait_for_selector("#sem-image img")
            state = None
            for name in drifted:
                try:
                    row, state = correct_one(page, app, name, goal, state)
                    rows.append(row)
                except Exception:
                    page.screenshot(path=str(root / f"failed-{name}.png"), full_page=True)
                    print(f"failed on {name}: screenshot in {root}", flush=True)
                    raise
                print(json.dumps(rows[-1]), flush=True)
            browser.close()
        return rows
    finally:
        stop_app(app)


def held_out(count: int, goal: float) -> dict:
    """Planned corrections (no browser) of images the operator was not developed on."""
    from bench.bench_uncertainty import TOOLS
    from semgan.synth import make_pair

    predictor = Predictor.from_dir(DEFAULT_MODEL_DIR)
    out = {}
    for name in ("drifted", "edge_only", "dark_features", "wide_beam", "low_dose"):
        actions, reached, start_iou, final_iou = [], 0, [], []
        for index in range(count):
            pair = make_pair(index, size=256, nm_per_px=4.0, profiles=[TOOLS[name]], seed=31)
            start = predictor.predict(pair.sem_image, 4.0).mask
            state = plan(start, pair.layout_mask, pair.sem_image, 4.0, goal)
            final = iou(state.mask, pair.layout_mask)
            actions.append(state.actions + (1 if state.steps else 0))  # + Save when changed
            reached += final >= goal
            start_iou.append(iou(start, pair.layout_mask))
            final_iou.append(final)
        out[name] = {"images": count, "median_actions": float(statistics.median(actions)),
                     "actions": [int(a) for a in actions], "reached": int(reached),
                     "mean_start_iou": round(float(np.mean(start_iou)), 4),
                     "mean_final_iou": round(float(np.mean(final_iou)), 4)}
        print(name, json.dumps(out[name]), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--goal", type=float, default=GOAL_IOU)
    parser.add_argument("--held-out", type=int, default=8, help="images per tool (0: skip)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="semgan-bench-correction-"))
    rows = browser_run(args.goal, root)
    result = {
        "benchmark": "correct_drifted_demo_in_browser", "goal_iou": args.goal,
        "max_actions": MAX_ACTIONS, "machine": platform.processor() or platform.machine(),
        "images": rows,
        "median_actions": statistics.median(r["actions"] for r in rows),
        "median_tool_seconds": statistics.median(r["tool_seconds"] for r in rows),
        "median_wall_seconds": statistics.median(r["wall_seconds"] for r in rows),
        "reached": sum(r["reached"] for r in rows),
        "saved_equals_shadow": all(r["saved_equals_shadow"] for r in rows),
    }
    if args.held_out:
        result["held_out_planned"] = held_out(args.held_out, args.goal)
    print(json.dumps({k: v for k, v in result.items() if k != "images"}, indent=2))
    if not args.no_write:
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
