"""Prediction glue: load registry models once, predict samples into the store, ingest uploads.

    from loop.predictions import ingest_image, predict_sample
    result = ingest_image(store, "scan.tif", nm_per_px=None, source="upload", tool="cdsem-2")
    prediction = predict_sample(store, result.sample.id)          # production model
    prediction = predict_sample(store, result.sample.id, version=3)  # any registered version
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from loop.prediction_uncertainty import uncertainty_later, uncertainty_summary
from semgan.drift import DriftConfig, DriftError, ReferenceProfile, score
from semgan.imageio import ImageError, load_image, to_uint8
from semgan.infer import LayoutPrediction, Predictor
from semgan.model_card import ModelCard
from store import ModelVersion, Prediction, Sample, Store

UNCERTAIN_BELOW = 0.5  # confidence |2p − 1| below this counts as an uncertain pixel


class IngestError(ValueError):
    """An image cannot be added to the workspace: unreadable, no pixel size, bad values."""


class MissingPixelSizeError(IngestError):
    """The file carries no pixel size and none was given."""


class NoProductionModelError(LookupError):
    """There is no production model to predict with."""


@dataclass(frozen=True)
class IngestResult:
    """A stored sample, its drift verdict and its prediction (None when no model exists)."""

    sample: Sample
    prediction: Prediction | None
    nm_per_px_from: str  # "file" or "given"
    already_stored: bool


class PredictorCache:
    """Loaded Predictors keyed by registry version (and weights sha), least recently used out."""

    def __init__(self, max_models: int = 3, device: str = "auto") -> None:
        self.max_models, self.device = max_models, device
        self._models: OrderedDict[tuple[int, str], Predictor] = OrderedDict()
        self._lock = threading.Lock()
        self.run_lock = threading.Lock()  # one forward pass at a time: 2 cores, no oversubscription

    def get(self, model: ModelVersion) -> Predictor:
        """The Predictor of a registered model version, loaded once."""
        key = (model.version, model.weights_sha256)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
        predictor = Predictor.from_dir(Path(model.path), device=self.device)
        with self._lock:
            self._models[key] = predictor
            while len(self._models) > self.max_models:
                self._models.popitem(last=False)
        return predictor

    def clear(self) -> None:
        """Forget every loaded model."""
        with self._lock:
            self._models.clear()


DEFAULT_CACHE = PredictorCache()


def resolve_version(store: Store, version: int | None) -> ModelVersion:
    """The registered model ``version``, or production when None."""
    if version is not None:
        return store.get_model(version)
    model = store.production_model()
    if model is None:
        raise NoProductionModelError(
            "no production model is registered in this workspace; start the app with "
            "--model-dir MODEL_DIR (a folder with weights.safetensors) to install one")
    return model


def confidence_summary(result: LayoutPrediction) -> dict:
    """Scalar summary of a prediction's confidence map, for the review queue and the UI."""
    confidence = result.confidence
    return {"mean": float(confidence.mean()),
            "uncertain_fraction": float(np.mean(confidence < UNCERTAIN_BELOW)),
            "p05": float(np.percentile(confidence, 5)),
            "mask_fraction": float(result.mask.mean()),
            "tool_calibration": result.calibration, "tool_expert": result.expert,
            "edge_flips": result.edge_flips, "flipped_fraction": result.flipped_fraction,
            "edge_check_skipped": result.edge_check_skipped, "tool_routing": result.routing}


def run_model(store: Store, image: np.ndarray, nm_per_px: float, version: int | None = None,
              cache: PredictorCache = DEFAULT_CACHE,
              tool: str | None = None) -> tuple[ModelVersion, LayoutPrediction]:
    """Predict a layout for an SEM image (of the tool tagged ``tool``) without storing anything."""
    model = resolve_version(store, version)
    predictor = cache.get(model)
    with cache.run_lock:
        return model, predictor.predict(image, nm_per_px, tool)


def predict_sample(store: Store, sample_id: int, version: int | None = None,
                   cache: PredictorCache = DEFAULT_CACHE, uncertainty_now: bool = True) -> Prediction:
    """Predict a stored sample with a version (production when None) and store the result; its
    uncertainty (the queue's sort key) is measured before it is stored, or with
    ``uncertainty_now=False`` in a background thread that adds it afterwards."""
    sample = store.get_sample(sample_id)
    image = store.sample_image(sample_id)
    model, result = run_model(store, image, sample.nm_per_px, version, cache, sample.tool)
    confidence = np.rint(np.clip(result.confidence, 0, 1) * 255).astype(np.uint8)
    summary = confidence_summary(result)
    if uncertainty_now:
        summary.update(uncertainty_summary(store, cache.get(model), cache.run_lock, image,
                                           sample.nm_per_px, result, sample.tool))
    prediction = store.add_prediction(sample_id, model.version, result.mask, summary, result.seconds,
                                      confidence)
    if not uncertainty_now:
        uncertainty_later(store, cache.get(model), cache.run_lock, image, sample.nm_per_px, result,
                          prediction.id, sample.tool)
    return prediction


