"""Stress (slow): SIGKILL mid-save, SIGKILL mid-fine-tune, a database held locked by another process.

Run with ``pytest -m slow tests/test_stress_store.py -s`` to see the measured figures.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from loop.finetune import request_finetune
from loop.worker import run_worker
from store import DatabaseBusyError, Store
from store import connection as store_connection
from tests.support import TINY_FINETUNE, workspace_with_pairs

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.name != "posix", reason="SIGKILL is POSIX")]

REPO = Path(__file__).resolve().parents[1]
KILL_ROUNDS = 6
ENDLESS = replace(TINY_FINETUNE, max_steps=100_000, epochs=10_000)

SAVER = textwrap.dedent("""
    import sys
    import numpy as np
    from store import Store

    store = Store.open(sys.argv[1])
    ids = [int(i) for i in sys.argv[2].split(",")]
    rng = np.random.default_rng(int(sys.argv[3]))
    while True:
        sample_id = int(rng.choice(ids))
        mask = rng.integers(0, 256, (48, 48)) > 128
        pair = store.save_correction(sample_id, mask, "stress")
        print(f"saved {pair.id} {pair.sample_id} {pair.version}", flush=True)
""")

HOLDER = textwrap.dedent("""
    import sqlite3, sys, time
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    conn.execute("ROLLBACK")
    print("released", flush=True)
""")


def sha256_file(path: Path) -> str:
    """sha256 hex digest of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def model_files(folder: Path) -> dict[str, str]:
    """Relative path → sha256 of every file under a model folder."""
    return {str(p.relative_to(folder)): sha256_file(p) for p in sorted(folder.rglob("*"))
            if p.is_file()}


def acknowledged(stdout: str) -> list[tuple[int, int, int]]:
    """(pair id, sample id, version) of every save the child saw return."""
    return [tuple(int(v) for v in line.split()[1:]) for line in stdout.splitlines()
            if line.startswith("saved ") and len(line.split()) == 4]


