"""annotate: the Fine-tune tab's text, tables, plots and button handlers on a real temp Store."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from annotate import finetune, finetune_plots, finetune_view
from annotate.blocks import build_ui
from annotate.models_tab import metrics_text, pairs_used
from annotate.studio import Studio
from loop.finetune import FinetuneConfig
from loop.jobs import Check, FinetunePlan, GateResult, TrainingSummary
from loop.triggers import TriggerError, set_trigger_settings, trigger_settings, trigger_state
from store import Job, Store

OLD = {"iou": 0.91, "epe_mean_nm": 1.25, "epe_p95_nm": 3.5, "cd_error_nm": -0.4, "ssim": 0.7,
       "psnr": 14.0, "l1": 0.1, "count": 3}
NEW = {**OLD, "iou": 0.6, "ssim": 0.5, "count": 2}


@pytest.fixture
def studio(tmp_path: Path):
    """A workspace with a weightless production v1 and no corrected pairs."""
    with Store.open(tmp_path / "ws") as store:
        store.register_model(store.models_dir / "none", "0" * 64, {}, {}, None, {}, {},
                             status="production")
        yield Studio(store, author="tester")


def add_pairs(store: Store, count: int) -> None:
    """``count`` new random samples saved as corrected pairs (train or holdout by content)."""
    rng = np.random.default_rng(store.counts().samples)  # a new seed, so a new image each call
    for _ in range(count):
        sample = store.add_sample(rng.integers(0, 255, (16, 16), dtype=np.uint8), 4.0, "upload")
        store.save_correction(sample.id, rng.random((16, 16)) > 0.5, "tester")


def train_pair_count(store: Store, wanted: int) -> None:
    """Add pairs until at least ``wanted`` are in the train split."""
    for _ in range(20 * wanted):  # ~80 % of images fall in the train split
        if store.counts().train_pairs >= wanted:
            return
        add_pairs(store, 1)
    raise AssertionError(f"no {wanted} train-split pairs after {20 * wanted} images")


def running_job(store: Store, step: int = 30, total: int = 120) -> Job:
    """A claimed fine-tune job with a training log line, losses and one warning."""
    job = store.enqueue_job("finetune", {"trigger": "manual", "reason": "manual request"})
    store.claim_job(os.getpid())  # a live pid: not recovered as a dead worker
    store.append_job_log(job.id, "training 120 steps = 6.0 epochs of 20 on 8 tiles")
    store.set_job_plan(job.id, FinetunePlan(120, 120, 20, 8, 8, 200, 0.75, 0.1, 1).to_dict())
    store.add_job_warning(job.id, "G-loss collapse at step 25: adversarial term 0.01")
    for s in (10, 20, step):
        store.update_job_progress(job.id, s, total, 65.0, {"d_loss": 0.5, "g_loss": 10.0 - s / 10,
                                                           "g_gan": 0.3})
    return store.get_job(job.id)


def gate_result(decision: str) -> dict:
    """A job result as loop.worker.run_job stores it."""
    checks = (Check("SSIM on new data", 0.55, 0.5, 0.05, "> +0.001", decision == "promote"),
              Check("IoU on old data", 0.905, 0.91, -0.005, "drop ≤ 0.005", True))
    gate = GateResult(2, 1, decision, f"{decision} because of the rules", checks,
                      {"old_data": {**OLD, "iou": 0.905}, "new_data": {**NEW, "ssim": 0.55}},
                      {"old_data": OLD, "new_data": NEW}, 2, None, 4.2)
    return {"candidate_version": 2, "decision": decision, "reason": gate.reason,
            "gate": gate.to_dict(), "summary": training_summary().to_dict()}


def training_summary(**changes) -> TrainingSummary:
    """A shared-strategy fine-tune's summary: 120 steps, 8 corrected + 200 anchor pairs."""
    return replace(TrainingSummary(
        job_id=1, trigger="manual", reason="manual request", parent_version=1, init="production v1",
        pairs_used={"corrected_pairs": 8, "anchor_pairs": 200}, steps=120, train_seconds=75.0,
        wall_seconds=80.0, stop_reason="completed", device="cpu", cpu_threads=1, config={},
        max_pair_id=8, epochs=6.0), **changes)


