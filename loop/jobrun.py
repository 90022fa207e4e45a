"""Running one claimed job: its reporter (heartbeat, cancel, shutdown) and the runner per kind.

Jobs are dispatched by kind (``JOB_RUNNERS``): ``finetune`` trains a candidate and lets the
promotion gate judge it; ``batch_predict`` predicts uploaded samples (``loop.batch``). A job
ends ``succeeded``, ``failed``, ``cancelled``, or ``interrupted`` when the worker shuts down
(resumable: a fine-tune from its checkpoint, or at the gate when its candidate is registered).
``loop.worker`` claims the jobs and calls ``run_job``.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from datetime import datetime
from pathlib import Path
from typing import IO

from loop.batch import run_batch_predict
from loop.finetune import FinetuneConfig, JobCancelled, JobInterrupted, run_finetune
from loop.gate import run_gate
from loop.jobs import (
    BATCH_PREDICT,
    FINETUNE,
    WORKER_KINDS,
    FinetunePlan,
    FinetuneRequest,
    FinetuneResult,
    TrainingSummary,
)
from loop.shutdown import Shutdown
from loop.toolgate import adapted_tools, gate_tools
from store import Job, JobStateError, Store, StoreError


class JobReporter:
    """Reports a running job to the store; a background thread heartbeats every few seconds."""

    def __init__(self, store: Store, job_id: int, out: IO[str] | None = None,
                 heartbeat_s: float = 5.0, max_silence_s: float = 1800.0,
                 shutdown: Shutdown | None = None) -> None:
        self.store, self.job_id, self.out = store, job_id, out or sys.stdout
        self.heartbeat_s, self.max_silence_s = heartbeat_s, max_silence_s
        self.shutdown = shutdown or Shutdown()
        self.cancel_requested = False  # by the user (or the job was lost), not a shutdown
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

    @property
    def interrupted(self) -> bool:
        """The worker shuts down: stop resumable (unless cancelled anyway)."""
        return self.shutdown.requested and not self.cancel_requested

    @property
    def cancelled(self) -> bool:
        """Stop now: cancelled, lost, or the worker shuts down."""
        return self.cancel_requested or self.shutdown.requested

    def _mark(self, call: object) -> None:
        """Run a store call that returns the cancel flag; a finished job counts as cancelled."""
        try:
            if call():  # type: ignore[operator]
                self.cancel_requested = True
        except JobStateError as exc:
            self.lost, self.cancel_requested = str(exc), True
        self._touched = time.monotonic()

    def _beat(self) -> None:
        # A main thread silent for max_silence_s is hung: stop beating so the store notices.
        while not self._stop.wait(self.heartbeat_s):
            if time.monotonic() - self._touched < self.max_silence_s:
                try:
                    if self.store.heartbeat(self.job_id):
                        self.cancel_requested = True
                except JobStateError as exc:
                    self.lost, self.cancel_requested = str(exc), True
                except StoreError as exc:  # a busy database: beat again next time
                    print(f"heartbeat failed: {exc}", file=self.out, flush=True)

    def log(self, line: str) -> None:
        """Append to the job log (and the worker's own log)."""
        stamp = datetime.now().strftime("%H:%M:%S")
        print(f"[{stamp}] job {self.job_id}: {line}", file=self.out, flush=True)
        self._mark(lambda: self.store.append_job_log(self.job_id, line))

    def warn(self, warning: str) -> None:
        """A warning to the job row's list (and its log)."""
        stamp = datetime.now().strftime("%H:%M:%S")
        print(f"[{stamp}] job {self.job_id}: warning: {warning}", file=self.out, flush=True)
        self._mark(lambda: self.store.add_job_warning(self.job_id, warning))

    def progress(self, step: int, total: int, eta_seconds: float | None, losses: dict) -> None:
        """Step, total, ETA and losses to the job row (also a heartbeat)."""
        self._mark(lambda: self.store.update_job_progress(self.job_id, step, total, eta_seconds,
                                                          losses))

    def plan(self, plan: FinetunePlan) -> None:
        """The run's plan to the job row (the Fine-tune tab's epochs)."""
        self._mark(lambda: self.store.set_job_plan(self.job_id, plan.to_dict()))

    def check_cancel(self) -> None:
        """Raise JobInterrupted on shutdown, JobCancelled when the job should stop."""
        if self.interrupted:
            raise JobInterrupted(f"the worker shut down ({self.shutdown.reason})")
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
    candidate_version, gate_state = None, _awaiting_gate(store, job)
    try:
        if gate_state is None:
            reporter.log(f"fine-tune started ({FinetuneRequest.of(job).reason})")
            outcome = run_finetune(store, job.params, reporter, job.id)
            gate_state = {"phase": "gate", "candidate_version": outcome.candidate.version,
                          "anchor_test": str(outcome.anchor_test),
                          "tile_size": outcome.tile_size, "summary": outcome.summary.to_dict()}
        else:
            reporter.log(f"resuming at the gate of candidate v{gate_state['candidate_version']}")
        candidate_version = gate_state["candidate_version"]
        reporter.check_cancel()
        config = FinetuneConfig.from_dict(FinetuneRequest.of(job).config)
        if adapted_tools(store.get_model(candidate_version)):
            gate = gate_tools(store, candidate_version, gate_state["tile_size"], config.gate,
                              device=config.device, log=reporter.log,
                              check_cancel=reporter.check_cancel)
        else:
            gate = run_gate(store, candidate_version, Path(gate_state["anchor_test"]),
                            gate_state["tile_size"], config.gate, device=config.device,
                            log=reporter.log, check_cancel=reporter.check_cancel)
        return FinetuneResult(candidate_version, gate.decision, gate.reason, gate,
                              TrainingSummary.from_dict(gate_state["summary"])).to_dict()
    except JobInterrupted as exc:
        if candidate_version is not None:  # trained and registered: only the gate is left
            exc.resume = gate_state
        raise
    except JobCancelled:
        _retire(store, candidate_version, f"job {job.id} was cancelled before the gate")
        raise
    except Exception:
        _retire(store, candidate_version, f"job {job.id} failed before the gate decided")
        raise


def _awaiting_gate(store: Store, job: Job) -> dict | None:
    """An interrupted fine-tune's candidate that still waits for the gate, if any."""
    state = job.result or {}
    if state.get("phase") != "gate":
        return None
    try:
        if store.get_model(int(state["candidate_version"])).status == "candidate":
            return state
    except (StoreError, KeyError, ValueError):
        pass
    return None


JOB_RUNNERS = {FINETUNE: _finetune, BATCH_PREDICT: run_batch_predict}
assert tuple(JOB_RUNNERS) == WORKER_KINDS  # loop.jobs names the kinds, this maps them to code


def run_job(store: Store, job: Job, out: IO[str] | None = None,
            shutdown: Shutdown | None = None) -> Job:
    """Run one claimed job to its end and record the outcome; never raises for a job error."""
    out = out or sys.stdout
    with JobReporter(store, job.id, out, shutdown=shutdown) as reporter:
        try:
            runner = JOB_RUNNERS.get(job.kind)
            if runner is None:
                raise ValueError(f"this worker runs {', '.join(WORKER_KINDS)} jobs, "
                                 f"not {job.kind!r}")
            return store.finish_job(job.id, "succeeded", runner(store, job, reporter))
        except JobCancelled as exc:
            if isinstance(exc, JobInterrupted) or reporter.interrupted:
                reporter.shutdown.request("the job was interrupted", watchdog=False)
                return interrupt(store, job.id, str(exc), getattr(exc, "resume", None), out)
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


def interrupt(store: Store, job_id: int, reason: str, resume: dict | None, out: IO[str]) -> Job:
    """interrupt_job, tolerating a job the store no longer counts as running."""
    try:
        job = store.interrupt_job(job_id, reason, resume)
        print(f"job {job_id} interrupted: {reason}", file=out, flush=True)
        return job
    except JobStateError as exc:
        print(f"job {job_id}: {exc}", file=out, flush=True)
        return store.get_job(job_id)
