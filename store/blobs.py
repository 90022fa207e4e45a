"""Content-addressed image files: ``blobs/ab/abcdef….png``, named by the sha256 of their bytes.

A blob is written to a temporary file in its final folder, fsync'ed, renamed into place and
the folder fsync'ed, so a crash leaves either the whole file or an orphan temporary file.
Rows refer to blobs only after this returns; unreferenced blobs are collected later.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from store.errors import IntegrityError, InvalidInputError, NotFoundError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SHA_RE = re.compile(r"^[0-9a-f]{64}$")
TMP_PREFIX = ".tmp-"


def sha256_hex(data: bytes) -> str:
    """The sha256 of ``data`` as 64 lowercase hex digits."""
    return hashlib.sha256(data).hexdigest()


def content_sha(image: np.ndarray) -> str:
    """sha256 of an image's shape and pixels: independent of how the PNG was encoded."""
    header = f"{image.dtype.str}:{image.shape[0]}x{image.shape[1]}:".encode()
    return sha256_hex(header + np.ascontiguousarray(image).tobytes())


def as_grey_uint8(array: np.ndarray, what: str) -> np.ndarray:
    """Check an (H, W) uint8 or bool array; bool becomes 0/255 uint8."""
    if not isinstance(array, np.ndarray) or array.ndim != 2 or min(array.shape) == 0:
        shape = getattr(array, "shape", type(array).__name__)
        raise InvalidInputError(f"{what} must be a non-empty 2-D (H, W) array, got {shape}")
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if array.dtype != np.uint8:
        raise InvalidInputError(f"{what} must be uint8 or bool, got {array.dtype}; "
                                "convert it to 8-bit grey first")
    return array


def encode_png(array: np.ndarray) -> bytes:
    """Lossless 8-bit grey PNG of an (H, W) uint8 or bool array (bool → 0/255)."""
    grey = as_grey_uint8(array, "image")
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(grey)).save(buffer, format="PNG",
                                                     compress_level=6)
    return buffer.getvalue()


def decode_png(data: bytes, what: str = "PNG") -> np.ndarray:
    """Decode 8-bit grey PNG bytes into an (H, W) uint8 array."""
    if not data.startswith(PNG_SIGNATURE):
        raise InvalidInputError(f"{what} is not a PNG file (bad signature)")
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.mode != "L":
                raise InvalidInputError(
                    f"{what} is a {image.mode} PNG; the store keeps 8-bit grey ('L') images: "
                    "convert it with semgan.imageio first")
            return np.array(image, dtype=np.uint8)
    except (OSError, SyntaxError) as exc:  # Pillow's errors for truncated/corrupt files
        raise InvalidInputError(f"{what} cannot be decoded: {exc}") from exc


def check_sha(sha: str) -> str:
    """Validate a blob name (64 lowercase hex digits)."""
    if not isinstance(sha, str) or not SHA_RE.match(sha):
        raise InvalidInputError(f"{sha!r} is not a sha256 hex digest")
    return sha


def blob_path(root: Path, sha: str) -> Path:
    """Where the blob ``sha`` lives under ``root`` (whether or not it exists)."""
    check_sha(sha)
    return root / sha[:2] / f"{sha}.png"


def fsync_dir(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (POSIX; Windows cannot open folders)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_blob(root: Path, data: bytes) -> str:
    """Store ``data`` durably under its sha256 and return the hash (idempotent)."""
    sha = sha256_hex(data)
    path = blob_path(root, sha)
    if path.exists():
        # Refresh the mtime so a concurrent gc_blobs grace period protects it again.
        os.utime(path)
        return sha
    write_durably(path, data)
    return sha


def write_durably(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file, fsync, rename, fsync of the folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f"{TMP_PREFIX}{os.getpid()}-{os.urandom(6).hex()}"
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    fsync_dir(path.parent)


def read_blob(root: Path, sha: str) -> bytes:
    """The bytes of blob ``sha``, checked against the hash."""
    path = blob_path(root, sha)
    if not path.exists():
        raise NotFoundError(f"blob {sha} is missing from {root}")
    data = path.read_bytes()
    if sha256_hex(data) != sha:
        raise IntegrityError(f"blob {path} is corrupt: its sha256 no longer matches its name")
    return data


@dataclass(frozen=True)
class GcResult:
    """What gc_blobs removed and kept."""

    removed: int
    removed_bytes: int
    kept: int
    skipped_recent: int  # unreferenced but younger than the grace period


def _blob_sha(path: Path) -> str | None:
    """The sha a blob file is named by, or None for anything else."""
    return path.name[:-4] if path.name.endswith(".png") and SHA_RE.match(path.name[:-4]) else None


def find_garbage(root: Path, referenced: set[str], grace_s: float) -> tuple[list[Path], int, int]:
    """(unreferenced blobs and temp files older than ``grace_s``, referenced count, too recent)."""
    garbage, kept, recent = [], 0, 0
    cutoff = time.time() - grace_s
    for path in sorted(root.glob("*/*")):
        sha = _blob_sha(path)
        if sha in referenced:
            kept += 1
        elif sha is not None or path.name.startswith(TMP_PREFIX):  # leave foreign files alone
            try:
                old = path.stat().st_mtime <= cutoff
            except FileNotFoundError:
                continue
            if old:
                garbage.append(path)
            else:
                recent += 1
    return garbage, kept, recent


def remove_garbage(paths: list[Path], referenced: set[str], grace_s: float) -> tuple[int, int]:
    """Delete the paths still unreferenced and still old; returns (files, bytes) removed.

    Called under the database write lock with a fresh ``referenced`` set: a blob that a
    writer re-used meanwhile was touched (younger) or is now referenced, and is kept.
    """
    removed = removed_bytes = 0
    cutoff = time.time() - grace_s
    for path in paths:
        if _blob_sha(path) in referenced:
            continue
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        if stat.st_mtime <= cutoff:
            path.unlink(missing_ok=True)
            removed += 1
            removed_bytes += stat.st_size
    return removed, removed_bytes
