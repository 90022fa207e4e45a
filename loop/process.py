"""The worker process seen from outside: its lock and pid files, starting and stopping it.

One worker per workspace holds an exclusive lock on ``logs/worker.lock`` for its lifetime;
``worker_pid`` probes it. ``spawn_worker`` starts a detached one (the UI, the CLI and the
automatic trigger call it), ``stop_worker`` asks it to shut down (SIGTERM, see
``loop.shutdown``) and waits. No loop module is imported here, so any of them may call these.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from store.job_rows import pid_alive

try:
    import fcntl
except ImportError:  # Windows: fall back to the pid file alone
    fcntl = None

LOCK_NAME, PID_NAME, SPAWNED_NAME, LOG_NAME = ("worker.lock", "worker.pid", "worker.spawned",
                                               "worker.log")
REPO_ROOT = Path(__file__).resolve().parents[1]
SPAWN_GRACE_S = 60.0  # a just-spawned worker counts as alive while it imports torch


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


def stop_worker(workspace: str | Path, timeout_s: float = 20.0) -> int | None:
    """SIGTERM the workspace's worker and wait for it to exit; returns its pid (None: none ran)."""
    pid = worker_pid(Path(workspace))
    if pid is None:
        return None
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return pid
    deadline = time.monotonic() + timeout_s
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return pid
