"""loop.batch: uploads stored at once and predicted in one background batch_predict job."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest

import loop.batch
from loop.batch import (
    BatchCancelled,
    expand_paths,
    ingest_files,
    run_batch_predict,
    waiting_samples,
)
from loop.finetune import request_finetune
from loop.worker import WORKER_KINDS, run_job, run_worker
from semgan.imageio import save_png
from semgan.semsim import PROFILES
from semgan.synth import make_pair
from store import Job, Store
from tests.support import NM_PER_PX, SIZE, add_pairs, install_production


class ListReporter:
    """A Reporter that keeps what it is told; asks to stop once ``cancel_after`` images are done."""

    def __init__(self, cancel_after: int | None = None) -> None:
        self.cancelled, self.cancel_after = False, cancel_after
        self.lines: list[str] = []
        self.steps: list[tuple[int, int, float | None]] = []

    def log(self, line: str) -> None:
        self.lines.append(line)

    def warn(self, warning: str) -> None:
        self.lines.append(f"warning: {warning}")

    def progress(self, step: int, total: int, eta_seconds: float | None, losses: dict) -> None:
        self.steps.append((step, total, eta_seconds))
        if self.cancel_after is not None and step >= self.cancel_after:
            self.cancelled = True

    def check_cancel(self) -> None:
        pass


def sem_files(folder: Path, count: int) -> list[Path]:
    """``count`` distinct synthetic SEM PNGs (no pixel size in the file)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        pair = make_pair(index, size=SIZE, nm_per_px=NM_PER_PX, profiles=[PROFILES["clean"]],
                         seed=21)
        paths.append(folder / f"scan{index}.png")
        save_png(paths[-1], pair.sem_image)
    return paths


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """A workspace with a tiny production model v1."""
    with Store.open(tmp_path / "ws") as opened:
        install_production(opened)
        yield opened


def queued(store: Store, tmp_path: Path, count: int = 3) -> Job:
    """The batch job queued for ``count`` uploaded images (no worker started)."""
    batch = ingest_files(store, sem_files(tmp_path / "in", count), NM_PER_PX, spawn=False)
    return batch.job


def predicted_ids(store: Store, job: Job) -> list[int]:
    return [s for s in job.params["sample_ids"] if store.get_prediction(s, 1) is not None]


def test_upload_of_three_images_queues_one_job_with_production_version(
        store: Store, tmp_path: Path) -> None:
    job = queued(store, tmp_path)
    assert (job.kind, job.status, job.params["sample_ids"], job.params["model_version"]) == \
        ("batch_predict", "queued", [1, 2, 3], 1)
    assert predicted_ids(store, job) == []


def test_batch_job_goes_from_queued_to_running_to_succeeded(store: Store, tmp_path: Path) -> None:
    job = queued(store, tmp_path)
    claimed = store.claim_job(os.getpid(), kinds=WORKER_KINDS)
    assert (claimed.id, claimed.status) == (job.id, "running")
    finished = run_job(store, claimed, out=io.StringIO())
    assert (finished.status, finished.step, finished.total) == ("succeeded", 3, 3)
    assert {k: finished.result[k] for k in ("model_version", "predicted", "skipped", "failed")} \
        == {"model_version": 1, "predicted": 3, "skipped": 0, "failed": []}
    assert predicted_ids(store, job) == [1, 2, 3]


def test_a_corrupt_file_is_reported_and_the_others_are_stored(store: Store,
                                                              tmp_path: Path) -> None:
    good = sem_files(tmp_path / "in", 2)
    broken = tmp_path / "in" / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 8)
    batch = ingest_files(store, [good[0], broken, good[1], tmp_path / "gone.tif"], NM_PER_PX,
                         spawn=False)
    assert [f.name for f in batch.failed] == ["broken.png", "gone.tif"]
    assert "broken.png" in batch.failed[0].error
    assert [r.sample.id for r in batch.stored] == [1, 2]
    assert batch.job.params["sample_ids"] == [1, 2]


def test_a_single_image_is_predicted_inline_without_a_job(store: Store, tmp_path: Path) -> None:
    batch = ingest_files(store, sem_files(tmp_path / "in", 1), NM_PER_PX, spawn=False)
    assert batch.job is None
    assert batch.stored[0].prediction.model_version == 1
    assert store.list_jobs() == []


def test_without_a_production_model_images_are_stored_unpredicted(tmp_path: Path) -> None:
    with Store.open(tmp_path / "empty") as empty:
        batch = ingest_files(empty, sem_files(tmp_path / "in", 2), NM_PER_PX, spawn=False)
        assert (len(batch.stored), batch.job, batch.model_version) == (2, None, None)


