"""Samples (SEM images with their pixel size) and predictions (model version × sample)."""

from __future__ import annotations

import math
import numbers
import time

import numpy as np
from sqlite_utils import Database

from store import blobs
from store.base import StoreBase, check_dict, dumps, loads
from store.errors import InvalidInputError, NotFoundError
from store.records import SAMPLE_SOURCES, Prediction, Sample

SAMPLE_SELECT = ("SELECT s.*, EXISTS(SELECT 1 FROM pairs p WHERE p.sample_id = s.id) "
                 "AS corrected FROM samples s")
SAMPLE_ORDERS = {
    "created": "s.created DESC, s.id DESC",
    # flagged first, then the largest drift score; samples never scored go last
    "drift": "s.drift_flagged DESC, s.drift_score IS NULL, s.drift_score DESC, s.id DESC",
    "uncertainty": "s.uncertainty IS NULL, s.uncertainty DESC, s.id DESC",
}


def row_to_sample(row: dict) -> Sample:
    """Sample record from a samples row (with the computed ``corrected`` column)."""
    return Sample(
        id=row["id"], image_sha=row["image_sha"], content_sha=row["content_sha"],
        nm_per_px=row["nm_per_px"], height=row["height"], width=row["width"],
        source=row["source"], tool=row["tool"], name=row["name"], truth_sha=row["truth_sha"],
        created=row["created"], drift_scores=loads(row["drift_json"]),
        drift_score=row["drift_score"], drift_flagged=bool(row["drift_flagged"]),
        uncertainty=row["uncertainty"], corrected=bool(row["corrected"]))


def row_to_prediction(row: dict) -> Prediction:
    """Prediction record from a predictions row."""
    return Prediction(
        id=row["id"], sample_id=row["sample_id"], model_version=row["model_version"],
        mask_sha=row["mask_sha"], confidence_sha=row["confidence_sha"],
        confidence_summary=loads(row["confidence_json"], {}), seconds=row["seconds"],
        created=row["created"])


def check_nm_per_px(nm_per_px: float) -> float:
    """A pixel size must be a finite positive number of nanometres."""
    if isinstance(nm_per_px, bool) or not isinstance(nm_per_px, numbers.Real) \
            or not math.isfinite(nm_per_px) or nm_per_px <= 0:
        raise InvalidInputError(f"nm_per_px must be a positive number, got {nm_per_px!r}")
    return float(nm_per_px)


def uncertainty_of(summary: dict) -> float | None:
    """Review-queue uncertainty from a confidence summary: the per-image score P(wrong)
    (semgan.uncertainty), else uncertain_fraction, else 1 - mean confidence."""
    for key, transform in (("uncertainty", float), ("uncertain_fraction", float),
                           ("mean", lambda m: 1.0 - float(m))):
        value = summary.get(key)
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            return transform(value)
    return None


def _filters(uncorrected_only: bool, source: str | None, tool: str | None,
             flagged_only: bool) -> tuple[str, list]:
    """WHERE clause and parameters shared by list_samples and count_samples."""
    clauses, params = [], []
    if uncorrected_only:
        clauses.append("NOT EXISTS (SELECT 1 FROM pairs p WHERE p.sample_id = s.id)")
    if source is not None:
        clauses.append("s.source = ?")
        params.append(source)
    if tool is not None:
        clauses.append("s.tool = ?")
        params.append(tool)
    if flagged_only:
        clauses.append("s.drift_flagged = 1")
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _production_version(db: Database) -> int | None:
    """The production model's version, None before one is installed."""
    row = db.execute("SELECT version FROM models WHERE status = 'production'").fetchone()
    return None if row is None else row[0]


