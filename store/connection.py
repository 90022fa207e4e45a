"""SQLite connections: WAL, busy timeout, one connection per thread, retried write locks.

Every write runs in ``BEGIN IMMEDIATE`` so the write lock is taken up front: a deferred
transaction that later upgrades to a writer can fail with SQLITE_BUSY without waiting,
which is how ``database is locked`` usually reaches users of WAL databases.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlite_utils import Database

from store.errors import DatabaseBusyError, StoreError

BUSY_TIMEOUT_S = 10.0  # sqlite waits this long for a lock before reporting busy
BEGIN_ATTEMPTS = 3  # so a caller waits up to ~30 s before DatabaseBusyError


def is_busy(exc: sqlite3.Error) -> bool:
    """True when ``exc`` is SQLITE_BUSY / SQLITE_LOCKED (another connection holds the lock)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    message = str(exc).lower()
    return "locked" in message or "busy" in message


def connect(db_path: Path) -> Database:
    """Open one connection with the store's pragmas (autocommit driver, explicit transactions)."""
    # isolation_level=None: the driver never opens implicit transactions, we do it explicitly.
    conn = sqlite3.connect(str(db_path), timeout=BUSY_TIMEOUT_S, isolation_level=None,
                           check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
    conn.execute("PRAGMA foreign_keys=ON")
    # FULL: a committed correction survives a power cut, not only a process crash.
    conn.execute("PRAGMA synchronous=FULL")
    return Database(conn, execute_plugins=False)


def busy_message(db_path: Path, waited_s: float) -> str:
    """The message of a DatabaseBusyError: who holds the lock and what to do."""
    return (f"the workspace database {db_path} stayed locked for {waited_s:.0f} s: another "
            "process (a training worker, a second app instance or a SQLite browser) holds its "
            "write lock. Close that program or wait for its job to finish, then retry.")


class Connections:
    """One sqlite-utils Database per thread, with read/write transaction helpers."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self._local = threading.local()
        self._all: list[Database] = []
        self._lock = threading.Lock()
        self._closed = False

    def db(self) -> Database:
        """This thread's connection, opened on first use."""
        if self._closed:
            raise StoreError(f"the store for {self.db_path.parent} is closed; open it again")
        db = getattr(self._local, "db", None)
        if db is None:
            db = connect(self.db_path)
            self._local.db = db
            self._local.mode = None
            with self._lock:
                self._all.append(db)
        return db

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            self._closed = True
            for db in self._all:
                db.close()
            self._all.clear()

    @contextmanager
    def write(self) -> Iterator[Database]:
        """A BEGIN IMMEDIATE transaction (joins an enclosing write transaction)."""
        db = self.db()
        mode = self._local.mode
        if mode == "write":
            yield db
            return
        if mode == "read":
            raise StoreError("internal error: a write was started inside a read transaction")
        self._begin_immediate(db.conn)
        self._local.mode = "write"
        try:
            yield db
        except BaseException:
            if db.conn.in_transaction:
                db.conn.execute("ROLLBACK")
            raise
        else:
            self._commit(db.conn)
        finally:
            self._local.mode = None

    @contextmanager
    def read(self) -> Iterator[Database]:
        """A read transaction: one consistent snapshot for several SELECTs."""
        db = self.db()
        if self._local.mode is not None:
            yield db
            return
        db.conn.execute("BEGIN")
        self._local.mode = "read"
        try:
            yield db
        finally:
            self._local.mode = None
            if db.conn.in_transaction:
                db.conn.execute("COMMIT")

    def _begin_immediate(self, conn: sqlite3.Connection) -> None:
        """Take the write lock, retrying after sqlite's own busy wait runs out."""
        start = time.monotonic()
        for attempt in range(BEGIN_ATTEMPTS):
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not is_busy(exc):
                    raise
                if attempt == BEGIN_ATTEMPTS - 1:
                    raise DatabaseBusyError(
                        busy_message(self.db_path, time.monotonic() - start)) from exc
                time.sleep(0.05 * (attempt + 1))

    def _commit(self, conn: sqlite3.Connection) -> None:
        """COMMIT, retrying briefly if a checkpointing reader makes it busy."""
        start = time.monotonic()
        for attempt in range(BEGIN_ATTEMPTS):
            try:
                conn.execute("COMMIT")
                return
            except sqlite3.OperationalError as exc:
                if not is_busy(exc):
                    conn.execute("ROLLBACK")
                    raise
                if attempt == BEGIN_ATTEMPTS - 1:
                    conn.execute("ROLLBACK")
                    raise DatabaseBusyError(
                        busy_message(self.db_path, time.monotonic() - start)) from exc
                time.sleep(0.05 * (attempt + 1))