def finished_job(store: Store, decision: str = "promote") -> Job:
    """A fine-tune job that ran to the gate's decision."""
    job = running_job(store, 120, 120)
    return store.finish_job(job.id, "succeeded", gate_result(decision))


def test_counters_show_pairs_against_threshold_and_nothing_due(studio: Studio) -> None:
    train_pair_count(studio.store, 3)
    counts = studio.store.counts()
    text = finetune_view.trigger_html(counts, trigger_state(studio.store))
    assert f"{counts.new_since_production} / 50" in text
    assert "Nothing due" in text and ">v1<" in text


def test_a_reached_threshold_shows_the_trigger_due(studio: Studio) -> None:
    train_pair_count(studio.store, 2)
    set_trigger_settings(studio.store, threshold=2)
    text = finetune_view.trigger_html(studio.store.counts(), trigger_state(studio.store))
    assert "Due: " in text and "reached the threshold of 2" in text


def test_a_due_trigger_with_the_switch_off_says_why_it_is_blocked(studio: Studio) -> None:
    train_pair_count(studio.store, 2)
    set_trigger_settings(studio.store, threshold=2, auto_trigger=False)
    text = finetune_view.trigger_html(studio.store.counts(), trigger_state(studio.store))
    assert "Due (threshold) but blocked: automatic trigger is off" in text


def test_the_config_table_lists_recipe_and_gate_settings(studio: Studio) -> None:
    text = finetune_view.config_html(FinetuneConfig(crop_size=64), studio.store.counts())
    assert "<code>crop_size</code></td><td>64</td>" in text
    assert "<code>gate.max_iou_drop</code></td><td>0.005</td>" in text


def test_fine_tune_now_without_pairs_says_why_it_cannot_start(studio: Studio) -> None:
    assert finetune.launch(studio) == ("**Cannot start a fine-tune:** no corrected pairs in the "
                                       "train split yet: correct a few predictions (or import "
                                       "pairs) first")


def test_fine_tune_now_while_a_job_is_queued_reports_the_conflict(studio: Studio) -> None:
    train_pair_count(studio.store, 1)
    studio.store.enqueue_job("finetune", {"trigger": "auto"})
    assert "finetune job 1 is already queued" in finetune.launch(studio)


def test_fine_tune_now_queues_a_manual_job_and_starts_a_worker(
        studio: Studio, monkeypatch: pytest.MonkeyPatch) -> None:
    train_pair_count(studio.store, 1)
    monkeypatch.setattr(finetune, "spawn_worker", lambda workspace: 4242)
    message = finetune.launch(studio)
    job = studio.store.list_jobs()[0]
    assert (job.status, job.params["trigger"]) == ("queued", "manual")
    assert "job **1** on production v1; background worker pid 4242" in message


def test_cancel_without_a_job_says_so(studio: Studio) -> None:
    assert finetune.cancel(studio) == "No fine-tune is queued or running."


def test_cancel_of_a_queued_job_cancels_it_at_once(studio: Studio) -> None:
    job = studio.store.enqueue_job("finetune", {"trigger": "manual"})
    assert finetune.cancel(studio) == "Job 1 cancelled before it started."
    assert studio.store.get_job(job.id).status == "cancelled"


def test_cancel_of_a_running_job_asks_its_worker_to_stop(studio: Studio) -> None:
    job = running_job(studio.store)
    assert finetune.cancel(studio).startswith("Cancel requested for job 1")
    assert studio.store.get_job(job.id).cancel_requested


