"""End-to-end: **Fine-tune now** in headless Chromium runs a tiny fine-tune to the gate's verdict.

The app runs on its own workspace (tiny production model, 4 demo images) with 10 corrected
pairs and a fine-tune config of 40 steps on 32 px crops, so the background worker finishes in
seconds of training (a few loss points to plot) plus its start-up and the gate.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from loop.finetune import FinetuneConfig, set_finetune_config
from loop.jobs import FinetuneResult
from loop.worker import worker_pid
from semgan.semsim import PROFILES
from semgan.synth import make_pair
from tests.e2e.conftest import RunningApp, chromium_missing, start_app, stop_app
from tests.e2e.helpers import screenshot
from tests.e2e.tiny_model import NM_PER_PX

pytestmark = pytest.mark.browser

TINY_RECIPE = FinetuneConfig(epochs=5, crop_size=32, batch_size=2, max_steps=40, tile_size=64,
                             anchor_train=4, anchor_test=3, cpu_threads=1, device="cpu")
VERDICT_TIMEOUT_MS = 240_000


@pytest.fixture(scope="module")
def finetune_app(tiny_models: tuple[Path, Path],
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    """The app with production v1, corrected pairs in both splits and a tiny recipe."""
    reason = chromium_missing()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("finetune-app")
    running = start_app(root / "workspace", tiny_models[0], root / "app.log",
                        ("--demo-count", "4"))
    with running.store() as store:
        set_finetune_config(store, TINY_RECIPE)
        index = 0
        while store.counts().train_pairs < 6 or store.counts().holdout_pairs < 2:
            pair = make_pair(index, size=64, nm_per_px=NM_PER_PX,
                             profiles=[PROFILES["clean"]], seed=11)
            sample = store.add_sample(pair.sem_image, NM_PER_PX, "upload", tool="sim:clean",
                                      name=f"pair-{index}")
            store.save_correction(sample.id, pair.layout_mask, "e2e-tester")
            index += 1
            assert index < 60, "the split rule put too few images in one split"
    yield running
    stop_app(running)
    pid = worker_pid(running.workspace)  # the worker the button spawned idles for minutes
    if pid is not None:
        os.kill(pid, signal.SIGTERM)


@pytest.fixture
def finetune_page(browser, finetune_app: RunningApp) -> Iterator[object]:
    """A page on the app with the Fine-tune tab open."""
    context = browser.new_context(viewport={"width": 1600, "height": 1100})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(finetune_app.url)
    page.wait_for_selector("#sem-image img")
    page.get_by_role("tab", name="Fine-tune").click()
    page.wait_for_selector("#finetune-triggers .sg-stat")
    yield page
    context.close()


@pytest.mark.slow  # about a minute on 2 cores: `pytest -m slow`
def test_fine_tune_now_shows_the_verdict_and_the_job_in_history(finetune_page,
                                                                 finetune_app) -> None:
    page = finetune_page
    assert "No fine-tune has finished yet" in page.locator("#finetune-verdict").inner_text()
    page.click("#finetune-now-btn")
    page.wait_for_function("() => document.querySelector('#finetune-message').innerText"
                           ".includes('Queued fine-tune job 1')")
    page.wait_for_function(
        "() => /promoted|rejected/.test(document.querySelector('#finetune-verdict').innerText)",
        timeout=VERDICT_TIMEOUT_MS)
    verdict = page.locator("#finetune-verdict").inner_text()
    with finetune_app.store() as store:
        job = store.get_job(1)
        decision = {"promote": "promoted", "reject": "rejected"}[job.result["decision"]]
    assert job.status == "succeeded"
    assert f"Job 1: candidate v2 {decision}" in verdict
    # the default per-tool fine-tune: the gate's rule and figures per corrected tool
    tools = FinetuneResult.of(job).summary.tools
    assert tools and all(f"{tool}: IoU on its held-out pairs" in verdict for tool in tools)
    assert all(f"tool {tool.removeprefix('tool:')} (its held-out pairs)" in verdict for tool in tools)
    assert "every other tool bit-identical to production" in verdict
    page.wait_for_function("() => document.querySelector('#finetune-history').innerText"
                           ".includes('succeeded')")
    row = page.locator('#finetune-history [data-testid^="cell-0-"]').all_inner_texts()
    assert row[:3] == ["1", "manual", "succeeded"] and row[6:8] == [decision, "v2"]
    page.wait_for_selector("#finetune-loss img")
    page.locator("#finetune-verdict").scroll_into_view_if_needed()
    screenshot(page, "fine-tune-verdict")


def test_trigger_settings_refuse_an_impossible_threshold(finetune_page) -> None:
    page = finetune_page
    page.locator("#finetune-threshold input").fill("0")
    page.click("#finetune-save-settings")
    page.wait_for_function("() => document.querySelector('#finetune-settings-note').innerText"
                           ".includes('Not saved')")
    assert "threshold must be ≥ 1" in page.locator("#finetune-settings-note").inner_text()

