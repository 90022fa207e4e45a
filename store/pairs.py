"""Corrected pairs: versioned corrected layouts per sample, with a fixed train/holdout split."""

from __future__ import annotations

import hashlib
import time

import numpy as np
from sqlite_utils import Database

from store import blobs
from store.base import StoreBase
from store.errors import InvalidInputError, NotFoundError
from store.records import PAIR_KINDS, CorrectedPair, Counts
from store.samples import SamplesMixin

HOLDOUT_FRACTION = 0.2
# Latest version of each sample's pair: the one training and evaluation use.
LATEST_PAIRS = ("SELECT p.* FROM pairs p WHERE p.version = "
                "(SELECT MAX(q.version) FROM pairs q WHERE q.sample_id = p.sample_id)")


def split_for(content_sha: str) -> str:
    """"holdout" for ~20 % of images, "train" otherwise, from the image content hash alone.

    The same pixels get the same split in every workspace and on every re-save, so a
    held-out image never leaks into training (not even through a duplicate at another nm/px).
    """
    digest = hashlib.sha256(f"semgan-split:{content_sha}".encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    return "holdout" if fraction < HOLDOUT_FRACTION else "train"


def row_to_pair(row: dict) -> CorrectedPair:
    """CorrectedPair record from a pairs row."""
    return CorrectedPair(
        id=row["id"], sample_id=row["sample_id"], version=row["version"],
        mask_sha=row["mask_sha"], author=row["author"], prediction_id=row["prediction_id"],
        kind=row["kind"], pixels_added=row["pixels_added"], pixels_removed=row["pixels_removed"],
        iou_vs_prediction=row["iou_vs_prediction"], split=row["split"], created=row["created"])


def change_vs(mask: np.ndarray, predicted: np.ndarray) -> tuple[int, int, float]:
    """(pixels added, pixels removed, IoU) of a corrected mask against the predicted one."""
    added = int(np.count_nonzero(mask & ~predicted))
    removed = int(np.count_nonzero(~mask & predicted))
    union = int(np.count_nonzero(mask | predicted))
    iou = 1.0 if union == 0 else int(np.count_nonzero(mask & predicted)) / union
    return added, removed, iou


def insert_pair_row(db: Database, row: dict) -> int:
    """Insert a pairs row inside the caller's transaction; returns its id."""
    return db["pairs"].insert(row).last_pk


class PairsMixin(SamplesMixin, StoreBase):
    """Corrections, their split, counts for the loop."""

    def save_correction(self, sample_id: int, mask: np.ndarray, author: str,
                        prediction_id: int | None = None,
                        kind: str = "corrected") -> CorrectedPair:
        """Save a corrected layout (bool (H, W)) as the sample's next pair version.

        The mask blob is written and fsync'ed before the row is inserted, so a crash leaves
        the whole correction or a dangling blob (collected by gc_blobs), never a row without
        its blob.
        """
        sample = self.get_sample(sample_id)
        if kind not in PAIR_KINDS:
            raise InvalidInputError(f"kind must be one of {PAIR_KINDS}, got {kind!r}")
        if not isinstance(author, str) or not author.strip():
            raise InvalidInputError("author must be a non-empty name")
        if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_ or \
                mask.shape != (sample.height, sample.width):
            raise InvalidInputError(
                f"the corrected mask must be a bool array of shape {(sample.height, sample.width)}"
                f" (sample {sample_id}), got {getattr(mask, 'dtype', type(mask).__name__)} "
                f"{getattr(mask, 'shape', '')}")
        added = removed = iou = None
        if prediction_id is not None:
            prediction = self.get_prediction_by_id(prediction_id)
            if prediction.sample_id != sample_id:
                raise InvalidInputError(f"prediction {prediction_id} belongs to sample "
                                        f"{prediction.sample_id}, not {sample_id}")
            added, removed, iou = change_vs(mask, self.prediction_mask(prediction))
        png = blobs.encode_png(mask)
        mask_sha = self._put(png)  # durable before any row can refer to it
        with self._write() as db:
            self._ensure_blob(mask_sha, png)
            previous = db.execute("SELECT MAX(version), MIN(split) FROM pairs WHERE sample_id = ?",
                                  [sample_id]).fetchone()
            row = {"sample_id": sample_id, "version": (previous[0] or 0) + 1, "mask_sha": mask_sha,
                   "author": author.strip(), "prediction_id": prediction_id, "kind": kind,
                   "pixels_added": added, "pixels_removed": removed, "iou_vs_prediction": iou,
                   # assigned once: a re-correction keeps the split of the first version
                   "split": previous[1] or split_for(sample.content_sha), "created": time.time()}
            row["id"] = insert_pair_row(db, row)
            change = "" if iou is None else f", IoU {iou:.3f} vs prediction"
            self._event(db, "correction_saved",
                        f"{author.strip()} saved {kind} layout v{row['version']} for sample "
                        f"{sample_id} ({row['split']}{change})",
                        {"sample_id": sample_id, "pair_id": row["id"], "version": row["version"]})
        return row_to_pair(row)

    def get_pair(self, pair_id: int) -> CorrectedPair:
        """The pair version with this id (NotFoundError if none)."""
        rows = list(self._conns.db().query("SELECT * FROM pairs WHERE id = ?", [pair_id]))
        if not rows:
            raise NotFoundError(f"corrected pair {pair_id} does not exist")
        return row_to_pair(rows[0])

    def latest_pair(self, sample_id: int) -> CorrectedPair | None:
        """The sample's current corrected pair (latest version), if any."""
        rows = list(self._conns.db().query(
            "SELECT * FROM pairs WHERE sample_id = ? ORDER BY version DESC LIMIT 1", [sample_id]))
        return row_to_pair(rows[0]) if rows else None

    def pair_history(self, sample_id: int) -> list[CorrectedPair]:
        """Every saved version of the sample's pair, oldest first."""
        return [row_to_pair(r) for r in self._conns.db().query(
            "SELECT * FROM pairs WHERE sample_id = ? ORDER BY version", [sample_id])]

    def pair_mask(self, pair: CorrectedPair) -> np.ndarray:
        """The corrected layout mask as bool (H, W)."""
        return self._read_mask(pair.mask_sha)

    def _cutoff(self, db: Database, model_version: int | None) -> int:
        """Highest pair id a model's training could have seen (0 without a model)."""
        if model_version is None:
            return 0
        row = db.execute("SELECT data_cutoff_pair_id FROM models WHERE version = ?",
                         [model_version]).fetchone()
        if row is None:
            raise NotFoundError(f"model version {model_version} is not registered")
        return row[0] or 0

    def list_pairs(self, split: str | None = None, since_model_version: int | None = None,
                   include_history: bool = False) -> list[CorrectedPair]:
        """Latest pair per sample (oldest first), optionally one split / newer than a model."""
        if split not in (None, "train", "holdout"):
            raise InvalidInputError(f"split must be 'train', 'holdout' or None, got {split!r}")
        with self._read() as db:
            sql = "SELECT p.* FROM pairs p WHERE 1" if include_history else LATEST_PAIRS
            params: list = []
            if split is not None:
                sql += " AND p.split = ?"
                params.append(split)
            if since_model_version is not None:
                sql += " AND p.id > ?"
                params.append(self._cutoff(db, since_model_version))
            return [row_to_pair(r) for r in db.query(sql + " ORDER BY p.id", params)]

    def counts(self) -> Counts:
        """Totals of samples, pairs (per split, new since production), models, flagged, jobs."""
        with self._read() as db:
            production = db.execute(
                "SELECT version FROM models WHERE status = 'production'").fetchone()
            production_version = production[0] if production else None
            cutoff = self._cutoff(db, production_version)
            pairs = db.execute(
                f"SELECT COUNT(*), SUM(split = 'train'), SUM(split = 'holdout'), SUM(id > ?), "
                f"SUM(id > ? AND split = 'train') FROM ({LATEST_PAIRS})",
                [cutoff, cutoff]).fetchone()

            def scalar(sql: str) -> int:
                return db.execute(sql).fetchone()[0]

            return Counts(
                samples=scalar("SELECT COUNT(*) FROM samples"),
                predictions=scalar("SELECT COUNT(*) FROM predictions"),
                corrected_samples=pairs[0], pair_versions=scalar("SELECT COUNT(*) FROM pairs"),
                train_pairs=pairs[1] or 0, holdout_pairs=pairs[2] or 0,
                new_since_production=pairs[3] or 0, new_train_since_production=pairs[4] or 0,
                production_version=production_version,
                models=scalar("SELECT COUNT(*) FROM models"),
                drift_flagged=scalar("SELECT COUNT(*) FROM samples WHERE drift_flagged = 1"),
                active_jobs=scalar(
                    "SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'running', 'interrupted')"))
