"""Background jobs: a queue in the database that worker processes claim, report to and finish.

A worker heartbeats (every progress update does); a running job whose heartbeat stopped or
whose process is gone is marked failed by recover_stale_jobs, which runs on open and polls.
A worker that is asked to shut down marks its job ``interrupted`` (``interrupt_job``); the next
worker claims it again like a queued job and resumes it.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from sqlite_utils import Database

from store.base import StoreBase, check_dict, dumps, loads
from store.errors import InvalidInputError, JobConflictError, JobStateError, NotFoundError
from store.records import FINISHED_JOB_STATUSES, JOB_KINDS, TRAINING_JOB_KINDS, Job

LOG_LINES_KEPT = 200
DEFAULT_STALE_AFTER_S = 60.0


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host and is not a zombie (POSIX only)."""
    if os.name != "posix":
        return True  # os.kill(pid, 0) would terminate it on Windows; rely on heartbeats
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    try:  # a killed child its parent has not reaped yet is a zombie: dead for our purpose
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def row_to_job(row: dict) -> Job:
    """Job record from a jobs row."""
    return Job(
        id=row["id"], kind=row["kind"], params=loads(row["params_json"], {}),
        status=row["status"], created=row["created"], started=row["started"],
        finished=row["finished"], heartbeat=row["heartbeat"], pid=row["pid"], host=row["host"],
        step=row["step"] or 0, total=row["total"] or 0, eta_seconds=row["eta_seconds"],
        log_lines=tuple(loads(row["log_json"], [])), last_losses=loads(row["last_losses_json"], {}),
        result=loads(row["result_json"]), error=row["error"],
        cancel_requested=bool(row["cancel_requested"]), plan=loads(row.get("plan_json")),
        warnings=tuple(loads(row.get("warnings_json"), [])))


def row_result(row: dict) -> dict | None:
    """The result stored on a jobs row (an interrupted job's resume state)."""
    return loads(row["result_json"])


