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
        assert result.gate["candidate_version"] == 2


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
