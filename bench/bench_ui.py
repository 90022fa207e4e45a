"""UI latency from the browser: selecting a sample → its predicted layout visible, by image size.

Run: ``.venv/bin/python bench/bench_ui.py [--preset default|tiny] [--sizes 256 1024 2048]``
→ prints JSON and writes bench/results/ui.json. Needs /usr/bin/chromium and Playwright.

The app runs as a subprocess (``app.py``) on a temp workspace. Each SEM image is uploaded to the
store without a prediction, so the first selection ("cold") includes predicting it on the CPU;
selecting it again ("warm") only loads the stored prediction and renders it. The clock runs
from the click on the queue row until the browser has decoded the new "Predicted layout" image.
The model is the shipped default (``--preset shipped``; ``default`` = its architecture with
random weights, ``tiny`` = a seconds-trained tiny model). The app runs with every core, as a user
starts it. Then the app is stopped and started again on the same, now existing, workspace:
``restart_page_served_s`` is from the process start to the page answering HTTP 200, and
``restart_first_prediction_s`` to the first prediction visible in the browser.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import torch

from semgan.checkpoint import export_inference, save_checkpoint
from semgan.config import PRESETS
from semgan.model import build_models
from semgan.semsim import PROFILES
from semgan.synth import make_pair
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, start_app, stop_app
from tests.e2e.tiny_model import make_tiny_model

RESULTS = Path(__file__).resolve().parent / "results" / "ui.json"
ALL_CORES = {"OMP_NUM_THREADS": str(os.cpu_count() or 1)}
NM_PER_PX = 4.0


def make_model(preset: str, out_dir: Path) -> Path:
    """The shipped model, or an inference export of ``preset`` (random weights for "default",
    trained for "tiny")."""
    if preset == "shipped":
        from semgan.infer import DEFAULT_MODEL_DIR
        return DEFAULT_MODEL_DIR
    if preset == "tiny":
        return make_tiny_model(out_dir)
    config = PRESETS[preset]
    card = {"format": "semgan-model-card", "preset": preset, "nm_per_px": NM_PER_PX,
            "note": "random weights: benchmark of compute cost only"}
    with tempfile.TemporaryDirectory() as full:
        save_checkpoint(full, build_models(config, critics=False), None, config, card, None)
        return export_inference(full, out_dir)


def time_selection(page, name: str, timeout_ms: int) -> float:
    """Seconds from clicking the queue row ``name`` to its predicted layout being decoded."""
    old = page.evaluate("() => (document.querySelector('#pred-image img') || {}).src || ''")
    cell = page.locator('#queue-table [data-testid$="-1"]', has_text=name).first
    started = time.perf_counter()
    cell.click()
    page.wait_for_function(
        "([old, name]) => { const img = document.querySelector('#pred-image img');"
        " const head = document.querySelector('#review-header');"
        " return img && img.src !== old && img.complete && img.naturalWidth > 0 &&"
        " head && head.innerText.includes(name); }", arg=[old, name], timeout=timeout_ms)
    return time.perf_counter() - started


def run(preset: str, sizes: list[int], timeout_s: float) -> dict:
    """Start the app, add one SEM image per size, time cold and warm selections."""
    from playwright.sync_api import sync_playwright

    root = Path(tempfile.mkdtemp(prefix="semgan-bench-ui-"))
    model_dir = make_model(preset, root / "model")
    app = start_app(root / "workspace", model_dir, root / "app.log", ("--demo-count", "0"), ALL_CORES)
    try:
        with app.store() as store:
            names = {}
            for size in [*sizes, 128]:  # the newest (128 px) is shown on load: model warm-up
                pair = make_pair(size, size=size, nm_per_px=NM_PER_PX,
                                 profiles=[PROFILES["clean"]], seed=1)
                store.add_sample(pair.sem_image, NM_PER_PX, "upload", name=f"bench-{size}px")
                names[size] = f"bench-{size}px"
        results: dict = {str(size): {} for size in sizes}
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                                 args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1600, "height": 1100})
            started = time.perf_counter()
            page.goto(app.url)
            page.wait_for_function("() => { const i = document.querySelector('#pred-image img');"
                                   " return i && i.complete && i.naturalWidth > 0; }",
                                   timeout=int(timeout_s * 1000))
            first_view = time.perf_counter() - started
            page.locator("label", has_text="date added").first.click()
            page.wait_for_timeout(1000)
            timeout_ms = int(timeout_s * 1000)
            for kind in ("cold_s", "warm_s"):  # every size once unpredicted, then again
                for size in sizes:
                    results[str(size)][kind] = round(time_selection(page, names[size],
                                                                    timeout_ms), 3)
            browser.close()
        with app.store() as store:
            for size in sizes:
                sample = store.list_samples(limit=100)
                match = next(s for s in sample if s.name == names[size])
                prediction = store.latest_prediction(match.id)
                results[str(size)]["model_predict_s"] = round(prediction.seconds, 3)
    finally:
        stop_app(app)
    restart = time_restart(root, model_dir, timeout_s)
    return {"benchmark": "ui_select_to_prediction_visible", "preset": preset, **restart,
            "nm_per_px": NM_PER_PX, "results_by_size_px": results,
            "page_load_to_first_prediction_s": round(first_view, 3),
            "machine": {"platform": platform.platform(), "python": platform.python_version(),
                        "torch": torch.__version__, "cpu_threads": torch.get_num_threads()},
            "notes": "cold = prediction made on selection (CPU); warm = stored prediction; "
                     "model_predict_s = the Predictor's own time for that image; "
                     "page_load_to_first_prediction_s: a 128 px image, model load included"}


def time_restart(root: Path, model_dir: Path, timeout_s: float) -> dict:
    """Start the app again on the existing workspace: seconds to the page served, and to the
    first prediction shown in a browser opened as soon as the page is served."""
    from playwright.sync_api import sync_playwright

    started = time.perf_counter()
    app = start_app(root / "workspace", model_dir, root / "restart.log", (), ALL_CORES)
    try:
        while True:
            try:
                with urllib.request.urlopen(app.url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.perf_counter() - started > timeout_s:
                raise RuntimeError("the restarted app did not serve its page")
            time.sleep(0.05)
        served = time.perf_counter() - started
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1600, "height": 1100})
            page.goto(app.url)
            page.wait_for_function("() => { const i = document.querySelector('#pred-image img');"
                                   " return i && i.complete && i.naturalWidth > 0; }",
                                   timeout=int(timeout_s * 1000))
            first = time.perf_counter() - started
            browser.close()
    finally:
        stop_app(app)
    return {"restart_page_served_s": round(served, 3), "restart_first_prediction_s": round(first, 3)}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write bench/results/ui.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=("shipped", "default", "tiny"), default="shipped")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 2048])
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per selection")
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        print(f"{CHROMIUM} is missing: install Debian's chromium to run this benchmark",
              file=sys.stderr)
        return 2
    result = run(args.preset, args.sizes, args.timeout)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
