"""Two processes writing at once; a held lock becomes a named error, not `database is locked`."""

from __future__ import annotations

import itertools
import multiprocessing
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from store import DatabaseBusyError, Store
from store import connection as store_connection

WRITES_PER_PROCESS = 200


def _writer(workspace: str, seed: int, start) -> list[str]:
    """Child process: mixed writes as the UI or a worker would do; returns the errors seen."""
    errors = []
    start.wait()
    with Store.open(workspace) as child:
        rng = np.random.default_rng(seed)
        for i in range(WRITES_PER_PROCESS):
            try:
                if i % 4 == 0:
                    image = rng.integers(0, 256, (8, 8), dtype=np.uint8)
                    child.add_sample(image, 4.0, "upload", name=f"p{seed}-{i}")
                elif i % 4 == 1:
                    child.set_setting(f"last_write_{seed}", i)
                else:
                    child.log_event("write", f"process {seed} write {i}")
            except Exception as exc:  # report everything: the test asserts there is none
                errors.append(f"{type(exc).__name__}: {exc}")
    return errors


def test_two_processes_write_without_lock_errors(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    Store.open(workspace).close()
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(2) as pool:
        start = manager.Event()
        results = [pool.apply_async(_writer, (str(workspace), seed, start)) for seed in (1, 2)]
        start.set()
        errors = [r.get(timeout=120) for r in results]
    assert errors == [[], []]
    with Store.open(workspace) as store:
        assert store.count_samples() == 2 * WRITES_PER_PROCESS // 4
        assert len(store.list_events(limit=1000, kinds=["write"])) == WRITES_PER_PROCESS
        assert store.get_setting("last_write_1") == WRITES_PER_PROCESS - 3
        writers = [e.message.split()[1] for e in store.list_events(limit=1000, kinds=["write"])]
    switches = sum(a != b for a, b in itertools.pairwise(writers))
    assert switches >= 1  # the two processes' writes really interleaved


def test_lock_held_too_long_raises_database_busy(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(store_connection, "BUSY_TIMEOUT_S", 0.05)
    with Store.open(tmp_path / "ws") as store:
        holder = sqlite3.connect(store.db_path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(DatabaseBusyError, match="another process"):
                store.log_event("note", "blocked")
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert store.log_event("note", "after").message == "after"


def test_reads_are_not_blocked_by_a_writer(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(store_connection, "BUSY_TIMEOUT_S", 0.05)
    with Store.open(tmp_path / "ws") as store:
        store.log_event("note", "before")
        holder = sqlite3.connect(store.db_path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        holder.execute("INSERT INTO events (created, kind, message) VALUES (0, 'x', 'pending')")
        try:
            assert [e.message for e in store.list_events()] == ["before"]  # WAL snapshot
        finally:
            holder.execute("ROLLBACK")
            holder.close()
