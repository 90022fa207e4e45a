"""Per-image uncertainty that tracks error: how likely a prediction is wrong, and where.

The generator's own confidence |2p − 1| says little: on a tool it never saw it predicts an empty
layout with confidence 0.999. Signals that do track error (measured in docs/uncertainty.md):

- test-time augmentation (TTA): the image is predicted under flips/rotations and mapped back; a
  prediction the model cannot reproduce when the image is mirrored is not to be trusted. The
  per-pixel disagreement 2·mean|p_i − p̄| (0–1) is the map the UI overlays;
- edge evidence: the fraction of the SEM's strong edges that no predicted outline explains (an
  empty layout on a patterned image misses all of them);
- drift of the image against the training reference (``semgan.drift``), the edge-support
  check's flipped fraction, and an empty or full predicted layout.

``semgan.uncertainty_model.UncertaintyModel`` combines these features logistically into
P(IoU < 0.9); its coefficients are fitted by ``bench/bench_uncertainty.py`` and shipped as
``semgan/weights/uncertainty.json``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from semgan.drift import DriftError, ReferenceProfile
from semgan.drift import score as drift_score
from semgan.edgecheck import noise_sigma, smoothed_gradient
from semgan.errors import SemganError
from semgan.infer import LayoutPrediction, Predictor
from semgan.uncertainty_model import TRANSFORM_SETS, UncertaintyError, UncertaintyModel, load_model

EDGE_SIGMA_PX = 1.5
EDGE_SNR = 0.6  # strong edges: smoothed gradient ≥ this × the pixel-noise sigma …
MIN_EDGE_FRACTION = 0.002  # … on at least this fraction of the image, else there are none
DENSE_ABOVE = 0.5  # of the pixels; the training layouts stay below (90th percentile 0.43)
EDGE_NEAR_PX = 3
MIN_OUTLINE_PX = 10  # fewer predicted outline pixels than this: no edge width to measure  # a strong SEM edge within this distance of a predicted outline is explained


def dihedral(image: np.ndarray, index: int) -> np.ndarray:
    """The ``index``-th (0–7) symmetry of the square: rotate by 90°·(index // 2), then mirror
    left–right when index is odd (index 0 = identity)."""
    out = np.rot90(image, index // 2)
    return np.ascontiguousarray(out[:, ::-1] if index % 2 else out)


def undo_dihedral(image: np.ndarray, index: int) -> np.ndarray:
    """Inverse of ``dihedral``: ``undo_dihedral(dihedral(x, i), i) == x``."""
    out = image[:, ::-1] if index % 2 else image
    return np.ascontiguousarray(np.rot90(out, -(index // 2)))


def tta_probabilities(predictor: Predictor, sem_image: np.ndarray, nm_per_px: float | None,
                      transforms: int = 4, base: LayoutPrediction | None = None,
                      tool: str | None = None) -> np.ndarray:
    """P(feature) under each transform, mapped back to the input frame: (T, H, W) float32."""
    if transforms not in TRANSFORM_SETS:
        raise UncertaintyError(f"transforms must be one of {tuple(TRANSFORM_SETS)}, got {transforms}")
    maps = []
    for index in TRANSFORM_SETS[transforms]:
        if index == 0 and base is not None:  # the identity is the prediction already made
            maps.append(base.probability)
            continue
        result = predictor.predict(dihedral(np.asarray(sem_image), index), nm_per_px, tool)
        maps.append(undo_dihedral(result.probability, index))
    return np.stack(maps).astype(np.float32)


def disagreement_map(probabilities: np.ndarray) -> np.ndarray:
    """Per-pixel TTA disagreement 2·mean_i |p_i − p̄| in [0, 1] of a (T, H, W) stack."""
    mean = probabilities.mean(axis=0)
    return np.clip(2 * np.abs(probabilities - mean).mean(axis=0), 0, 1).astype(np.float32)


def _outline(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` or its complement with a 4-neighbour of the other value."""
    outline = np.zeros(mask.shape, bool)
    across_x, across_y = mask[:, :-1] != mask[:, 1:], mask[:-1] != mask[1:]
    outline[:, :-1] |= across_x
    outline[:, 1:] |= across_x
    outline[:-1] |= across_y
    outline[1:] |= across_y
    return outline


def missed_edges(sem_image: np.ndarray, mask: np.ndarray) -> float:
    """Fraction of the SEM's strong edges (top 5 % gradient, above the noise) farther than
    ``EDGE_NEAR_PX`` from any predicted outline: 0 = every strong edge is explained."""
    image = _unit(sem_image)
    gradient = smoothed_gradient(image, EDGE_SIGMA_PX)
    # Smoothed pixel noise alone reaches ~0.35 σ at its 99th percentile: 0.6 σ is an edge.
    strong = gradient >= max(float(np.percentile(gradient, 95)), EDGE_SNR * noise_sigma(image), 1e-6)
    if strong.mean() < MIN_EDGE_FRACTION:  # a blank image: nothing to explain
        return 0.0
    outline = _outline(np.asarray(mask, bool)).astype(np.uint8)
    if not outline.any():
        return 1.0
    distance = cv2.distanceTransform(1 - outline, cv2.DIST_L2, 3)
    return float(np.mean(distance[strong] > EDGE_NEAR_PX))


def edge_blur(sem_image: np.ndarray, mask: np.ndarray) -> float:
    """Edge width in pixels: the image's grey-level range over its gradient along the predicted
    outlines (a wider beam blurs the step, and a blurred edge hides where it really is)."""
    image = cv2.GaussianBlur(_unit(sem_image), (0, 0), 1.0)
    outline = _outline(np.asarray(mask, bool))
    if outline.sum() < MIN_OUTLINE_PX:
        return 0.0
    near = cv2.dilate(outline.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    gradient = float(np.percentile(smoothed_gradient(image, 0.5)[near], 90))
    spread = float(np.percentile(image, 99) - np.percentile(image, 1))
    return spread / max(gradient, 1e-6)


def _unit(sem_image: np.ndarray) -> np.ndarray:
    """A grey image as float32 in [0, 1] (8- and 16-bit integers scaled)."""
    image = np.asarray(sem_image, dtype=np.float32)
    if image.max() > 1.5:
        image = image / (65535.0 if image.max() > 255 else 255.0)
    return image


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


def image_features(probabilities: np.ndarray, base: LayoutPrediction, sem_image: np.ndarray,
                   reference: ReferenceProfile | None = None,
                   nm_per_px: float | None = None) -> dict[str, float]:
    """The per-image signals of one prediction (``probabilities`` from ``tta_probabilities``)."""
    consensus = probabilities.mean(axis=0) > 0.5
    masks = probabilities > 0.5
    fraction = float(base.mask.mean())
    blur = edge_blur(sem_image, base.mask)
    ratio = float(_outline(base.mask).sum() / (min(base.mask.sum(), (~base.mask).sum()) + 1))
    features = {
        "tta_disagreement": float(disagreement_map(probabilities).mean()),
        "tta_iou_loss": 1.0 - float(np.mean([_iou(m, consensus) for m in masks])),
        "low_confidence": 1.0 - float(base.confidence.mean()),
        "flipped_fraction": float(base.flipped_fraction),
        "edge_check_skipped": float(base.edge_check_skipped),
        "missed_edges": missed_edges(sem_image, base.mask),
        "extreme_fill": float(min(fraction, 1.0 - fraction) < 0.02),
        "mask_fraction": fraction,
        "edge_blur": blur,
        # IoU's sensitivity to an edge error: outline length over the smaller side's area
        "outline_ratio": ratio,
        # The IoU an edge error as wide as the edges' blur would cost: a wide beam moves every
        # edge alike (TTA cannot see it), and it costs most on thin features and narrow gaps.
        "edge_loss": blur * ratio,
        # Denser than any training layout: often the substrate taken for the pattern (dark
        # features on a bright substrate), which TTA cannot see, since it is mirror-safe.
        "dense_fill": max(fraction - DENSE_ABOVE, 0.0),
        "drift": 0.0,
    }
    if reference is not None and nm_per_px is not None:
        features["drift"] = drift_severity(sem_image, nm_per_px, reference)
    return features


def drift_severity(sem_image: np.ndarray, nm_per_px: float, reference: ReferenceProfile) -> float:
    """Drift in units of the flag threshold, max(|z| / 3, KL / 0.5), > 1 = flagged, after resampling
    to the reference's nm/px (as the app scores uploads); 0 when the image cannot be scored."""
    image = np.asarray(sem_image)
    scale = nm_per_px / reference.nm_per_px
    if not math.isclose(scale, 1.0, rel_tol=1e-6):
        size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        nm_per_px = reference.nm_per_px
    try:
        verdict = drift_score(image, nm_per_px, reference)
    except SemganError:
        return 0.0
    return float(max(verdict.max_abs_z / 3.0, verdict.kl / 0.5))


@dataclass(frozen=True)
class Uncertainty:
    """How likely one prediction is wrong (0–1), why, the signals, and where (TTA map, 0–1)."""

    score: float
    reason: str
    features: dict[str, float]
    pixel_map: np.ndarray  # (H, W) float32 in [0, 1]

    def summary(self) -> dict:
        """JSON-ready fields for a prediction summary (the map is stored separately)."""
        return {"uncertainty": self.score, "uncertainty_reason": self.reason,
                "uncertainty_features": dict(self.features)}


def reference_of(predictor: Predictor) -> ReferenceProfile | None:
    """The model card's drift reference, None when it has none (or it is malformed)."""
    data = predictor.card.drift_reference
    try:
        return ReferenceProfile.from_dict(data) if isinstance(data, dict) else None
    except DriftError:
        return None


def assess(predictor: Predictor, sem_image: np.ndarray, nm_per_px: float | None = None,
           base: LayoutPrediction | None = None, model: UncertaintyModel | None = None,
           tool: str | None = None) -> Uncertainty:
    """Uncertainty of ``predictor``'s prediction of one SEM image (``base``: that prediction, if
    made; ``tool``: the image's tool tag, routed as the prediction was)."""
    model = model or load_model()
    base = base if base is not None else predictor.predict(sem_image, nm_per_px, tool)
    probabilities = tta_probabilities(predictor, sem_image, nm_per_px, model.transforms, base, tool)
    scale = nm_per_px if nm_per_px is not None else predictor.nm_per_px
    features = image_features(probabilities, base, sem_image, reference_of(predictor), scale)
    return Uncertainty(model.score(features), model.reason(features), features,
                       disagreement_map(probabilities))


REPORT_FORMAT = "semgan-predict-report/1"


@dataclass(frozen=True)
class ImageReport:
    """One image's line of ``python -m semgan predict --report``: the numbers the Review tab shows."""

    name: str
    uncertainty: float  # 0–1, higher = more likely wrong
    drift: float  # max(|z| / 3, KL / 0.5): > 1 = flagged
    seconds: float  # prediction and its uncertainty passes
    reason: str

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return asdict(self)


def image_report(name: str, predictor: Predictor, sem_image: np.ndarray, nm_per_px: float | None,
                 base: LayoutPrediction, model: UncertaintyModel | None = None,
                 tool: str | None = None) -> ImageReport:
    """The report line of one predicted image (``base``: its prediction, ``tool``: its tag)."""
    started = time.perf_counter()
    result = assess(predictor, sem_image, nm_per_px, base, model, tool)
    return ImageReport(name, round(result.score, 4), round(result.features["drift"], 4),
                       round(base.seconds + time.perf_counter() - started, 3), result.reason)


def write_report(reports: list[ImageReport], path: str | Path) -> Path:
    """Write the per-image report as JSON: {"format", "images": [{"name", "uncertainty", …}]}."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"format": REPORT_FORMAT, "images": [r.to_dict() for r in reports]},
                               indent=1) + "\n")
    return path