def test_progress_shows_step_epoch_eta_and_warnings(studio: Studio) -> None:
    job = running_job(studio.store)
    text = finetune_view.progress_html(job, now=job.started + 42)
    assert "step 30 / 120 (25%) · epoch 1.5 / 6.0 · elapsed 42 s · ETA 1 min 05 s" in text
    assert "width:25.0%" in text
    assert "⚠ G-loss collapse at step 25" in text


def test_progress_without_any_job_says_none_ran() -> None:
    assert "No fine-tune has run" in finetune_view.progress_html(None)


def test_a_promoted_verdict_shows_both_models_on_old_and_new_data(studio: Studio) -> None:
    text = finetune_view.verdict_html(finished_job(studio.store, "promote"))
    assert "candidate v2 promoted</b> — now in production (was v1)" in text
    assert "<td>new data (held-out corrected pairs)</td><td>candidate v2</td><td>0.600</td>" \
        in text
    assert "<td>old data (anchor test set: the tools it was trained on)</td><td>production v1" \
        "</td><td>0.910</td><td>1.25</td>" in text


def test_a_rejected_verdict_names_the_failed_rule(studio: Studio) -> None:
    text = finetune_view.verdict_html(finished_job(studio.store, "reject"))
    assert "candidate v2 rejected</b> — production stays v1" in text
    assert "<td>SSIM on new data</td><td>0.5000</td><td>0.5500</td><td>+0.0500</td><td>&gt; " \
        "+0.001</td><td class='sg-fail'>FAIL</td>" in text


def test_a_failed_job_has_no_verdict_but_its_error(studio: Studio) -> None:
    job = running_job(studio.store)
    failed = studio.store.finish_job(job.id, "failed", error="FinetuneError: no usable pairs")
    assert "<b>Job 1 failed</b>: FinetuneError: no usable pairs" in \
        finetune_view.verdict_html(failed)


def test_history_has_one_row_per_job(studio: Studio) -> None:
    job = finished_job(studio.store, "reject")
    rows = finetune_view.history_rows(finetune_view.training_jobs(studio.store))
    assert rows[0][:3] + rows[0][5:] == [job.id, "manual", "succeeded", "120/120", "rejected",
                                         "v2", "reject because of the rules"]


def test_a_fractional_threshold_is_refused() -> None:
    with pytest.raises(TriggerError, match="threshold counts pairs"):
        finetune.parse_trigger_settings(True, 2.5, 10, 24)


def test_saved_settings_reach_the_workspace(studio: Studio) -> None:
    note = finetune.save_settings(studio, False, 30, 5, 12.5)
    assert note.startswith("Saved: automatic trigger off, threshold 30")
    assert (trigger_settings(studio.store).threshold,
            trigger_settings(studio.store).cooldown_hours) == (30, 12.5)


def test_an_impossible_setting_is_not_saved(studio: Studio) -> None:
    assert finetune.save_settings(studio, True, 0, 5, 24) == \
        "**Not saved:** trigger setting: threshold must be ≥ 1"
    assert trigger_settings(studio.store).threshold == 50


def test_loss_series_follow_the_stored_steps(studio: Studio) -> None:
    job = running_job(studio.store)
    series = finetune_plots.loss_series(studio.store.job_losses(job.id))
    assert series["g_loss"] == ([10, 20, 30], [9.0, 8.0, 7.0])


def test_the_loss_plot_is_a_picture_and_absent_without_losses(studio: Studio) -> None:
    job = running_job(studio.store)
    picture = finetune_plots.loss_picture(studio.store.job_losses(job.id), "job 1", 120)
    assert (picture.shape, picture.dtype) == ((300, 900, 3), np.uint8)
    assert finetune_plots.loss_picture([], "none") is None


def test_the_drift_plot_needs_scored_samples(studio: Studio) -> None:
    add_pairs(studio.store, 3)
    assert finetune_plots.drift_picture(studio.store.list_samples()) is None
    studio.store.set_drift(1, {"severity": 2.0}, True, score=2.0)
    picture = finetune_plots.drift_picture(studio.store.list_samples(), alarm_window=10)
    assert picture.shape == (300, 700, 3)


