"""What every part of the Store shares: workspace paths, connections, JSON, blobs, events."""

from __future__ import annotations

import json
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
from sqlite_utils import Database

from store import blobs
from store.connection import Connections
from store.errors import IntegrityError, InvalidInputError, NotFoundError
from store.records import Event


def dumps(value: Any) -> str:
    """JSON text of ``value``; numpy scalars and arrays become plain numbers and lists."""

    def default(obj: Any) -> Any:
        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
        if isinstance(obj, Path):
            return str(obj)
        raise TypeError(f"{type(obj).__name__} is not JSON serialisable")

    try:
        return json.dumps(value, sort_keys=True, default=default, allow_nan=True)
    except TypeError as exc:
        raise InvalidInputError(f"cannot store {value!r} as JSON: {exc}") from exc


def loads(text: str | None, default: Any = None) -> Any:
    """Parse JSON text from a column (``default`` for NULL)."""
    return default if text is None else json.loads(text)


def check_dict(value: Any, what: str) -> dict:
    """Require a dict argument (None becomes {})."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInputError(f"{what} must be a dict, got {type(value).__name__}")
    return value


def row_to_event(row: dict) -> Event:
    """Event record from an events row."""
    return Event(id=row["id"], created=row["created"], kind=row["kind"],
                 message=row["message"] or "", data=loads(row["data_json"], {}))


class StoreBase:
    """Workspace folders, per-thread connections and the helpers the Store's parts share."""

    DB_NAME = "semgan.db"

    def __init__(self, workspace: Path) -> None:
        self.workspace = workspace
        self.db_path = workspace / self.DB_NAME
        self.blobs_dir = workspace / "blobs"
        self.models_dir = workspace / "models"
        self.logs_dir = workspace / "logs"
        self._conns = Connections(self.db_path)

    def _write(self) -> AbstractContextManager[Database]:
        """A BEGIN IMMEDIATE transaction on this thread's connection."""
        return self._conns.write()

    def _read(self) -> AbstractContextManager[Database]:
        """A consistent read snapshot on this thread's connection."""
        return self._conns.read()

    @staticmethod
    def _event(db: Database, kind: str, message: str, data: dict | None = None) -> Event:
        """Append an event inside the caller's transaction."""
        row = {"created": time.time(), "kind": kind, "message": message,
               "data_json": dumps(check_dict(data, "event data"))}
        row["id"] = db["events"].insert(row).last_pk
        return row_to_event(row)

    def _put(self, data: bytes) -> str:
        """Write blob bytes durably (outside any transaction: fsync is slow)."""
        return blobs.write_blob(self.blobs_dir, data)

    def _ensure_blob(self, sha: str, data: bytes) -> None:
        """Inside a write transaction: make sure the blob a new row refers to still exists.

        gc_blobs deletes only while holding the write lock, so a blob present here stays
        present until the row that refers to it is committed.
        """
        if not blobs.blob_path(self.blobs_dir, sha).exists():
            blobs.write_blob(self.blobs_dir, data)

    def _read_mask(self, sha: str) -> np.ndarray:
        """A stored layout mask blob as a bool (H, W) array."""
        return self._read_array(sha) > 127

    def _read_array(self, sha: str) -> np.ndarray:
        """A stored grey PNG blob as a uint8 (H, W) array."""
        try:
            data = blobs.read_blob(self.blobs_dir, sha)
        except NotFoundError as exc:
            raise IntegrityError(f"{exc}; the workspace lost a file the database refers to") \
                from exc
        return blobs.decode_png(data, f"blob {sha}")