def test_cancel_between_images_keeps_the_finished_predictions(store: Store, tmp_path: Path) -> None:
    job = queued(store, tmp_path)
    with pytest.raises(BatchCancelled) as stopped:
        run_batch_predict(store, job, ListReporter(cancel_after=1))
    assert stopped.value.result["predicted"] == 1
    assert predicted_ids(store, job) == [1]


def test_a_cancel_requested_through_the_store_ends_the_job_cancelled(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    job = queued(store, tmp_path)
    real = loop.batch.predict_sample

    def predict_then_cancel(store_, sample_id, *args):
        prediction = real(store_, sample_id, *args)
        store_.request_cancel(job.id)  # the engineer clicks Cancel while image 1 runs
        return prediction

    monkeypatch.setattr(loop.batch, "predict_sample", predict_then_cancel)
    finished = run_job(store, store.claim_job(os.getpid()), out=io.StringIO())
    assert (finished.status, finished.result["predicted"]) == ("cancelled", 1)
    assert predicted_ids(store, job) == [1]


def test_rerunning_after_a_crash_skips_predicted_samples(store: Store, tmp_path: Path) -> None:
    job = queued(store, tmp_path)
    loop.batch.predict_sample(store, 2, 1)  # done before the worker died
    result = run_batch_predict(store, job, ListReporter())
    assert (result["predicted"], result["skipped"]) == (2, 1)
    assert run_batch_predict(store, job, ListReporter())["skipped"] == 3
    assert len([p for p in (store.get_prediction(s, 1) for s in (1, 2, 3)) if p]) == 3


def test_a_failing_sample_is_recorded_and_the_job_goes_on(store: Store, tmp_path: Path) -> None:
    job = queued(store, tmp_path, count=2)
    broken = store.enqueue_job("batch_predict", {"sample_ids": [1, 999, 2], "model_version": 1})
    result = run_batch_predict(store, broken, ListReporter())
    assert result["predicted"] == 2
    assert [f["sample_id"] for f in result["failed"]] == [999]
    assert result["failed"][0]["error"].startswith("NotFoundError: sample 999")
    assert predicted_ids(store, job) == [1, 2]


def test_progress_reports_every_image_with_an_eta(store: Store, tmp_path: Path) -> None:
    reporter = ListReporter()
    run_batch_predict(store, queued(store, tmp_path), reporter)
    assert [(step, total) for step, total, _ in reporter.steps] == [(0, 3), (1, 3), (2, 3),
                                                                     (3, 3)]
    assert reporter.steps[1][2] > 0 and reporter.steps[3][2] == 0


def test_waiting_samples_shrink_as_samples_are_predicted(store: Store, tmp_path: Path) -> None:
    job = queued(store, tmp_path)
    loop.batch.predict_sample(store, 1, 1)  # viewed in the Review tab meanwhile
    assert waiting_samples(store, job) == [2, 3]


def test_the_worker_runs_batch_jobs_and_fails_kinds_it_has_no_runner_for(
        store: Store, tmp_path: Path) -> None:
    job = queued(store, tmp_path, count=2)
    assert run_worker(store.workspace, once=True, out=io.StringIO()) == 1
    assert store.get_job(job.id).status == "succeeded"
    evaluate = store.enqueue_job("evaluate", {})
    finished = run_job(store, store.claim_job(os.getpid()), out=io.StringIO())
    assert (finished.id, finished.status) == (evaluate.id, "failed")
    assert finished.error == ("ValueError: this worker runs finetune, batch_predict jobs, "
                              "not 'evaluate'")


def test_a_queued_batch_job_does_not_block_a_fine_tune(store: Store, tmp_path: Path) -> None:
    queued(store, tmp_path)
    add_pairs(store, 3)
    assert request_finetune(store).kind == "finetune"


def test_folders_expand_to_their_images_recursively(tmp_path: Path) -> None:
    (tmp_path / "lot" / "sub").mkdir(parents=True)
    for name in ("b.png", "sub/a.TIF", "notes.txt"):
        (tmp_path / "lot" / name).write_bytes(np.zeros(4, np.uint8).tobytes())
    assert expand_paths([tmp_path / "lot", tmp_path / "x.png"]) == [
        tmp_path / "lot" / "b.png", tmp_path / "lot" / "sub" / "a.TIF", tmp_path / "x.png"]