class SamplesMixin(StoreBase):
    """Samples and predictions."""

    def _sample_row(self, db: Database, sample_id: int) -> dict:
        """The sample row or NotFoundError."""
        rows = list(db.query(SAMPLE_SELECT + " WHERE s.id = ?", [sample_id]))
        if not rows:
            raise NotFoundError(f"sample {sample_id} does not exist in {self.workspace}")
        return rows[0]

    def add_sample(self, image: np.ndarray | bytes, nm_per_px: float, source: str,
                   tool: str | None = None, name: str | None = None,
                   truth_sha: str | None = None) -> Sample:
        """Store an 8-bit grey SEM image (array or PNG bytes); the same pixels + nm/px → same sample."""
        if isinstance(image, bytes | bytearray):
            image = blobs.decode_png(bytes(image), "SEM image")
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
            raise InvalidInputError("the SEM image must be a uint8 (H, W) array or PNG bytes, "
                                    f"got {getattr(image, 'dtype', type(image).__name__)}")
        blobs.as_grey_uint8(image, "SEM image")
        nm_per_px = check_nm_per_px(nm_per_px)
        if source not in SAMPLE_SOURCES:
            raise InvalidInputError(f"source must be one of {SAMPLE_SOURCES}, got {source!r}")
        if truth_sha is not None and not blobs.blob_path(self.blobs_dir, truth_sha).exists():
            raise NotFoundError(f"truth mask blob {truth_sha} does not exist; put_blob it first")
        key = blobs.content_sha(image)
        existing = self._find_sample(key, nm_per_px)
        if existing is not None:
            return existing
        png = blobs.encode_png(image)
        image_sha = self._put(png)
        with self._write() as db:
            found = self._find_sample(key, nm_per_px)  # another process may have won the race
            if found is not None:
                return found
            self._ensure_blob(image_sha, png)
            sample_id = db["samples"].insert({
                "image_sha": image_sha, "content_sha": key, "nm_per_px": nm_per_px,
                "height": image.shape[0], "width": image.shape[1], "source": source,
                "tool": tool, "name": name, "truth_sha": truth_sha, "created": time.time(),
            }).last_pk
            self._event(db, "sample_added",
                        f"sample {sample_id} added ({source}, {image.shape[1]}×{image.shape[0]} "
                        f"px at {nm_per_px:g} nm/px)", {"sample_id": sample_id, "name": name})
            return row_to_sample(self._sample_row(db, sample_id))

    def _find_sample(self, key: str, nm_per_px: float) -> Sample | None:
        """The sample with these pixels and pixel size, if stored."""
        rows = list(self._conns.db().query(
            SAMPLE_SELECT + " WHERE s.content_sha = ? AND s.nm_per_px = ?", [key, nm_per_px]))
        return row_to_sample(rows[0]) if rows else None

    def get_sample(self, sample_id: int) -> Sample:
        """The sample with this id (NotFoundError if none)."""
        return row_to_sample(self._sample_row(self._conns.db(), sample_id))

    def sample_image(self, sample_id: int) -> np.ndarray:
        """The sample's SEM image as uint8 (H, W)."""
        return self._read_array(self.get_sample(sample_id).image_sha)

    def set_drift(self, sample_id: int, scores: dict, flagged: bool,
                  score: float | None = None) -> Sample:
        """Record drift scores; ``score`` (sort key) defaults to the largest |value| in scores."""
        scores = check_dict(scores, "drift scores")
        if score is None:
            values = [abs(float(v)) for v in scores.values()
                      if isinstance(v, numbers.Real) and not isinstance(v, bool)
                      and math.isfinite(float(v))]
            score = max(values) if values else None
        with self._write() as db:
            self._sample_row(db, sample_id)
            db["samples"].update(sample_id, {"drift_json": dumps(scores), "drift_score": score,
                                             "drift_flagged": int(bool(flagged))})
            if flagged:
                self._event(db, "drift_flagged", f"sample {sample_id} is out of distribution",
                            {"sample_id": sample_id, "scores": scores})
            return row_to_sample(self._sample_row(db, sample_id))

    def list_samples(self, order_by: str = "created", uncorrected_only: bool = False,
                     source: str | None = None, tool: str | None = None,
                     flagged_only: bool = False, limit: int = 50, offset: int = 0) -> list[Sample]:
        """A page of samples, ordered by "created" (newest first), "drift" or "uncertainty"."""
        if order_by not in SAMPLE_ORDERS:
            raise InvalidInputError(f"order_by must be one of {tuple(SAMPLE_ORDERS)}, "
                                    f"got {order_by!r}")
        where, params = _filters(uncorrected_only, source, tool, flagged_only)
        sql = f"{SAMPLE_SELECT}{where} ORDER BY {SAMPLE_ORDERS[order_by]} LIMIT ? OFFSET ?"
        return [row_to_sample(r) for r in
                self._conns.db().query(sql, [*params, int(limit), int(offset)])]

    def count_samples(self, uncorrected_only: bool = False, source: str | None = None,
                      tool: str | None = None, flagged_only: bool = False) -> int:
        """How many samples match the same filters as list_samples."""
        where, params = _filters(uncorrected_only, source, tool, flagged_only)
        return self._conns.db().execute(f"SELECT COUNT(*) FROM samples s{where}",
                                        params).fetchone()[0]

    def add_prediction(self, sample_id: int, model_version: int, mask: np.ndarray,
                       confidence_summary: dict, seconds: float,
                       confidence_map: np.ndarray | None = None) -> Prediction:
        """Store a model version's mask (bool (H, W)) for a sample; returns the new prediction."""
        sample = self.get_sample(sample_id)
        if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_:
            raise InvalidInputError("the predicted mask must be a bool (H, W) array")
        for what, array in (("mask", mask), ("confidence map", confidence_map)):
            if array is not None and array.shape != (sample.height, sample.width):
                raise InvalidInputError(f"the {what} is {array.shape}, but sample {sample_id} "
                                        f"is {(sample.height, sample.width)}")
        summary = check_dict(confidence_summary, "confidence_summary")
        mask_png = blobs.encode_png(mask)
        mask_sha = self._put(mask_png)
        conf_png = conf_sha = None
        if confidence_map is not None:
            conf_png = blobs.encode_png(blobs.as_grey_uint8(confidence_map, "confidence map"))
            conf_sha = self._put(conf_png)
        with self._write() as db:
            if db["models"].count_where("version = ?", [model_version]) == 0:
                raise NotFoundError(f"model version {model_version} is not registered")
            self._ensure_blob(mask_sha, mask_png)
            if conf_sha is not None:
                self._ensure_blob(conf_sha, conf_png)
            row = {"sample_id": sample_id, "model_version": model_version, "mask_sha": mask_sha,
                   "confidence_sha": conf_sha, "confidence_json": dumps(summary),
                   "seconds": float(seconds), "created": time.time()}
            row["id"] = db["predictions"].insert(row).last_pk
            # The review queue ranks by what production thinks (or by anything, until then).
            if sample.uncertainty is None or _production_version(db) == model_version:
                db["samples"].update(sample_id, {"uncertainty": uncertainty_of(summary)})
            self._event(db, "prediction", f"model v{model_version} predicted sample {sample_id} "
                        f"in {seconds:.2f} s", {"sample_id": sample_id,
                                                "model_version": model_version,
                                                "prediction_id": row["id"]})
        return row_to_prediction(row)

    def add_prediction_summary(self, prediction_id: int, extra: dict) -> Prediction:
        """Merge ``extra`` into a stored prediction's confidence summary (a score measured after
        the prediction was stored), and re-rank its sample as ``add_prediction`` would."""
        extra = check_dict(extra, "confidence_summary")
        with self._write() as db:
            rows = list(db.query("SELECT * FROM predictions WHERE id = ?", [prediction_id]))
            if not rows:
                raise NotFoundError(f"prediction {prediction_id} does not exist")
            row = rows[0]
            summary = {**loads(row["confidence_json"], {}), **extra}
            db["predictions"].update(prediction_id, {"confidence_json": dumps(summary)})
            latest = db.execute("SELECT MAX(id) FROM predictions WHERE sample_id = ? AND model_version = ?",
                                [row["sample_id"], row["model_version"]]).fetchone()[0]
            production = _production_version(db)
            if latest == prediction_id and production in (None, row["model_version"]):
                db["samples"].update(row["sample_id"], {"uncertainty": uncertainty_of(summary)})
        return row_to_prediction({**row, "confidence_json": dumps(summary)})

    def get_prediction(self, sample_id: int, model_version: int) -> Prediction | None:
        """The newest prediction of this sample by this model version, if any."""
        rows = list(self._conns.db().query(
            "SELECT * FROM predictions WHERE sample_id = ? AND model_version = ? "
            "ORDER BY id DESC LIMIT 1", [sample_id, model_version]))
        return row_to_prediction(rows[0]) if rows else None

    def latest_prediction(self, sample_id: int) -> Prediction | None:
        """The newest prediction of this sample by any model version, if any."""
        rows = list(self._conns.db().query(
            "SELECT * FROM predictions WHERE sample_id = ? ORDER BY id DESC LIMIT 1",
            [sample_id]))
        return row_to_prediction(rows[0]) if rows else None

    def get_prediction_by_id(self, prediction_id: int) -> Prediction:
        """The prediction with this id (NotFoundError if none)."""
        rows = list(self._conns.db().query("SELECT * FROM predictions WHERE id = ?",
                                           [prediction_id]))
        if not rows:
            raise NotFoundError(f"prediction {prediction_id} does not exist")
        return row_to_prediction(rows[0])

    def prediction_mask(self, prediction: Prediction) -> np.ndarray:
        """The predicted layout mask as bool (H, W)."""
        return self._read_mask(prediction.mask_sha)

    def confidence_map(self, prediction: Prediction) -> np.ndarray | None:
        """The per-pixel confidence map as uint8 (H, W), if one was stored."""
        return None if prediction.confidence_sha is None else \
            self._read_array(prediction.confidence_sha)
