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
leftovers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
import traceback
from datetime import datetime
from pathlib import Path
from typing import IO

from loop.batch import run_batch_predict
from loop.finetune import FinetuneConfig, JobCancelled, run_finetune
from loop.gate import run_gate
from loop.triggers import check_triggers
from store import Job, JobStateError, Store, StoreError
from store.jobs import pid_alive

try:
    import fcntl
except ImportError:  # Windows: fall back to the pid file alone
    fcntl = None

LOCK_NAME, PID_NAME, SPAWNED_NAME, LOG_NAME = ("worker.lock", "worker.pid", "worker.spawned",
                                               "worker.log")
REPO_ROOT = Path(__file__).resolve().parents[1]
SPAWN_GRACE_S = 60.0  # a just-spawned worker counts as alive while it imports torch


class JobReporter:
    """Reports a running job to the store; a background thread heartbeats every few seconds."""

    def __init__(self, store: Store, job_id: int, out: IO[str] | None = None,
                 heartbeat_s: float = 5.0, max_silence_s: float = 1800.0) -> None:
        self.store, self.job_id, self.out = store, job_id, out or sys.stdout
        self.heartbeat_s, self.max_silence_s = heartbeat_s, max_silence_s
        self.cancelled = False
        self.lost: str | None = None  # set when the store no longer counts the job as running
        self._touched = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-job{job_id}",
                                        daemon=True)

    def __enter__(self) -> JobReporter:
        """Start heartbeating."""
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop heartbeating."""
        self._stop.set()
        self._thread.join(timeout=10)

    def _mark(self, call: object) -> None:
        """Run a store call that returns the cancel flag; a finished job counts as cancelled."""
        try:
            if call():  # type: ignore[operator]
                self.cancelled = True
        except JobStateError as exc:
            self.lost, self.cancelled = str(exc), True
        self._touched = time.monotonic()

    def _beat(self) -> None:
        # A main thread silent for max_silence_s is hung: stop beating so the store notices.
        while not self._stop.wait(self.heartbeat_s):
            if time.monotonic() - self._touched < self.max_silence_s:
                try:
                    if self.store.heartbeat(self.job_id):
                        self.cancelled = True
                except JobStateError as exc:
                    self.lost, self.cancelled = str(exc), True
                except StoreError as exc:  # a busy database: beat again next time
                    print(f"heartbeat failed: {exc}", file=self.out, flush=True)

    def log(self, line: str) -> None:
        """Append to the job log (and the worker's own log)."""
        stamp = datetime.now().strftime("%H:%M:%S")
        print(f"[{stamp}] job {self.job_id}: {line}", file=self.out, flush=True)
        self._mark(lambda: self.store.append_job_log(self.job_id, line))

    def progress(self, step: int, total: int, eta_seconds: float | None, losses: dict) -> None:
        """Step, total, ETA and losses to the job row (also a heartbeat)."""
        self._mark(lambda: self.store.update_job_progress(self.job_id, step, total, eta_seconds,
                                                          losses))

    def check_cancel(self) -> None:
        """Raise JobCancelled when the job should stop."""
        if self.cancelled:
            raise JobCancelled(self.lost or "cancelled on request")


def _retire(store: Store, version: int | None, reason: str) -> None:
    """Reject a candidate the gate never judged (cancel or failure after registration)."""
    if version is None:
        return
    try:
        if store.get_model(version).status == "candidate":
            store.reject(version, reason, actor="worker")
    except StoreError:
        pass  # best effort: the job's own outcome is what matters


def _finetune(store: Store, job: Job, reporter: JobReporter) -> dict:
    """The fine-tune path: train a candidate, then let the gate judge it; returns the result."""
    candidate_version = None
    try:
        reporter.log(f"fine-tune started ({job.params.get('reason', 'no reason given')})")
        outcome = run_finetune(store, job.params, reporter, job.id)
        candidate_version = outcome.candidate.version
        reporter.check_cancel()
        config = FinetuneConfig.from_dict(job.params.get("config", {}))
        gate = run_gate(store, candidate_version, outcome.anchor_test, outcome.tile_size,
                        config.gate, device=config.device, log=reporter.log,
                        check_cancel=reporter.check_cancel)
        return {"candidate_version": candidate_version, "decision": gate.decision,
                "reason": gate.reason, "gate": gate.to_dict(), "summary": outcome.summary}
    except JobCancelled:
        _retire(store, candidate_version, f"job {job.id} was cancelled before the gate")
        raise
    except Exception:
        _retire(store, candidate_version, f"job {job.id} failed before the gate decided")
        raise


JOB_RUNNERS = {"finetune": _finetune, "batch_predict": run_batch_predict}
WORKER_KINDS = tuple(JOB_RUNNERS)  # what the worker claims; "train"/"evaluate" have no runner


def run_job(store: Store, job: Job, out: IO[str] | None = None) -> Job:
    """Run one claimed job to its end and record the outcome; never raises for a job error."""
    out = out or sys.stdout
    with JobReporter(store, job.id, out) as reporter:
        try:
            runner = JOB_RUNNERS.get(job.kind)
            if runner is None:
                raise ValueError(f"this worker runs {', '.join(WORKER_KINDS)} jobs, "
                                 f"not {job.kind!r}")
            return store.finish_job(job.id, "succeeded", runner(store, job, reporter))
        except JobCancelled as exc:
            return _finish(store, job.id, "cancelled", f"cancelled: {exc}", out,
                           getattr(exc, "result", None))
        except Exception as exc:  # the job fails; the worker lives on
            traceback.print_exc(file=out)
            return _finish(store, job.id, "failed", f"{type(exc).__name__}: {exc}", out)


def _finish(store: Store, job_id: int, status: str, error: str, out: IO[str],
            result: dict | None = None) -> Job:
    """finish_job, tolerating a job that the store already marked failed (stale recovery)."""
    try:
        return store.finish_job(job_id, status, result, error=error)
    except JobStateError as exc:
        print(f"job {job_id}: {exc}", file=out, flush=True)
        return store.get_job(job_id)


# -- one worker per workspace -----------------------------------------------------------------


def _acquire_lock(logs: Path, attempts: int = 5) -> IO[bytes] | None:
    """The open, exclusively locked lock file, or None when another process holds it."""
    logs.mkdir(parents=True, exist_ok=True)
    handle = open(logs / LOCK_NAME, "ab")  # noqa: SIM115 - held for the process lifetime
    if fcntl is None:
        return handle
    for attempt in range(attempts):  # worker_pid() probes the lock for a moment: retry
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            if attempt < attempts - 1:
                time.sleep(0.2)
    handle.close()
    return None


def worker_pid(workspace: str | Path) -> int | None:
    """The pid of the workspace's live worker, or None."""
    logs = Path(workspace) / "logs"
    if fcntl is not None and (logs / LOCK_NAME).exists():
        with open(logs / LOCK_NAME, "ab") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(handle, fcntl.LOCK_UN)
            except BlockingIOError:
                pid = _read_pid(logs / PID_NAME)
                if pid is not None:
                    return pid
    elif fcntl is None:
        pid = _read_pid(logs / PID_NAME)
        if pid is not None and pid_alive(pid):
            return pid
    spawned = logs / SPAWNED_NAME
    pid = _read_pid(spawned)
    if pid is not None and time.time() - spawned.stat().st_mtime < SPAWN_GRACE_S \
            and pid_alive(pid):
        return pid
    return None


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def spawn_worker(workspace: str | Path) -> int:
    """Start a detached worker process for the workspace unless one is alive; returns its pid."""
    workspace = Path(workspace).resolve()
    running = worker_pid(workspace)
    if running is not None:
        return running
    logs = workspace / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    with open(logs / LOG_NAME, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "loop", "worker", "--workspace", str(workspace)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
            env=env, start_new_session=True)  # survives the UI/CLI that started it
    (logs / SPAWNED_NAME).write_text(f"{process.pid}\n")
    return process.pid


def _clean_leftovers(store: Store) -> None:
    """Remove half-made folders of jobs that died (only one worker runs, so none is live)."""
    leftovers = [*store.models_dir.glob(".finetune-*.partial"),
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
        try:
            (store.logs_dir / PID_NAME).write_text(f"{os.getpid()}\n")
            _clean_leftovers(store)
            print(f"worker pid {os.getpid()} serving {store.workspace}", file=out, flush=True)
            return _serve(store, once, poll_s, idle_exit_s, trigger_every_s, out)
        finally:
            (store.logs_dir / PID_NAME).unlink(missing_ok=True)
            lock.close()


def _serve(store: Store, once: bool, poll_s: float, idle_exit_s: float,
           trigger_every_s: float, out: IO[str]) -> int:
    done, idle_since, last_check = 0, time.monotonic(), 0.0
    while True:
        job = store.claim_job(os.getpid(), kinds=WORKER_KINDS)
        if job is not None:
            finished = run_job(store, job, out)
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
        time.sleep(poll_s)
