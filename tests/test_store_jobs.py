"""Job queue: conflicts, claiming, progress, cancellation, stale-job recovery."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from store import InvalidInputError, JobConflictError, JobStateError, Store


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_enqueue_round_trip(store: Store) -> None:
    job = store.enqueue_job("finetune", {"epochs": 20})
    assert store.get_job(job.id) == job
    assert (job.kind, job.params, job.status, job.step, job.total) == \
        ("finetune", {"epochs": 20}, "queued", 0, 0)


def test_unknown_job_kind_raises(store: Store) -> None:
    with pytest.raises(InvalidInputError):
        store.enqueue_job("mine_bitcoin", {})


def test_second_training_job_conflicts(store: Store) -> None:
    store.enqueue_job("train", {})
    with pytest.raises(JobConflictError):
        store.enqueue_job("finetune", {})


def test_batch_jobs_do_not_conflict_with_training(store: Store) -> None:
    store.enqueue_job("finetune", {})
    store.enqueue_job("batch_predict", {})
    store.enqueue_job("evaluate", {})
    assert len(store.list_jobs(status="queued")) == 3


def test_training_allowed_again_after_finish(store: Store) -> None:
    job = store.enqueue_job("finetune", {})
    store.claim_job(worker_pid=1)
    store.finish_job(job.id, "succeeded", {"version": 2})
    assert store.enqueue_job("finetune", {}).status == "queued"


def test_claim_takes_oldest_queued_job_once(store: Store) -> None:
    first = store.enqueue_job("evaluate", {})
    store.enqueue_job("batch_predict", {})
    claimed = store.claim_job(worker_pid=4242)
    assert (claimed.id, claimed.status, claimed.pid) == (first.id, "running", 4242)
    assert store.claim_job(worker_pid=4243).id == first.id + 1
    assert store.claim_job(worker_pid=4244) is None


def test_claim_can_filter_kinds(store: Store) -> None:
    store.enqueue_job("evaluate", {})
    wanted = store.enqueue_job("batch_predict", {})
    assert store.claim_job(worker_pid=1, kinds=("batch_predict",)).id == wanted.id


def test_progress_round_trip_with_loss_history(store: Store) -> None:
    job = store.enqueue_job("finetune", {})
    store.claim_job(worker_pid=1)
    store.update_job_progress(job.id, 1, 10, 90.0, {"d_loss": 0.5, "g_loss": 3.0}, "epoch 1")
    store.update_job_progress(job.id, 2, 10, 80.0, {"d_loss": 0.4, "g_loss": 2.5}, "epoch 2")
    got = store.get_job(job.id)
    assert (got.step, got.total, got.eta_seconds, got.last_losses, got.log_lines) == \
        (2, 10, 80.0, {"d_loss": 0.4, "g_loss": 2.5}, ("epoch 1", "epoch 2"))
    assert got.progress == 0.2
    assert [(h["step"], h["g_loss"]) for h in store.job_losses(job.id)] == [(1, 3.0), (2, 2.5)]


def test_log_keeps_last_200_lines(store: Store) -> None:
    job = store.enqueue_job("evaluate", {})
    store.claim_job(worker_pid=1)
    for i in range(205):
        store.append_job_log(job.id, f"line {i}")
    lines = store.get_job(job.id).log_lines
    assert (len(lines), lines[0], lines[-1]) == (200, "line 5", "line 204")


def test_warnings_are_a_list_of_their_own_and_logged(store: Store) -> None:
    job = store.enqueue_job("finetune", {})
    store.claim_job(worker_pid=1)
    assert store.get_job(job.id).warnings == ()
    store.append_job_log(job.id, "epoch 1")
    store.add_job_warning(job.id, "D-loss spike at step 40")
    got = store.get_job(job.id)
    assert got.warnings == ("D-loss spike at step 40",)
    assert got.log_lines == ("epoch 1", "warning: D-loss spike at step 40")


def test_finish_round_trip(store: Store) -> None:
    job = store.enqueue_job("evaluate", {})
    store.claim_job(worker_pid=1)
    done = store.finish_job(job.id, "failed", {"partial": True}, "out of memory")
    assert (done.status, done.result, done.error) == ("failed", {"partial": True},
                                                      "out of memory")
    assert [e.kind for e in store.list_events(limit=1)] == ["job_failed"]


def test_finishing_twice_raises(store: Store) -> None:
    job = store.enqueue_job("evaluate", {})
    store.claim_job(worker_pid=1)
    store.finish_job(job.id, "succeeded", {})
    with pytest.raises(JobStateError):
        store.finish_job(job.id, "failed", {}, "late")


def test_cancel_of_queued_job_is_immediate(store: Store) -> None:
    job = store.enqueue_job("finetune", {})
    assert store.request_cancel(job.id).status == "cancelled"
    assert store.claim_job(worker_pid=1) is None


def test_cancel_of_running_job_is_a_request_the_worker_sees(store: Store) -> None:
    job = store.enqueue_job("finetune", {})
    store.claim_job(worker_pid=1)
    store.request_cancel(job.id)
    assert store.cancel_requested(job.id) is True
    assert store.update_job_progress(job.id, 3, 10) is True
    assert store.heartbeat(job.id) is True


def test_job_with_old_heartbeat_is_marked_failed(store: Store) -> None:
    job = store.enqueue_job("finetune", {})
    store.claim_job(worker_pid=1)  # pid 1 exists: only the heartbeat can tell
    with store._write() as db:
        db["jobs"].update(job.id, {"heartbeat": time.time() - 120})
    recovered = store.recover_stale_jobs(stale_after_s=60)
    assert [j.id for j in recovered] == [job.id]
    got = store.get_job(job.id)
    assert got.status == "failed"
    assert got.error.startswith("no heartbeat for 120 s")


def test_job_whose_worker_process_is_gone_is_marked_failed(store: Store) -> None:
    job = store.enqueue_job("batch_predict", {})
    pid = dead_pid()
    store.claim_job(worker_pid=pid)
    failed = store.list_jobs()[0]  # the UI poll recovers it
    assert (failed.id, failed.status, failed.error) == \
        (job.id, "failed", f"worker process {pid} is gone (killed or crashed)")


def test_stale_job_is_recovered_when_the_store_is_opened(tmp_path: Path) -> None:
    with Store.open(tmp_path / "ws") as first:
        job = first.enqueue_job("finetune", {})
        first.claim_job(worker_pid=dead_pid())
    with Store.open(tmp_path / "ws") as second:
        row = second._conns.db().execute("SELECT status FROM jobs WHERE id = ?",
                                         [job.id]).fetchone()
    assert row[0] == "failed"


def test_healthy_running_job_is_left_alone(store: Store) -> None:
    store.enqueue_job("evaluate", {})
    store.claim_job(worker_pid=1)
    assert store.recover_stale_jobs(stale_after_s=60) == []


def test_progress_on_a_job_declared_failed_raises(store: Store) -> None:
    job = store.enqueue_job("batch_predict", {})
    store.claim_job(worker_pid=dead_pid())
    store.recover_stale_jobs()
    with pytest.raises(JobStateError):
        store.update_job_progress(job.id, 1, 2)
