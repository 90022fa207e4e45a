"""The worker as a real process: SIGKILL detection, one worker per workspace, spawning."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from loop.finetune import request_finetune
from loop.worker import _acquire_lock, run_worker, spawn_worker, worker_pid
from store import Store
from tests.support import TINY_FINETUNE

REPO = Path(__file__).resolve().parents[1]
ENDLESS = replace(TINY_FINETUNE, max_steps=100_000, epochs=10_000)


def wait_for(condition, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_sigkill_mid_job_is_detected_and_production_unchanged(workspace: Path) -> None:
    with Store.open(workspace) as store:
        job = request_finetune(store, config=ENDLESS)
    worker = subprocess.Popen([sys.executable, "-m", "loop", "worker", "--workspace",
                               str(workspace), "--once"], cwd=REPO, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        with Store.open(workspace) as store:
            wait_for(lambda: store.get_job(job.id).step > 0, what="training to start")
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(timeout=30)
            failed = store.get_job(job.id)  # get_job recovers stale jobs first
            assert failed.status == "failed"
            assert f"worker process {worker.pid} is gone" in failed.error
            assert [m.version for m in store.list_models()] == [1]
            assert store.production_model().version == 1
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def test_next_worker_removes_a_killed_job_leftovers(workspace: Path) -> None:
    leftover = workspace / "models" / ".finetune-job9.partial"
    leftover.mkdir()
    assert run_worker(workspace, once=True) == 0
    assert not leftover.exists()


def test_second_worker_exits_while_one_serves_the_workspace(workspace: Path) -> None:
    lock = _acquire_lock(workspace / "logs")
    try:
        with Store.open(workspace) as store:
            request_finetune(store)
        assert run_worker(workspace, once=True) == 0
        with Store.open(workspace) as store:
            assert store.list_jobs()[0].status == "queued"
    finally:
        lock.close()


def test_spawned_worker_runs_the_job_in_the_background(workspace: Path) -> None:
    with Store.open(workspace) as store:
        job = request_finetune(store)
        pid = spawn_worker(workspace)
        try:
            assert spawn_worker(workspace) == pid  # no second worker while one is alive
            wait_for(lambda: not store.get_job(job.id).active, what="the job to finish")
            assert store.get_job(job.id).status == "succeeded"
            assert worker_pid(workspace) == pid
        finally:
            os.kill(pid, signal.SIGTERM)
        wait_for(lambda: worker_pid(workspace) is None, timeout=30, what="the worker to exit")
