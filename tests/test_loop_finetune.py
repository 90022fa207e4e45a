"""Fine-tune jobs in-process: the recipe, the job life cycle, cancel, loss warnings."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from loop.finetune import (
    FinetuneConfig,
    FinetuneError,
    LossMonitor,
    mix_repeats,
    request_finetune,
)
from loop.jobs import FinetuneResult, TrainingSummary
from loop.worker import run_job, run_worker
from semgan.checkpoint import has_checkpoint
from store import JobConflictError, Store
from tests.support import TINY_FINETUNE, add_pairs, install_production, save_tiny_model


def test_job_goes_queued_running_succeeded_and_registers_candidate(store: Store) -> None:
    install_production(store)
    pair_ids = add_pairs(store, 8)
    job = request_finetune(store)
    assert job.status == "queued"
    assert run_worker(store.workspace, once=True) == 1
    kinds = [e.kind for e in reversed(store.list_events(kinds=["job_queued", "job_started",
                                                              "job_succeeded"]))]
    assert kinds == ["job_queued", "job_started", "job_succeeded"]
    candidate = store.get_model(store.get_job(job.id).result["candidate_version"])
    assert (candidate.version, candidate.parent_version, candidate.data_cutoff_pair_id) == \
        (2, 1, max(pair_ids))
    assert candidate.status in ("production", "rejected")  # the gate decided either way
    assert Path(candidate.path) == store.models_dir / "v2"
    assert has_checkpoint(candidate.path)  # optimizer state kept for the next fine-tune


def test_candidate_summary_records_pairs_steps_and_device(store: Store) -> None:
    install_production(store)
    add_pairs(store, 8)
    job = request_finetune(store)
    run_worker(store.workspace, once=True)
    summary = TrainingSummary.from_dict(
        store.get_model(store.get_job(job.id).result["candidate_version"]).training_summary)
    assert summary.steps == 6
    assert summary.pairs_used["corrected_pairs"] == store.counts().train_pairs
    assert summary.device.startswith("cpu")
    assert FinetuneResult.of(store.get_job(job.id)).summary == summary


def test_a_spent_time_budget_is_a_job_warning_not_log_text(store: Store) -> None:
    from dataclasses import replace

    from annotate.finetune_view import job_warnings
    from tests.support import TINY_FINETUNE

    install_production(store)
    add_pairs(store, 8)
    job = request_finetune(store, config=replace(TINY_FINETUNE, time_budget_s=1e-6))
    run_worker(store.workspace, once=True)
    done = store.get_job(job.id)
    assert len(done.warnings) == 1 and done.warnings[0].startswith("time budget")
    assert job_warnings(done) == list(done.warnings)
    assert FinetuneResult.of(done).summary.warnings == done.warnings


def test_inference_export_gets_fresh_critics_noted_in_card(store: Store) -> None:
    install_production(store, export=True)
    add_pairs(store, 8)
    job = request_finetune(store)
    run_worker(store.workspace, once=True)
    candidate = store.get_model(store.get_job(job.id).result["candidate_version"])
    card = json.loads((Path(candidate.path) / "card.json").read_text())
    assert "critics initialised fresh" in card["init_note"]


def test_export_with_critics_starts_fine_tunes_from_them(store: Store, tmp_path: Path) -> None:
    from loop.finetune.run import prepare_init
    from semgan.checkpoint import export_inference, load_checkpoint

    full = save_tiny_model(tmp_path / "full")
    export = export_inference(full, tmp_path / "export", critics=True)
    init, note = prepare_init(export, tmp_path / "init")
    assert "generators and critics loaded" in note
    started = load_checkpoint(init).models.layout_critic.state_dict()
    shipped = load_checkpoint(full).models.layout_critic.state_dict()
    assert all(torch.allclose(started[k].float(), shipped[k].float(), atol=1e-2) for k in shipped)


def test_cancel_before_training_ends_job_cancelled_without_candidate(store: Store) -> None:
    install_production(store)
    add_pairs(store, 8)
    request_finetune(store)
    claimed = store.claim_job(worker_pid=1)
    store.request_cancel(claimed.id)
    assert run_job(store, claimed).status == "cancelled"
    assert [m.version for m in store.list_models()] == [1]
    assert list(store.models_dir.glob(".finetune-*")) == []


def test_cancel_during_training_stops_at_next_report(store: Store) -> None:
    install_production(store)
    add_pairs(store, 8)
    job = request_finetune(store, config=replace(TINY_FINETUNE, max_steps=100_000, epochs=10_000))
    claimed = store.claim_job(worker_pid=1)

    def cancel_once_training() -> None:
        with Store.open(store.workspace) as other:
            while other.get_job(job.id).step == 0:
                time.sleep(0.05)
            other.request_cancel(job.id)

    canceller = threading.Thread(target=cancel_once_training)
    canceller.start()
    finished = run_job(store, claimed)
    canceller.join()
    assert finished.status == "cancelled"
    assert 0 < finished.step < 100_000
    assert store.production_model().version == 1
    assert [m.version for m in store.list_models()] == [1]


def test_second_request_conflicts_while_one_is_queued(store: Store) -> None:
    install_production(store)
    add_pairs(store, 3)
    request_finetune(store)
    with pytest.raises(JobConflictError):
        request_finetune(store)


def test_request_without_corrected_pairs_raises(store: Store) -> None:
    install_production(store)
    with pytest.raises(FinetuneError):
        request_finetune(store)


def test_config_round_trips_through_dict() -> None:
    config = FinetuneConfig(epochs=7, crop_size=64)
    assert FinetuneConfig.from_dict(config.to_dict()) == config


def test_unknown_config_key_raises() -> None:
    with pytest.raises(FinetuneError):
        FinetuneConfig.from_dict({"epoch": 5})


def test_new_pairs_are_oversampled_to_half_of_each_epoch() -> None:
    assert mix_repeats(50, 200, 0.5) == (4, 1)


def steady(step: int) -> dict[str, float]:
    return {"d_loss": 0.5, "g_gan": 0.4}


def test_d_loss_spike_that_does_not_recover_warns() -> None:
    monitor = LossMonitor(warmup=5, recover_steps=10)
    warnings = [w for step in range(1, 6) for w in monitor.update(step, steady(step))]
    warnings += [w for step in range(6, 60) for w in monitor.update(step, {"d_loss": 5.0,
                                                                            "g_gan": 0.4})]
    assert len(warnings) == 1 and warnings[0].startswith("D-loss spike")


def test_d_loss_spike_that_recovers_does_not_warn() -> None:
    monitor = LossMonitor(warmup=5, recover_steps=30)
    losses = [steady(s) for s in range(5)] + [{"d_loss": 5.0, "g_gan": 0.4}] * 3 + \
        [steady(s) for s in range(60)]
    assert [w for step, loss in enumerate(losses, 1) for w in monitor.update(step, loss)] == []


def test_g_loss_collapse_warns() -> None:
    monitor = LossMonitor(warmup=5, recover_steps=10)
    losses = [steady(s) for s in range(5)] + [{"d_loss": 0.5, "g_gan": 0.0}] * 40
    warnings = [w for step, loss in enumerate(losses, 1) for w in monitor.update(step, loss)]
    assert len(warnings) == 1 and warnings[0].startswith("G-loss collapse")