def prediction_for(store: Store, sample_id: int, version: int | None = None,
                   cache: PredictorCache = DEFAULT_CACHE, uncertainty_now: bool = True) -> Prediction:
    """The stored prediction of a sample by a version (production when None), made if missing."""
    model = resolve_version(store, version)
    stored = store.get_prediction(sample_id, model.version)
    return stored if stored is not None else predict_sample(store, sample_id, model.version,
                                                            cache, uncertainty_now)


def probability_of(store: Store, prediction: Prediction) -> np.ndarray:
    """P(feature) in [0, 1] rebuilt from the stored mask and confidence |2p − 1| (8-bit)."""
    mask = store.prediction_mask(prediction)
    stored = store.confidence_map(prediction)
    confidence = np.ones(mask.shape, np.float32) if stored is None else stored / 255.0
    return np.where(mask, 0.5 + confidence / 2, 0.5 - confidence / 2).astype(np.float32)


def predict_sem(store: Store, layout_mask: np.ndarray, nm_per_px: float | None,
                version: int | None = None, cache: PredictorCache = DEFAULT_CACHE) -> np.ndarray:
    """What a version's reverse generator expects the tool to image for a layout (uint8)."""
    model = resolve_version(store, version)
    predictor = cache.get(model)
    with cache.run_lock:
        return predictor.predict_sem(np.asarray(layout_mask, bool), nm_per_px)


# -- drift -------------------------------------------------------------------------------------


def drift_reference(model: ModelVersion | None) -> ReferenceProfile | None:
    """The model card's ``drift_reference`` profile, or None when it has none."""
    data = None if model is None else ModelCard.from_dict(model.card).drift_reference
    if not isinstance(data, dict):
        return None
    try:
        return ReferenceProfile.from_dict(data)
    except DriftError:
        return None


def score_drift(store: Store, sample_id: int, reference: ReferenceProfile,
                config: DriftConfig | None = None) -> Sample:
    """Score a sample against a reference (resampled to its nm/px first) and record it."""
    config = config or DriftConfig()
    sample = store.get_sample(sample_id)
    image = store.sample_image(sample_id)
    scale = sample.nm_per_px / reference.nm_per_px
    if not math.isclose(scale, 1.0, rel_tol=1e-6):
        size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1
                           else cv2.INTER_LINEAR)
    verdict = score(image, reference.nm_per_px, reference, config)
    # Sort key in units of the flag threshold: > 1 means flagged, whichever test fired.
    severity = max(verdict.max_abs_z / config.z_threshold, verdict.kl / config.kl_threshold)
    scores = {"z": verdict.z, "kl": verdict.kl, "reasons": list(verdict.reasons),
              "severity": severity, "z_threshold": config.z_threshold,
              "kl_threshold": config.kl_threshold}
    return store.set_drift(sample_id, scores, verdict.flagged, score=severity)


# -- ingest ------------------------------------------------------------------------------------


def _pixel_size(file_value: float | None, given: float | None, name: str) -> tuple[float, str]:
    """The pixel size to use: the file's, else the given one, else a clear error."""
    if file_value is not None:
        return float(file_value), "file"
    if given is None:
        raise MissingPixelSizeError(f"{name}: the file carries no pixel size; enter the pixel "
                                    "size in nm/px and add it again")
    try:
        value = float(given)
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise IngestError(f"{name}: pixel size must be a positive number of nm/px, got {given!r}")
    return value, "given"


def ingest_image(store: Store, data: bytes | str | Path, nm_per_px: float | None,
                 source: str = "upload", tool: str | None = None, name: str | None = None,
                 predict: bool = True, cache: PredictorCache = DEFAULT_CACHE) -> IngestResult:
    """Load an SEM image (PNG/TIFF…), store it, score drift, and predict it with production."""
    label = name or (Path(data).name if isinstance(data, str | Path) else "uploaded image")
    try:
        loaded = load_image(data)
    except ImageError as exc:
        raise IngestError(str(exc).replace("<bytes>", label)) from exc
    pixel_size, origin = _pixel_size(loaded.nm_per_px, nm_per_px, label)
    started = time.time()
    # The tool: as given (upload field, --tool), else what the TIFF names, else untagged.
    sample = store.add_sample(to_uint8(loaded.pixels), pixel_size, source,
                              tool=(tool or "").strip() or loaded.tool or None, name=label)
    already = sample.created < started  # the same pixels at the same nm/px were stored before
    production = store.production_model()
    reference = drift_reference(production)
    if reference is not None and sample.drift_scores is None:
        sample = score_drift(store, sample.id, reference)
    prediction = None
    if predict and production is not None:
        prediction = prediction_for(store, sample.id, production.version, cache)
        sample = store.get_sample(sample.id)
    return IngestResult(sample, prediction, origin, already)
