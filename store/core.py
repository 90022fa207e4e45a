"""The Store: opens a workspace folder and is the one typed API over its database and blobs."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import numpy as np

from store import blobs, migrations
from store.base import StoreBase, dumps, loads, row_to_event
from store.connection import BUSY_TIMEOUT_S, busy_message, is_busy
from store.designs import DesignsMixin
from store.errors import DatabaseBusyError, InvalidInputError, WorkspaceError
from store.job_rows import DEFAULT_STALE_AFTER_S, JobsMixin
from store.model_registry import ModelsMixin
from store.pair_export import export_pairs
from store.pairs import PairsMixin
from store.records import Event

WORKSPACE_ENV = "SEMGAN_WORKSPACE"
DEFAULT_WORKSPACE = "workspace"
GC_GRACE_S = 3600.0  # unreferenced blobs younger than this may belong to an in-flight write


def resolve_workspace(workspace: str | Path | None = None) -> Path:
    """The workspace folder: the argument, else $SEMGAN_WORKSPACE, else ./workspace."""
    chosen = workspace if workspace is not None else os.environ.get(WORKSPACE_ENV) or \
        DEFAULT_WORKSPACE
    return Path(chosen).expanduser().resolve()


class Store(DesignsMixin, PairsMixin, ModelsMixin, JobsMixin, StoreBase):
    """A workspace: samples, predictions, corrected pairs, models, jobs, events, settings.

    Safe to share between threads (one SQLite connection per thread) and between processes
    (WAL, busy timeout, BEGIN IMMEDIATE with retries). Use ``Store.open``.
    """

    @classmethod
    def open(cls, workspace: str | Path | None = None,
             stale_after_s: float = DEFAULT_STALE_AFTER_S) -> Store:
        """Open (creating if needed) a workspace, migrate, recover stale jobs, mirror the registry."""
        root = resolve_workspace(workspace)
        if root.exists() and not root.is_dir():
            raise WorkspaceError(f"workspace {root} is a file, not a folder")
        store = cls(root)
        store.stale_after_s = stale_after_s
        try:
            for folder in (root, store.blobs_dir, store.models_dir, store.logs_dir):
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WorkspaceError(f"cannot create workspace folder {root}: {exc}") from exc
        try:
            db = store._conns.db()
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode=WAL")  # persistent: once per database file
            migrations.migrate(store._conns)
        except sqlite3.DatabaseError as exc:
            store.close()
            if is_busy(exc):
                raise DatabaseBusyError(busy_message(store.db_path, BUSY_TIMEOUT_S)) from exc
            raise WorkspaceError(f"{store.db_path} is not a usable semgan database: {exc}") \
                from exc
        except BaseException:
            store.close()
            raise
        store.recover_stale_jobs()
        store.sync_registry_mirror()  # models/registry.json for semgan's CLI (cheap when current)
        return store

    def close(self) -> None:
        """Close every connection; the Store cannot be used afterwards."""
        self._conns.close()

    def __enter__(self) -> Store:
        """Use as ``with Store.open(path) as store:``."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close on leaving the block."""
        self.close()

    def schema_version(self) -> int:
        """The schema version of the open database."""
        return migrations.schema_version(self._conns.db())

    # -- blobs -----------------------------------------------------------------------------

    def put_blob(self, data: bytes | np.ndarray) -> str:
        """Store PNG bytes, or a uint8/bool (H, W) array as lossless PNG; returns its sha256."""
        if isinstance(data, np.ndarray):
            data = blobs.encode_png(data)
        elif isinstance(data, bytes | bytearray):
            data = bytes(data)
            if not data.startswith(blobs.PNG_SIGNATURE):
                raise InvalidInputError("blob bytes must be a PNG file (bad signature)")
        else:
            raise InvalidInputError(f"put_blob takes PNG bytes or an array, not {type(data)}")
        return self._put(data)

    def blob_path(self, sha: str) -> Path:
        """Path of a blob file (whether or not it exists)."""
        return blobs.blob_path(self.blobs_dir, sha)

    def read_blob_array(self, sha: str) -> np.ndarray:
        """A blob decoded as uint8 (H, W) (NotFoundError if missing)."""
        return blobs.decode_png(blobs.read_blob(self.blobs_dir, sha), f"blob {sha}")

    def read_mask(self, sha: str) -> np.ndarray:
        """A mask blob as bool (H, W)."""
        return self.read_blob_array(sha) > 127

    def _referenced_blobs(self) -> set[str]:
        """Every blob sha a row refers to."""
        return {r[0] for r in self._conns.db().execute(
            "SELECT image_sha FROM samples UNION SELECT truth_sha FROM samples "
            "UNION SELECT mask_sha FROM predictions UNION SELECT confidence_sha FROM "
            "predictions UNION SELECT mask_sha FROM pairs UNION SELECT json_extract("
            "confidence_json, '$.uncertainty_map_sha') FROM predictions") if r[0]}

    def gc_blobs(self, grace_s: float = GC_GRACE_S) -> blobs.GcResult:
        """Delete blobs no row refers to and that are older than ``grace_s`` seconds."""
        # Scan the folder without the lock (it can be large), then delete under the write
        # lock with a fresh reference set: writers re-check their blob exists inside their own
        # write transaction, so no row is ever committed pointing at a deleted blob.
        garbage, kept, recent = blobs.find_garbage(self.blobs_dir, self._referenced_blobs(),
                                                   grace_s)
        with self._write() as db:
            removed, size = blobs.remove_garbage(garbage, self._referenced_blobs(), grace_s)
            if removed:
                self._event(db, "blobs_collected", f"removed {removed} unreferenced image "
                            f"files ({size} bytes)", {"removed": removed, "bytes": size})
        result = blobs.GcResult(removed, size, kept, recent + len(garbage) - removed)
        return result

    # -- events ----------------------------------------------------------------------------

    def log_event(self, kind: str, message: str, data: dict | None = None) -> Event:
        """Append an event to the log."""
        if not isinstance(kind, str) or not kind:
            raise InvalidInputError("event kind must be a non-empty string")
        with self._write() as db:
            return self._event(db, kind, message, data)

    def list_events(self, limit: int = 100, kinds: list[str] | tuple[str, ...] | None = None,
                    since_id: int = 0) -> list[Event]:
        """Newest events first, optionally of some kinds or newer than ``since_id``."""
        sql, params = "SELECT * FROM events WHERE id > ?", [since_id]
        if kinds:
            sql += f" AND kind IN ({', '.join('?' * len(kinds))})"
            params.extend(kinds)
        return [row_to_event(r) for r in self._conns.db().query(
            sql + " ORDER BY id DESC LIMIT ?", [*params, int(limit)])]

    # -- settings --------------------------------------------------------------------------

    def get_setting(self, key: str, default: Any = None) -> Any:
        """A loop setting's value (JSON), or ``default`` if never set."""
        row = self._conns.db().execute("SELECT value_json FROM settings WHERE key = ?",
                                       [key]).fetchone()
        return default if row is None else loads(row[0])

    def set_setting(self, key: str, value: Any) -> None:
        """Set a loop setting (any JSON value)."""
        if not isinstance(key, str) or not key:
            raise InvalidInputError("setting key must be a non-empty string")
        with self._write() as db:
            db.execute("INSERT INTO settings (key, value_json, updated) VALUES (?, ?, ?) "
                       "ON CONFLICT(key) DO UPDATE SET value_json = excluded.value_json, "
                       "updated = excluded.updated", [key, dumps(value), time.time()])

    def settings(self) -> dict[str, Any]:
        """Every setting as a dict."""
        return {r["key"]: loads(r["value_json"]) for r in
                self._conns.db().query("SELECT key, value_json FROM settings ORDER BY key")}

    # -- export ----------------------------------------------------------------------------

    def export_pairs(self, out_dir: str | Path, split: str | None = None) -> Path:
        """Write latest pairs as sem/*.png, layout/*.png (0/255), manifest.json/.csv."""
        if split not in (None, "train", "holdout"):
            raise InvalidInputError(f"split must be 'train', 'holdout' or None, got {split!r}")
        return export_pairs(self, Path(out_dir), split)
