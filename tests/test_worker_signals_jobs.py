"""The job lifecycle's typed shapes (loop.jobs): requests, the fine-tune's plan, what the UI reads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from annotate.finetune_view import progress_html
from loop.finetune import request_finetune
from loop.jobs import (
    BATCH_PREDICT,
    FINETUNE,
    BatchPredictRequest,
    BatchResult,
    FinetunePlan,
    FinetuneRequest,
    FinetuneResult,
    JobParamsError,
)
from loop.worker import run_worker
from store import Store
from tests.support import TINY_FINETUNE, workspace_with_pairs


def test_a_fine_tune_request_reads_back_as_written(tmp_path: Path) -> None:
    with Store.open(workspace_with_pairs(tmp_path / "ws")) as store:
        job = request_finetune(store, "auto", TINY_FINETUNE, reason="drift alarm")
        request = FinetuneRequest.of(store.get_job(job.id))
    assert (request.trigger, request.reason, request.production_version, request.config) == \
        ("auto", "drift alarm", 1, TINY_FINETUNE.to_dict())


def test_a_batch_request_round_trips_and_drops_repeated_ids(tmp_path: Path) -> None:
    with Store.open(tmp_path / "ws") as store:
        job = store.enqueue_job(BATCH_PREDICT, BatchPredictRequest((3, 1, 3), 2).to_params())
        assert BatchPredictRequest.of(store.get_job(job.id)) == \
            BatchPredictRequest((3, 1), 2, "upload", None)


@pytest.mark.parametrize("ids", [None, "1,2", [1, "2"], [True]])
def test_batch_params_without_integer_sample_ids_are_refused(tmp_path: Path, ids) -> None:
    with Store.open(tmp_path / "ws") as store:
        job = store.enqueue_job(BATCH_PREDICT, {"sample_ids": ids})
        with pytest.raises(JobParamsError, match=r"params\.sample_ids"):
            BatchPredictRequest.of(job)


def test_a_row_from_an_older_version_has_no_plan_and_default_request(tmp_path: Path) -> None:
    with Store.open(tmp_path / "ws") as store:
        job = store.enqueue_job(FINETUNE, {})
        assert FinetunePlan.of(job) is None
        assert (FinetuneRequest.of(job).trigger, FinetuneRequest.of(job).config) == ("manual", {})


def test_a_fine_tune_records_its_plan_and_the_tab_shows_epochs_from_it(tmp_path: Path) -> None:
    with Store.open(workspace_with_pairs(tmp_path / "ws")) as store:
        job = request_finetune(store, config=TINY_FINETUNE)
        assert run_worker(store.workspace, once=True) == 1
        done = store.get_job(job.id)
        plan = FinetunePlan.of(done)
        assert (plan.steps, plan.corrected_pairs, plan.anchor_pairs) == \
            (done.result["summary"]["steps"], 7, TINY_FINETUNE.anchor_train)
        epochs = f"epoch {done.step / plan.steps_per_epoch:.1f} / {done.total / plan.steps_per_epoch:.1f}"
        assert epochs in progress_html(done)
        result = FinetuneResult.of(done)
        assert (result.candidate_version, result.decision in ("promote", "reject")) == (2, True)
        assert (result.gate.candidate_version, result.summary.steps) == (2, plan.steps)


def test_a_batch_result_reads_back_and_a_malformed_one_is_named(tmp_path: Path) -> None:
    with Store.open(tmp_path / "ws") as store:
        job = store.enqueue_job(BATCH_PREDICT, BatchPredictRequest((1,), 1).to_params())
        store.claim_job(os.getpid())
        written = BatchResult(1, 1, 0, 0, ({"sample_id": 1, "error": "NotFoundError"},), 0.5)
        finished = store.finish_job(job.id, "succeeded", written.to_dict())
        assert BatchResult.of(finished) == written
        other = store.enqueue_job(BATCH_PREDICT, {"sample_ids": [2]})
        store.claim_job(os.getpid())
        with pytest.raises(JobParamsError, match="malformed batch result"):
            BatchResult.of(store.finish_job(other.id, "succeeded", {"predicted": 1}))


def test_training_summary_and_gate_result_round_trip_and_refuse_strangers() -> None:
    from loop.jobs import Check, GateResult, ToolTraining, TrainingSummary

    tool = ToolTraining(train_pairs=8, holdout_pairs=2, expert="expert-0.safetensors",
                        grey_levels="identity", gain=1.0, offset=0.0, started_from="the shared generator",
                        holdout_iou_start=0.4, holdout_iou_best=0.9, best_step=75, steps=100, seconds=60.0,
                        stop_reason="patience", history=[[25, 0.3, 0.8]])
    summary = TrainingSummary(job_id=3, trigger="manual", reason="r", parent_version=1, init="i",
                              pairs_used={"corrected_pairs": 8}, steps=100, train_seconds=60.0,
                              wall_seconds=70.0, stop_reason="done", device="cpu", cpu_threads=2,
                              config={"strategy": "tools"}, max_pair_id=10, strategy="tools",
                              tools={"tool:x": tool}, composition={"blend": 0.5}, warnings=("w",))
    data = summary.to_dict()
    assert data["blend"] == 0.5 and "composition" not in data  # the composition stays flat
    assert TrainingSummary.from_dict(data) == summary
    with pytest.raises(JobParamsError, match="unknown field"):
        TrainingSummary.from_dict({**data, "stepz": 1})
    gate = GateResult(2, 1, "reject", "why", (Check("IoU", 0.9, 0.8, 0.1, "> 0.005", True),),
                      {"old_data": {}}, {"old_data": {}}, 2, None, 1.5)
    assert GateResult.from_dict(gate.to_dict()) == gate
