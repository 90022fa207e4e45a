"""The background worker process: claims queued jobs and runs them, one at a time.

Jobs are dispatched by kind (``JOB_RUNNERS``): ``finetune`` trains a candidate and lets the
promotion gate judge it; ``batch_predict`` predicts uploaded samples (``loop.batch``). Jobs run
in queue order, so a batch prediction waits for a running fine-tune and the other way round;
the store allows one training job at a time and never counts batch_predict as one.

``python -m loop worker --workspace W`` (or ``spawn_worker(W)``, which the UI and the CLI call)
runs in its own process, never in the UI server. One worker per workspace: it holds an
exclusive lock on ``logs/worker.lock`` for its lifetime, so a second one exits at once and
``worker_pid`` can tell whether one is alive. While a job runs, a heartbeat thread keeps the
job row fresh; a killed worker stops beating and its pid disappears, so the store marks the job
failed (``recover_stale_jobs``) and nothing half-made reaches the registry: the candidate is
trained in a ``.partial`` folder and registered only when complete, and the next worker removes
leftovers. SIGTERM/SIGINT stop it cleanly instead (``loop.shutdown``): the running job is
checkpointed and marked ``interrupted``, the worker exits within seconds, and the next worker
resumes the job (a fine-tune from its checkpoint, a candidate awaiting the gate at the gate).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import IO

from loop.finetune.candidate import resume_dir
from loop.jobrun import JOB_RUNNERS, WORKER_KINDS, JobReporter, interrupt, run_job
from loop.process import (
    LOG_NAME,
    PID_NAME,
    _acquire_lock,
    spawn_worker,
    stop_worker,
    worker_pid,
)
from loop.shutdown import Shutdown
from loop.triggers import check_triggers
from store import Store, StoreError

# Job running lives in loop.jobrun, process handling in loop.process; both are named here too.
__all__ = ["JOB_RUNNERS", "LOG_NAME", "WORKER_KINDS", "JobReporter", "run_job", "run_worker",
           "spawn_worker", "stop_worker", "worker_pid"]

def resume_pending(store: Store) -> int | None:
    """Start a worker when jobs wait (queued, or interrupted by a shutdown); returns its pid."""
    waiting = [j for j in store.list_jobs(limit=50) if j.status in ("queued", "interrupted")
               and j.kind in WORKER_KINDS]
    return spawn_worker(store.workspace) if waiting else None


def _clean_leftovers(store: Store) -> None:
    """Remove half-made folders of jobs that died (only one worker runs, so none is live)."""
    interrupted = {resume_dir(store, j.id) for j in store.list_jobs(status="interrupted")}
    leftovers = [*store.models_dir.glob(".finetune-*.partial"),
                 *(p for p in store.models_dir.glob(".finetune-*.resume") if p not in interrupted),
                 *(store.workspace / "data").glob(".gate-*"),
                 *(store.workspace / "data").glob(".anchor_*.partial-*")]
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)


def run_worker(workspace: str | Path, once: bool = False, poll_s: float = 2.0,
               idle_exit_s: float = 600.0, trigger_every_s: float = 60.0,
               out: IO[str] | None = None) -> int:
    """Claim and run queued jobs until idle for ``idle_exit_s`` (``once``: until none queued).

    While idle it also runs the automatic trigger every ``trigger_every_s`` seconds. Returns
    the number of jobs run (0 when another worker already serves the workspace).
    """
    out = out or sys.stdout
    with Store.open(workspace) as store:
        lock = _acquire_lock(store.logs_dir)
        if lock is None:
            print(f"another worker (pid {worker_pid(store.workspace)}) serves "
                  f"{store.workspace}", file=out, flush=True)
            return 0
        current: dict[str, int | None] = {"job": None}
        shutdown = Shutdown(on_overdue=lambda: _overdue(store, current["job"], out))
        try:
            (store.logs_dir / PID_NAME).write_text(f"{os.getpid()}\n")
            _clean_leftovers(store)
            print(f"worker pid {os.getpid()} serving {store.workspace}", file=out, flush=True)
            with shutdown.on_signals():
                return _serve(store, once, poll_s, idle_exit_s, trigger_every_s, out, shutdown,
                              current)
        finally:
            shutdown.cancel_watchdog()
            (store.logs_dir / PID_NAME).unlink(missing_ok=True)
            lock.close()


def _overdue(store: Store, job_id: int | None, out: IO[str]) -> None:
    """The watchdog's last act: the job that did not stop in time restarts later."""
    if job_id is not None:
        interrupt(store, job_id, "the worker shut down before the job reached a checkpoint; "
                   "it restarts from its beginning", None, out)


def _serve(store: Store, once: bool, poll_s: float, idle_exit_s: float,
           trigger_every_s: float, out: IO[str], shutdown: Shutdown,
           current: dict[str, int | None]) -> int:
    done, idle_since, last_check = 0, time.monotonic(), 0.0
    while not shutdown.requested:
        job = store.claim_job(os.getpid(), kinds=WORKER_KINDS)
        if job is not None:
            current["job"] = job.id
            finished = run_job(store, job, out, shutdown)
            current["job"] = None
            print(f"job {job.id} {finished.status}", file=out, flush=True)
            done, idle_since = done + 1, time.monotonic()
            continue
        if once:
            return done
        if time.monotonic() - last_check >= trigger_every_s:
            last_check = time.monotonic()
            try:
                decision = check_triggers(store)
            except StoreError as exc:  # e.g. a busy database: try again next round
                print(f"automatic trigger check failed: {exc}", file=out, flush=True)
            else:
                if decision.fired:
                    print(decision.message, file=out, flush=True)
                    continue
        if time.monotonic() - idle_since >= idle_exit_s:
            print(f"idle for {idle_exit_s:.0f} s: exiting", file=out, flush=True)
            return done
        shutdown.event.wait(poll_s)
    waited = time.monotonic() - (shutdown.requested_at or time.monotonic())
    print(f"shutdown ({shutdown.reason}): exiting after {waited:.1f} s", file=out, flush=True)
    return done
