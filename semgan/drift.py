"""Drift detection: per-image features scored against a reference profile of the training images.

Features (all on the image as floats in [0, 1]):
- ``mean_intensity``: the mean grey level (global brightness, gain/offset changes);
- ``contrast``: the standard deviation of the grey levels (RMS contrast, dynamic range);
- ``edge_density``: the fraction of pixels whose gradient magnitude exceeds ``EDGE_THRESHOLD``
  (grey levels per pixel, Sobel normalised so a unit ramp reads 1) after a Gaussian of
  ``EDGE_SMOOTHING_NM`` converted to pixels — light smoothing, so shot noise alone rarely counts
  as an edge, but a much noisier or blurrier tool moves the figure.
Plus a grey-level histogram (``bins`` bins on [0, 1]) compared by KL divergence. Scalar features
give z-scores against the reference mean/std; |z| > 3 or KL > 0.5 flags the image (seed §10).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from semgan.errors import SemganError
from semgan.metric_inputs import MetricError, as_unit_float

FEATURES = ("mean_intensity", "contrast", "edge_density")
EDGE_SMOOTHING_NM = 4.0
EDGE_THRESHOLD = 0.05


class DriftError(SemganError):
    """Bad input for drift scoring: no images, a malformed reference profile, a bad image."""


class PixelSizeMismatchError(SemganError):
    """An image and a reference (or two images) at different nm/px were about to be compared."""


@dataclass(frozen=True)
class DriftConfig:
    """Thresholds for flagging one image and for raising an alarm over recent images."""

    z_threshold: float = 3.0
    kl_threshold: float = 0.5
    bins: int = 64  # histogram bins for build_reference(..., bins=config.bins)
    alarm_window: int = 10
    alarm_min_flagged: int = 5
    std_floor: float = 0.01  # a feature that was constant in training still gets a finite z
    hist_epsilon: float = 1e-4  # added to every bin so an empty bin never gives inf KL


def _image(sem_image: np.ndarray) -> np.ndarray:
    try:
        image = as_unit_float(sem_image, "sem_image")
    except MetricError as error:
        raise DriftError(str(error)) from error
    if image.size == 0:
        raise DriftError("sem_image is empty")
    return image


def _positive(nm_per_px: float) -> float:
    try:
        value = float(nm_per_px)
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise DriftError(f"nm_per_px must be a positive number, got {nm_per_px!r}")
    return value


def check_same_pixel_size(image_nm_per_px: float, reference_nm_per_px: float, what: str = "image") -> None:
    """Raise PixelSizeMismatchError unless the two pixel sizes agree (to 1e-6 relative)."""
    if not math.isclose(image_nm_per_px, reference_nm_per_px, rel_tol=1e-6):
        raise PixelSizeMismatchError(
            f"{what} is at {image_nm_per_px:g} nm/px but the reference was built at "
            f"{reference_nm_per_px:g} nm/px; resample it to {reference_nm_per_px:g} nm/px first"
        )


def image_features(sem_image: np.ndarray, nm_per_px: float) -> dict[str, float]:
    """The scalar drift features of one image: mean_intensity, contrast, edge_density."""
    image = _image(sem_image)
    sigma_px = EDGE_SMOOTHING_NM / _positive(nm_per_px)
    smooth = ndimage.gaussian_filter(image, sigma_px)
    gradient = np.hypot(ndimage.sobel(smooth, axis=0), ndimage.sobel(smooth, axis=1)) / 8.0
    return {
        "mean_intensity": float(image.mean()),
        "contrast": float(image.std()),
        "edge_density": float(np.mean(gradient > EDGE_THRESHOLD)),
    }


def grey_histogram(sem_image: np.ndarray, bins: int = 64) -> np.ndarray:
    """Normalised grey-level histogram (sums to 1) of an image over [0, 1]."""
    if bins < 2:
        raise DriftError(f"a histogram needs at least 2 bins, got {bins}")
    counts, _ = np.histogram(_image(sem_image), bins=bins, range=(0.0, 1.0))
    return counts / counts.sum()


@dataclass(frozen=True)
class ReferenceProfile:
    """Feature statistics of the training SEM images; travels in the model card as JSON."""

    means: dict[str, float]
    stds: dict[str, float]
    histogram: tuple[float, ...]
    n_images: int
    nm_per_px: float

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return {**asdict(self), "histogram": list(self.histogram)}

    @classmethod
    def from_dict(cls, data: dict) -> ReferenceProfile:
        """Rebuild from ``to_dict`` output; a missing or malformed field raises DriftError."""
        try:
            profile = cls(
                means={name: float(data["means"][name]) for name in FEATURES},
                stds={name: float(data["stds"][name]) for name in FEATURES},
                histogram=tuple(float(v) for v in data["histogram"]),
                n_images=int(data["n_images"]),
                nm_per_px=float(data["nm_per_px"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise DriftError(f"malformed drift reference profile: {error!r}") from error
        if len(profile.histogram) < 2 or profile.n_images < 1 or not profile.nm_per_px > 0:
            raise DriftError("malformed drift reference profile: empty histogram, no images or bad nm/px")
        return profile


def build_reference(images: Iterable[np.ndarray], nm_per_px: float, bins: int = 64) -> ReferenceProfile:
    """Reference profile (feature mean/std and mean histogram) of training images at one nm/px."""
    nm_per_px = _positive(nm_per_px)
    rows, histograms = [], []
    for image in images:
        rows.append(image_features(image, nm_per_px))
        histograms.append(grey_histogram(image, bins))
    if not rows:
        raise DriftError("build_reference needs at least one image")
    values = {name: np.array([row[name] for row in rows]) for name in FEATURES}
    return ReferenceProfile(
        means={name: float(v.mean()) for name, v in values.items()},
        stds={name: float(v.std(ddof=1)) if len(v) > 1 else 0.0 for name, v in values.items()},
        histogram=tuple(float(v) for v in np.mean(histograms, axis=0)),
        n_images=len(rows),
        nm_per_px=nm_per_px,
    )


def kl_divergence(p: np.ndarray, q: np.ndarray, epsilon: float = 1e-4) -> float:
    """KL(p ‖ q) in nats of two histograms, each smoothed by ``epsilon`` per bin and renormalised."""
    p = np.asarray(p, dtype=np.float64) + epsilon
    q = np.asarray(q, dtype=np.float64) + epsilon
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum(p * np.log(p / q)))


@dataclass(frozen=True)
class DriftScore:
    """How far one image sits from the reference, and whether that is drift."""

    z: dict[str, float]
    kl: float
    flagged: bool
    reasons: tuple[str, ...]  # each starts with the feature name, or "histogram_kl"
    max_abs_z: float
    features: dict[str, float]

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return {**asdict(self), "reasons": list(self.reasons)}


def score(
    sem_image: np.ndarray, nm_per_px: float, reference: ReferenceProfile, config: DriftConfig = DriftConfig()
) -> DriftScore:
    """Score one image against the reference: z per feature, histogram KL, flag and reasons."""
    check_same_pixel_size(_positive(nm_per_px), reference.nm_per_px)
    features = image_features(sem_image, nm_per_px)
    z = {
        name: (features[name] - reference.means[name]) / max(reference.stds[name], config.std_floor)
        for name in FEATURES
    }
    kl = kl_divergence(grey_histogram(sem_image, len(reference.histogram)), reference.histogram, config.hist_epsilon)
    reasons = [
        f"{name}: z = {value:+.1f} beyond ±{config.z_threshold:g}"
        for name, value in z.items()
        if abs(value) > config.z_threshold
    ]
    if kl > config.kl_threshold:
        reasons.append(f"histogram_kl: {kl:.2f} above {config.kl_threshold:g}")
    return DriftScore(
        z=z,
        kl=kl,
        flagged=bool(reasons),
        reasons=tuple(reasons),
        max_abs_z=max(abs(value) for value in z.values()),
        features=features,
    )


def alarm(recent_flags: Sequence[bool], config: DriftConfig = DriftConfig()) -> bool:
    """True when at least ``alarm_min_flagged`` of the last ``alarm_window`` images were flagged."""
    window = list(recent_flags)[-config.alarm_window :] if config.alarm_window > 0 else []
    return sum(bool(flag) for flag in window) >= config.alarm_min_flagged
