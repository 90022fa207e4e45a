"""Coefficients of the per-image uncertainty: features → P(the prediction is wrong), as JSON.

A logistic model on a few features of ``semgan.uncertainty.image_features`` (log-scaled where
their useful range spans decades), fitted by ``fit_logistic`` in ``bench/bench_uncertainty.py``
and shipped as ``semgan/weights/uncertainty.json`` with a note of how it was fitted.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from semgan.errors import SemganError

DEFAULT_UNCERTAINTY_FILE = Path(__file__).resolve().parent / "weights" / "uncertainty.json"
TRANSFORM_SETS = {4: (0, 2, 4, 6), 8: tuple(range(8))}  # dihedral indices (semgan.uncertainty)
EPS = 1e-3
LINEAR_FEATURES = ("edge_check_skipped", "extreme_fill", "dense_fill")  # not log-scaled


class UncertaintyError(SemganError):
    """Uncertainty coefficients are malformed, or features are missing."""


def _transform(name: str, value: float) -> float:
    """Features enter the model on a log scale (their useful range spans decades)."""
    return value if name in LINEAR_FEATURES else math.log(EPS + max(value, 0.0))


REASONS = {
    "tta_disagreement": "the prediction changes when the image is flipped or rotated",
    "tta_iou_loss": "the outlines move when the image is flipped or rotated",
    "low_confidence": "the generator itself is unsure",
    "flipped_fraction": "the edge check flipped regions with no edge behind them",
    "edge_check_skipped": "edges too weak against the noise to check",
    "missed_edges": "strong SEM edges with no predicted outline",
    "extreme_fill": "the predicted layout is (almost) empty or full",
    "mask_fraction": "sparse pattern",
    "outline_ratio": "thin features or narrow gaps: each edge error weighs more",
    "edge_blur": "blurred edges (a wide beam): where they really are is hard to tell",
    "edge_loss": "blurred edges on thin features or narrow gaps: a small edge shift costs much",
    "dense_fill": "the predicted layout is denser than any design (substrate taken for pattern?)",
    "drift": "the image is unlike the training tools",
}


@dataclass(frozen=True)
class UncertaintyModel:
    """P(wrong) = sigmoid(bias + Σ weight · (transform(feature) − center) / scale)."""

    features: tuple[str, ...]
    centers: tuple[float, ...]
    scales: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    transforms: int = 4  # TTA transforms the features were measured with
    note: str = ""  # how it was fitted

    def __post_init__(self) -> None:
        sizes = {len(self.features), len(self.centers), len(self.scales), len(self.weights)}
        if len(sizes) != 1 or not self.features:
            raise UncertaintyError("uncertainty model: features, centers, scales, weights differ in length")
        unknown = sorted(set(self.features) - set(REASONS))
        if unknown:
            raise UncertaintyError(f"uncertainty model: unknown feature(s) {unknown}")
        values = (*self.centers, *self.scales, *self.weights, self.bias)
        if not all(math.isfinite(v) for v in values) or min(self.scales) <= 0:
            raise UncertaintyError("uncertainty model: coefficients must be finite, scales positive")
        if self.transforms not in TRANSFORM_SETS:
            raise UncertaintyError(f"uncertainty model: transforms must be one of {tuple(TRANSFORM_SETS)}")

    def contributions(self, features: Mapping[str, float]) -> dict[str, float]:
        """Each feature's term of the logit (positive = more likely wrong)."""
        missing = [name for name in self.features if name not in features]
        if missing:
            raise UncertaintyError(f"features missing: {missing}")
        return {name: w * (_transform(name, float(features[name])) - c) / s
                for name, c, s, w in zip(self.features, self.centers, self.scales, self.weights,
                                         strict=True)}

    def score(self, features: Mapping[str, float]) -> float:
        """P(the prediction is wrong) in [0, 1]."""
        logit = self.bias + sum(self.contributions(features).values())
        return float(1.0 / (1.0 + math.exp(-max(min(logit, 50.0), -50.0))))

    def reason(self, features: Mapping[str, float]) -> str:
        """A short reason: the signal that raises the score most, or 'consistent' when none does."""
        terms = self.contributions(features)
        name = max(terms, key=terms.get)
        return REASONS[name] if terms[name] > 0.5 else "consistent under flips/rotations, edges explained"

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return {**asdict(self), "features": list(self.features), "centers": list(self.centers),
                "scales": list(self.scales), "weights": list(self.weights)}

    @classmethod
    def from_dict(cls, data: Mapping) -> UncertaintyModel:
        """Rebuild from ``to_dict`` output; malformed content raises UncertaintyError."""
        try:
            return cls(tuple(str(f) for f in data["features"]),
                       tuple(float(v) for v in data["centers"]), tuple(float(v) for v in data["scales"]),
                       tuple(float(v) for v in data["weights"]), float(data["bias"]),
                       int(data["transforms"]), str(data["note"]))
        except (KeyError, TypeError, ValueError) as error:
            raise UncertaintyError(f"malformed uncertainty model: {error!r}") from None


def load_model(path: str | Path = DEFAULT_UNCERTAINTY_FILE) -> UncertaintyModel:
    """Read coefficients from JSON (the shipped ones by default)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise UncertaintyError(f"{path}: unreadable uncertainty model ({error})") from None
    return UncertaintyModel.from_dict(data)


def save_model(model: UncertaintyModel, path: str | Path) -> Path:
    """Write coefficients as JSON."""
    path = Path(path)
    path.write_text(json.dumps(model.to_dict(), indent=1) + "\n")
    return path


def fit_logistic(rows: Sequence[Mapping[str, float]], wrong: Sequence[bool], features: Sequence[str],
                 l2: float = 1.0, transforms: int = 4, note: str = "") -> UncertaintyModel:
    """L2-regularised logistic regression (Newton steps) of ``wrong`` on the named features."""
    labels = np.asarray(wrong, dtype=np.float64)
    if len(rows) != len(labels) or labels.min(initial=1) == labels.max(initial=0):
        raise UncertaintyError("fit_logistic needs one label per row and both classes")
    x = np.array([[_transform(f, float(row[f])) for f in features] for row in rows])
    centers, scales = x.mean(axis=0), np.maximum(x.std(axis=0), 1e-6)
    design = np.column_stack([np.ones(len(x)), (x - centers) / scales])
    beta = np.zeros(design.shape[1])
    penalty = np.diag([0.0, *[l2] * len(features)])
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ beta, -50, 50)))
        gradient = design.T @ (p - labels) + penalty @ beta
        hessian = (design * (p * (1 - p))[:, None]).T @ design + penalty + 1e-9 * np.eye(len(beta))
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return UncertaintyModel(tuple(features), tuple(map(float, centers)), tuple(map(float, scales)),
                            tuple(map(float, beta[1:])), float(beta[0]), transforms, note)


def auroc(scores: Sequence[float], wrong: Sequence[bool]) -> float:
    """Area under the ROC curve of ``scores`` for ``wrong`` (ties count half); NaN with one class."""
    scores, wrong = np.asarray(scores, float), np.asarray(wrong, bool)
    positives, negatives = scores[wrong], scores[~wrong]
    if not len(positives) or not len(negatives):
        return float("nan")
    greater = (positives[:, None] > negatives[None, :]).sum()
    ties = (positives[:, None] == negatives[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(positives) * len(negatives)))