def test_sigkill_mid_save_leaves_a_consistent_store(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    with Store.open(workspace) as store:
        rng = np.random.default_rng(0)
        ids = [store.add_sample(rng.integers(0, 256, (48, 48), dtype=np.uint8), 4.0,
                                "upload").id for _ in range(4)]
    chooser = random.Random(1234)
    acked: list[tuple[int, int, int]] = []
    for round_index in range(KILL_ROUNDS):
        saver = subprocess.Popen([sys.executable, "-c", SAVER, str(workspace),
                                  ",".join(map(str, ids)), str(round_index)], cwd=REPO,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = saver.stdout.readline()
        assert first.startswith("saved "), saver.stderr.read()
        time.sleep(chooser.uniform(0.05, 1.5))
        os.kill(saver.pid, signal.SIGKILL)
        rest, errors = saver.communicate(timeout=30)
        assert saver.returncode == -signal.SIGKILL, errors
        acked += acknowledged(first + rest)
    with Store.open(workspace) as store:
        db = store._conns.db()
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = db.execute("SELECT id, sample_id, version, mask_sha FROM pairs").fetchall()
        events = db.execute("SELECT COUNT(*) FROM events WHERE kind = 'correction_saved'") \
            .fetchone()[0]
        for pair_id, _sample, _version, mask_sha in rows:
            path = store.blob_path(mask_sha)
            assert path.is_file(), f"pair {pair_id} refers to a missing blob"
            assert sha256_file(path) == mask_sha, f"pair {pair_id}: blob is half-written"
            assert store.read_mask(mask_sha).shape == (48, 48)
        for sample_id in ids:
            versions = sorted(v for _, s, v, _ in rows if s == sample_id)
            assert versions == list(range(1, len(versions) + 1))  # no gap, no duplicate
        stored = {(i, s, v) for i, s, v, _ in rows}
        lost = set(acked) - stored
        unacknowledged = len(stored) - len(set(acked) & stored)
    print(f"SIGKILL mid-save: {KILL_ROUNDS} kills, {len(rows)} pair rows, "
          f"{len(acked)} acknowledged saves, "
          f"{len(lost)} lost, {unacknowledged} committed but unacknowledged, "
          f"{events} correction events, integrity_check ok")
    assert lost == set()
    assert events == len(rows)  # a row and its event commit together or not at all
    assert unacknowledged <= KILL_ROUNDS  # at most the save in flight when killed


def test_sigkill_mid_fine_tune_keeps_production_and_the_next_worker_fails_the_job(
        tmp_path: Path) -> None:
    workspace = workspace_with_pairs(tmp_path / "ws")
    with Store.open(workspace) as store:
        production = store.production_model()
        folder = Path(production.path)
        before = model_files(folder)
        job = request_finetune(store, config=ENDLESS)
    kill_at = random.Random(7).randint(2, 12)
    worker = subprocess.Popen([sys.executable, "-m", "loop", "worker", "--workspace",
                               str(workspace), "--once"], cwd=REPO, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        probe = sqlite3.connect(workspace / "semgan.db")  # read-only look: no stale recovery
        deadline = time.monotonic() + 120
        while probe.execute("SELECT step FROM jobs WHERE id = ?", [job.id]).fetchone()[0] \
                < kill_at:
            assert time.monotonic() < deadline, "training did not reach the kill step"
            time.sleep(0.05)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
        status = probe.execute("SELECT status FROM jobs WHERE id = ?", [job.id]).fetchone()[0]
        probe.close()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert status == "running"  # nobody has recovered it yet
    started = time.monotonic()
    assert run_worker(workspace, once=True) == 0  # the next worker start: nothing left to run
    recovery_s = time.monotonic() - started
    with Store.open(workspace) as store:
        failed = store.get_job(job.id)
        assert failed.status == "failed"
        assert f"worker process {worker.pid} is gone" in failed.error
        assert [m.version for m in store.list_models()] == [production.version]
        assert store.production_model().version == production.version
    assert model_files(folder) == before
    assert sha256_file(folder / "weights.safetensors") == production.weights_sha256
    assert not list((workspace / "models").glob("*.partial"))
    print(f"SIGKILL mid-fine-tune at step {kill_at}: job {job.id} failed on the next worker "
          f"start ({recovery_s:.1f} s), {len(before)} production files unchanged (sha256)")


def hold_lock(db_path: Path, seconds: float) -> subprocess.Popen:
    """A child process holding BEGIN EXCLUSIVE on the database for ``seconds``."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(db_path), str(seconds)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_save_waits_for_a_short_exclusive_lock_then_succeeds(tmp_path: Path) -> None:
    with Store.open(tmp_path / "ws") as store:
        sample = store.add_sample(np.zeros((16, 16), np.uint8), 4.0, "upload")
        holder = hold_lock(store.db_path, 3.0)
        started = time.monotonic()
        pair = store.save_correction(sample.id, np.ones((16, 16), bool), "stress")
        waited = time.monotonic() - started
        assert holder.wait(timeout=30) == 0
        assert (pair.version, store.latest_pair(sample.id).id) == (1, pair.id)
    print(f"3 s BEGIN EXCLUSIVE by another process: the save waited {waited:.2f} s, then saved")
    assert 2.5 <= waited < store_connection.BUSY_TIMEOUT_S


def test_a_save_behind_a_long_lock_raises_database_busy_and_works_after(tmp_path: Path,
                                                                      monkeypatch) -> None:
    monkeypatch.setattr(store_connection, "BUSY_TIMEOUT_S", 0.5)  # 3 attempts ≈ 1.5 s
    with Store.open(tmp_path / "ws") as store:
        sample = store.add_sample(np.zeros((16, 16), np.uint8), 4.0, "upload")
        holder = hold_lock(store.db_path, 6.0)
        started = time.monotonic()
        with pytest.raises(DatabaseBusyError) as caught:
            store.save_correction(sample.id, np.ones((16, 16), bool), "stress")
        waited = time.monotonic() - started
        assert store.latest_pair(sample.id) is None  # nothing half-saved
        assert holder.wait(timeout=30) == 0
        assert store.save_correction(sample.id, np.ones((16, 16), bool), "stress").version == 1
    message = str(caught.value)
    print(f"lock held past the busy timeout: DatabaseBusyError after {waited:.2f} s: {message}")
    assert f"the workspace database {store.db_path} stayed locked for" in message
    assert "another process (a training worker, a second app instance or a SQLite browser) " \
           "holds its write lock" in message
    assert 1.4 <= waited < 6.0