class JobsMixin(StoreBase):
    """The job queue."""

    stale_after_s: float = DEFAULT_STALE_AFTER_S

    def _job_row(self, db: Database, job_id: int) -> dict:
        """The jobs row or NotFoundError."""
        rows = list(db.query("SELECT * FROM jobs WHERE id = ?", [job_id]))
        if not rows:
            raise NotFoundError(f"job {job_id} does not exist")
        return rows[0]

    def _running_row(self, db: Database, job_id: int) -> dict:
        """The jobs row, which must be running (JobStateError otherwise)."""
        row = self._job_row(db, job_id)
        if row["status"] != "running":
            reason = f": {row['error']}" if row["error"] else ""
            raise JobStateError(f"job {job_id} is {row['status']}{reason}; stop working on it")
        return row

    def enqueue_job(self, kind: str, params: dict | None = None) -> Job:
        """Queue a job; at most one train/finetune job may be queued or running at a time."""
        if kind not in JOB_KINDS:
            raise InvalidInputError(f"job kind must be one of {JOB_KINDS}, got {kind!r}")
        params = check_dict(params, "job params")
        with self._write() as db:
            if kind in TRAINING_JOB_KINDS:
                busy = db.execute(
                    "SELECT id, kind, status FROM jobs WHERE status IN ('queued', 'running', "
                    "'interrupted') "
                    "AND kind IN ('train', 'finetune') ORDER BY id LIMIT 1").fetchone()
                if busy is not None:
                    raise JobConflictError(
                        f"{busy[1]} job {busy[0]} is already {busy[2]}; wait for it to finish "
                        "(an interrupted one resumes with the next worker) or cancel it before "
                        "starting another training run")
            row = {"kind": kind, "params_json": dumps(params), "status": "queued",
                   "created": time.time(), "step": 0, "total": 0, "log_json": "[]",
                   "last_losses_json": "{}", "cancel_requested": 0}
            job_id = db["jobs"].insert(row).last_pk
            self._event(db, "job_queued", f"{kind} job {job_id} queued", {"job_id": job_id})
            return row_to_job(self._job_row(db, job_id))

    def claim_job(self, worker_pid: int, kinds: tuple[str, ...] | None = None) -> Job | None:
        """Atomically move the oldest queued or interrupted job (of ``kinds``) to running."""
        kinds = tuple(kinds or JOB_KINDS)
        marks = ", ".join("?" * len(kinds))
        with self._write() as db:
            found = db.execute(f"SELECT id, status FROM jobs WHERE status IN ('queued', "
                               f"'interrupted') AND kind IN ({marks}) ORDER BY id LIMIT 1",
                               kinds).fetchone()
            if found is None:
                return None
            now = time.time()
            db["jobs"].update(found[0], {"status": "running", "started": now, "heartbeat": now,
                                         "pid": int(worker_pid), "host": socket.gethostname()})
            row = self._job_row(db, found[0])
            verb = "resumed" if found[1] == "interrupted" else "started"
            self._event(db, f"job_{verb}", f"{row['kind']} job {row['id']} {verb} by worker "
                        f"pid {worker_pid}", {"job_id": row["id"], "pid": worker_pid})
            return row_to_job(row)

    def interrupt_job(self, job_id: int, reason: str, resume: dict | None = None) -> Job:
        """A running job stops resumable: its worker shuts down; ``resume`` goes in its result."""
        with self._write() as db:
            self._running_row(db, job_id)
            db["jobs"].update(job_id, {"status": "interrupted", "pid": None, "error": reason,
                                       "result_json": None if resume is None else
                                       dumps(check_dict(resume, "job resume state"))})
            row = self._job_row(db, job_id)
            self._event(db, "job_interrupted", f"{row['kind']} job {job_id} interrupted: "
                        f"{reason}", {"job_id": job_id})
            return row_to_job(row)

    def update_job_progress(self, job_id: int, step: int, total: int,
                            eta_seconds: float | None = None, losses: dict | None = None,
                            log_line: str | None = None) -> bool:
        """Report progress (also a heartbeat); returns True when cancellation was requested."""
        with self._write() as db:
            row = self._running_row(db, job_id)
            now = time.time()
            updates: dict = {"step": int(step), "total": int(total), "heartbeat": now,
                             "eta_seconds": None if eta_seconds is None else float(eta_seconds)}
            if losses:
                clean = {k: float(v) for k, v in check_dict(losses, "losses").items()}
                updates["last_losses_json"] = dumps(clean)
                db["job_losses"].insert({"job_id": job_id, "step": int(step), "created": now,
                                         "losses_json": dumps(clean)})
            if log_line is not None:
                lines = [*loads(row["log_json"], []), str(log_line)]
                updates["log_json"] = dumps(lines[-LOG_LINES_KEPT:])
            db["jobs"].update(job_id, updates)
            return bool(row["cancel_requested"])

    def set_job_plan(self, job_id: int, plan: dict) -> bool:
        """Record what a running job will do (also a heartbeat); returns the cancel request."""
        with self._write() as db:
            row = self._running_row(db, job_id)
            db["jobs"].update(job_id, {"plan_json": dumps(check_dict(plan, "job plan")),
                                       "heartbeat": time.time()})
            return bool(row["cancel_requested"])

    def add_job_warning(self, job_id: int, warning: str) -> bool:
        """Record a running job's warning (and log it); returns the cancel request."""
        with self._write() as db:
            row = self._running_row(db, job_id)
            warnings = [*loads(row.get("warnings_json"), []), str(warning)]
            lines = [*loads(row["log_json"], []), f"warning: {warning}"]
            db["jobs"].update(job_id, {"warnings_json": dumps(warnings[-LOG_LINES_KEPT:]),
                                       "log_json": dumps(lines[-LOG_LINES_KEPT:]),
                                       "heartbeat": time.time()})
            return bool(row["cancel_requested"])

    def append_job_log(self, job_id: int, line: str) -> bool:
        """Add a log line to a running job (also a heartbeat); returns the cancel request."""
        with self._write() as db:
            row = self._running_row(db, job_id)
            lines = [*loads(row["log_json"], []), str(line)]
            db["jobs"].update(job_id, {"log_json": dumps(lines[-LOG_LINES_KEPT:]),
                                       "heartbeat": time.time()})
            return bool(row["cancel_requested"])

    def heartbeat(self, job_id: int) -> bool:
        """Tell the store the worker is alive; returns True when cancellation was requested."""
        with self._write() as db:
            row = self._running_row(db, job_id)
            db["jobs"].update(job_id, {"heartbeat": time.time()})
            return bool(row["cancel_requested"])

    def finish_job(self, job_id: int, status: str, result: dict | None = None,
                   error: str | None = None) -> Job:
        """End a running job as succeeded, failed or cancelled, with its result or error."""
        if status not in FINISHED_JOB_STATUSES:
            raise InvalidInputError(f"a job finishes as one of {FINISHED_JOB_STATUSES}, "
                                    f"not {status!r}")
        with self._write() as db:
            row = self._job_row(db, job_id)
            if row["status"] != "running" and not (row["status"] in ("queued", "interrupted")
                                                   and status == "cancelled"):
                raise JobStateError(f"job {job_id} is already {row['status']}; it cannot "
                                    f"become {status}")
            db["jobs"].update(job_id, {"status": status, "finished": time.time(),
                                       "result_json": None if result is None else
                                       dumps(check_dict(result, "job result")),
                                       "error": error})
            detail = f": {error}" if error else ""
            self._event(db, f"job_{status}", f"{row['kind']} job {job_id} {status}{detail}",
                        {"job_id": job_id})
            return row_to_job(self._job_row(db, job_id))

    def request_cancel(self, job_id: int) -> Job:
        """Cancel a queued or interrupted job now, or ask a running job's worker to stop."""
        with self._write() as db:
            row = self._job_row(db, job_id)
            if row["status"] in ("queued", "interrupted"):
                when = "before it started" if row["status"] == "queued" else "while interrupted"
                return self.finish_job(job_id, "cancelled", row_result(row),
                                       error=f"cancelled {when}")
            if row["status"] == "running" and not row["cancel_requested"]:
                db["jobs"].update(job_id, {"cancel_requested": 1})
                self._event(db, "job_cancel_requested", f"cancel requested for job {job_id}",
                            {"job_id": job_id})
            return row_to_job(self._job_row(db, job_id))

    def cancel_requested(self, job_id: int) -> bool:
        """Whether someone asked this job to stop."""
        return bool(self._job_row(self._conns.db(), job_id)["cancel_requested"])

    def get_job(self, job_id: int) -> Job:
        """The job (after marking it failed if its worker died)."""
        self.recover_stale_jobs()
        return row_to_job(self._job_row(self._conns.db(), job_id))

    def list_jobs(self, status: str | None = None, kind: str | None = None,
                  limit: int = 50) -> list[Job]:
        """Jobs, newest first (after recovering stale ones): the UI's poll."""
        self.recover_stale_jobs()
        clauses, params = [], []
        for column, value in (("status", status), ("kind", kind)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        return [row_to_job(r) for r in self._conns.db().query(
            f"SELECT * FROM jobs{where} ORDER BY id DESC LIMIT ?", [*params, int(limit)])]

    def job_losses(self, job_id: int) -> list[dict]:
        """Loss history for plotting: [{"step": …, "created": …, "<loss name>": …}, …]."""
        return [{"step": r["step"], "created": r["created"], **loads(r["losses_json"], {})}
                for r in self._conns.db().query(
                    "SELECT * FROM job_losses WHERE job_id = ? ORDER BY id", [job_id])]

    def recover_stale_jobs(self, stale_after_s: float | None = None) -> list[Job]:
        """Mark running jobs whose heartbeat stopped or whose process died as failed."""
        stale_after_s = self.stale_after_s if stale_after_s is None else stale_after_s
        running = list(self._conns.db().query("SELECT * FROM jobs WHERE status = 'running'"))
        if not running:
            return []
        host, now = socket.gethostname(), time.time()
        reasons = {}
        for row in running:
            last = row["heartbeat"] or row["started"] or row["created"]
            if row["host"] == host and row["pid"] and not pid_alive(row["pid"]):
                reasons[row["id"]] = (f"worker process {row['pid']} is gone (killed or crashed)",
                                      row["heartbeat"])
            elif now - last > stale_after_s:
                reasons[row["id"]] = (f"no heartbeat for {now - last:.0f} s (worker killed or "
                                      "hung)", row["heartbeat"])
        recovered = []
        if reasons:
            with self._write() as db:
                for job_id, (reason, seen_heartbeat) in reasons.items():
                    row = self._job_row(db, job_id)
                    if row["status"] != "running" or row["heartbeat"] != seen_heartbeat:
                        continue  # it finished or beat meanwhile
                    db["jobs"].update(job_id, {"status": "failed", "finished": now,
                                               "error": reason})
                    self._event(db, "job_failed", f"{row['kind']} job {job_id} failed: {reason}",
                                {"job_id": job_id, "recovered": True})
                    recovered.append(row_to_job(self._job_row(db, job_id)))
        return recovered
