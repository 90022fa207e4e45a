"""Following a background job from the command line: its log, progress and outcome."""

from __future__ import annotations

import sys
import time

from loop.batch import JOB_KIND
from loop.jobs import BatchResult, FinetuneResult
from loop.process import LOG_NAME, spawn_worker, worker_pid
from store import Store

EXIT_JOB_FAILED = 1


def follow_job(store: Store, job_id: int, respawns: int = 2) -> int:
    """Print the job's log and progress until it ends; exit status 0 only if it succeeded."""
    shown, last_step, queued_since = 0, -1, time.monotonic()
    while True:
        job = store.get_job(job_id)
        for line in job.log_lines[shown:] if len(job.log_lines) >= shown else job.log_lines:
            print(f"  {line}")
        shown = len(job.log_lines)
        if job.status == "running" and job.step != last_step and job.total:
            last_step = job.step
            eta = f", ETA {job.eta_seconds:.0f} s" if job.eta_seconds is not None else ""
            print(f"  step {job.step}/{job.total} ({job.progress:.0%}{eta})", flush=True)
        if not job.active:
            break
        if job.status in ("queued", "interrupted") and time.monotonic() - queued_since > 30 \
                and worker_pid(store.workspace) is None:
            if respawns == 0:
                print(f"no worker picked up job {job_id}; see {store.logs_dir / LOG_NAME}",
                      file=sys.stderr)
                return EXIT_JOB_FAILED
            respawns, queued_since = respawns - 1, time.monotonic()
            spawn_worker(store.workspace)
        time.sleep(1.0)
    if job.status != "succeeded":
        print(f"job {job_id} {job.status}: {job.error}", file=sys.stderr)
        return EXIT_JOB_FAILED
    if job.kind == JOB_KIND:
        batch = BatchResult.of(job)
        print(f"job {job_id} succeeded: {batch.predicted} predicted, {batch.skipped} already "
              f"predicted, {len(batch.failed)} failed (v{batch.model_version})")
        for failure in batch.failed:
            print(f"  sample {failure['sample_id']}: {failure['error']}")
        return EXIT_JOB_FAILED if batch.failed else 0
    tuned = FinetuneResult.of(job)
    print(f"job {job_id} succeeded: candidate v{tuned.candidate_version} {tuned.decision}: "
          f"{tuned.reason}")
    return 0