def test_the_drift_banner_appears_only_with_the_alarm(studio: Studio) -> None:
    state = trigger_state(studio.store)
    assert "Drift alarm off" in finetune_view.drift_alarm_html(state)
    assert "Drift alarm raised" in finetune_view.drift_alarm_html(replace(state,
                                                                          drift_alarm=True))


def test_the_timer_signature_changes_with_the_step(studio: Studio) -> None:
    job = running_job(studio.store)
    before = finetune.signature(finetune_view.training_jobs(studio.store))
    studio.store.update_job_progress(job.id, 31, 120)
    assert finetune.signature(finetune_view.training_jobs(studio.store)) != before


def test_durations_read_like_a_clock() -> None:
    assert [finetune_view.duration(s) for s in (None, 7, 187, 7500)] == \
        ["—", "7 s", "3 min 07 s", "2 h 05 min"]


def test_a_fine_tuned_model_lists_corrected_and_anchor_pairs(studio: Studio) -> None:
    summary = training_summary(pairs_used={"corrected_pairs": 50, "anchor_pairs": 200})
    model = studio.store.register_model(studio.store.models_dir / "v2", "1" * 64, {}, {}, 1,
                                        summary.to_dict(), {})
    assert pairs_used(model) == "50 corrected + 200 anchor"
    installed = studio.store.register_model(studio.store.models_dir / "v3", "2" * 64, {},
                                            {"data_recipe": {"items": 4000}}, None, {"source": "x"}, {})
    assert pairs_used(installed) == "4000 training pairs"


def test_the_tab_refresh_fills_every_component(studio: Studio,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    finished_job(studio.store)
    captured = {}
    real_build = finetune.build

    def spy(*args):
        captured["ui"] = real_build(*args)
        return captured["ui"]

    monkeypatch.setattr(finetune, "build", spy)
    build_ui(studio)
    ui = captured["ui"]
    values = finetune.refresh(studio, ui)
    assert list(values) == ui.refresh_outputs
    assert "promoted" in values[ui.jobs.verdict]


def test_a_raised_drift_alarm_without_enough_pairs_says_what_is_missing(studio: Studio) -> None:
    state = replace(trigger_state(studio.store), drift_alarm=True)
    text = finetune_view.trigger_html(studio.store.counts(), state)
    assert "a drift-triggered run needs ≥ 10 new corrected pairs" in text
    assert "<span class='sg-stat-value sg-fail'>RAISED</span>" in text


def test_every_fine_tune_setting_is_explained_in_the_tab() -> None:
    from loop.finetune import FinetuneConfig

    keys = {k for k, v in FinetuneConfig().to_dict().items() if not isinstance(v, dict)}
    keys |= {f"gate.{k}" for k in FinetuneConfig().to_dict()["gate"]}
    assert sorted(keys - set(finetune_view.CONFIG_NOTES)) == []


def test_registry_metrics_show_a_dash_for_a_missing_cd_and_infinity_for_a_missed_feature() -> None:
    text = metrics_text({"iou": 0.9, "epe_mean_nm": float("inf"), "cd_abs_error_nm": float("nan")})
    assert text == "IoU 0.900 · EPE ∞ · |CD| —"
    assert "nan" not in metrics_text({"old": {"iou": 0.5, "cd_abs_error_nm": float("nan")}})


def test_a_per_tool_fine_tunes_loss_is_drawn() -> None:
    from annotate.finetune_plots import loss_picture

    picture = loss_picture([{"step": s, "loss": 1.0 / s} for s in range(1, 40)], "job 1", 40)
    purple = (np.abs(picture.astype(int) - [148, 103, 189]).sum(axis=2) < 40).sum()
    assert purple > 50  # the expert's loss curve (#9467bd) is on the left panel
