"""``models/registry.json``: a read-only JSON mirror of the model registry for semgan's CLI.

``semgan`` never opens SQLite, yet ``python -m semgan predict --workspace W --model production``
must find the production model's folder: it reads this file. The database stays the source of
truth; the store rewrites the file after every committed change to the models table and, on
open, whenever the file is missing or disagrees with the database. The file is replaced
atomically (temp file, fsync, rename) so a reader sees the old or the new registry, never half.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from pathlib import Path

from store.blobs import fsync_dir

FILE_NAME = "registry.json"
FORMAT = "semgan-registry"
FORMAT_VERSION = 1
COLUMNS = "version, status, path, weights_sha256, parent_version, created"  # what is mirrored


def registry_path(models_dir: Path) -> Path:
    """Where the mirror lives: ``W/models/registry.json``."""
    return models_dir / FILE_NAME


def build(workspace: Path, rows: list[dict]) -> dict:
    """The mirror's content (without ``written``) from models rows holding ``COLUMNS``."""
    models = []
    for row in sorted(rows, key=lambda r: r["version"]):
        stored = Path(row["path"])
        models.append({
            "version": row["version"], "status": row["status"],
            # absolute for readers; relative too, so a moved workspace still resolves
            "path": str(stored if stored.is_absolute() else workspace / stored),
            "relative_path": None if stored.is_absolute() else stored.as_posix(),
            "weights_sha256": row["weights_sha256"], "parent_version": row["parent_version"],
            "created": row["created"]})
    production = [m["version"] for m in models if m["status"] == "production"]
    return {"format": FORMAT, "version": FORMAT_VERSION,
            "production": production[0] if production else None, "models": models}


def is_current(path: Path, expected: dict) -> bool:
    """True when the file at ``path`` holds ``expected`` (ignoring when it was written)."""
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(found, dict):
        return False
    found.pop("written", None)
    # Round-trip ``expected`` through JSON so tuples/floats compare as the reader sees them.
    return found == json.loads(json.dumps(expected))


def write(path: Path, content: dict) -> None:
    """Atomically replace ``path`` with ``content`` plus ``written`` (Unix seconds)."""
    text = json.dumps({**content, "written": time.time()}, indent=1) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temp_name, 0o644)  # mkstemp makes it owner-only; the mirror is for any reader
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
    fsync_dir(path.parent)
