"""SEM ↔ design registration: normalised cross-correlation over the search window.

The image-side signal is the predicted layout (the model's output, compared with the design
mask) and/or the SEM's edges (gradient magnitude, compared with the design's edges: blind to
inverted material contrast). The best placement gives the offset, refined to sub-pixel by a
parabola through the peak, then a small grid of rotations/scales is tried around it and kept
only where it clearly improves the fit. The confidence compares the best peak with the best
peak outside it: a repetitive pattern (line/space, contact array) has a second peak one period
away as high as the first, and is reported as ambiguous instead of trusted.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np
from scipy import ndimage
from skimage.feature import match_template

from semgan.design.clip import DesignClip
from semgan.design.errors import RegistrationError
from semgan.design.placement import Registration

__all__ = ["SIGNALS", "RegistrationConfig", "edge_signal", "peak_ambiguity", "register",
           "used_signal"]

SIGNALS = ("auto", "prediction", "edges", "both")
MAX_REFINE_SHIFT_PX = 1.5  # a kept rotation/scale moves the translation-only centre at most this


@dataclass(frozen=True)
class RegistrationConfig:
    """How the search runs: which signals, edge smoothing, ambiguity rule, rotation/scale grid."""

    signal: str = "auto"  # "prediction", "edges" (the SEM's), "both" (mean score); auto: prediction if given
    edge_sigma_px: float = 1.25  # Gaussian smoothing before the gradient (SEM noise, edge bloom)
    ambiguity_ratio: float = 0.85  # second peak / best peak above this → ambiguous
    exclusion_px: int = 2  # local maxima this close to the best are the same peak
    ridge_px: int = 16  # a main peak whose top runs longer than this (px) → ambiguous
    rotations_deg: tuple[float, ...] = (-1.0, -0.5, 0.0, 0.5, 1.0)
    scales: tuple[float, ...] = (0.98, 1.0, 1.02)
    min_gain: float = 0.05  # NCC a rotation/scale must add to be kept

    def __post_init__(self) -> None:
        """Refuse settings that cannot run."""
        if self.signal not in SIGNALS:
            raise RegistrationError(f"signal must be one of {SIGNALS}, got {self.signal!r}")
        if not self.edge_sigma_px > 0 or not 0 < self.ambiguity_ratio <= 1:
            raise RegistrationError("edge_sigma_px must be positive and ambiguity_ratio in (0, 1]")
        if 0.0 not in self.rotations_deg or 1.0 not in self.scales or min(self.scales) <= 0:
            raise RegistrationError("the rotation/scale grid must include 0° and scale 1")


def edge_signal(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gradient magnitude of a smoothed image, scaled to [0, 1] (edges of either polarity)."""
    smooth = ndimage.gaussian_filter(np.asarray(image, np.float64), sigma_px)
    magnitude = np.hypot(ndimage.sobel(smooth, axis=0), ndimage.sobel(smooth, axis=1))
    peak = magnitude.max()
    return magnitude / peak if peak > 0 else magnitude


def _ncc(design: np.ndarray, template: np.ndarray) -> np.ndarray:
    # (2m + 1, 2m + 1): NCC of the template at every placement in the design raster.
    if np.ptp(template) == 0:
        raise RegistrationError("the image-side signal is flat (an empty prediction or a blank "
                                "SEM): nothing to register")
    return match_template(design.astype(np.float32), template.astype(np.float32))


def _signals(clip: DesignClip, prediction: np.ndarray | None, sem_image: np.ndarray | None,
             config: RegistrationConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    """(design-side, image-side) signal pairs for the chosen signal."""
    signal = config.signal
    if signal == "auto":
        signal = "prediction" if prediction is not None else "edges"
    use_pred = signal in ("prediction", "both") and prediction is not None
    use_edges = signal in ("edges", "both") and sem_image is not None
    if not (use_pred or use_edges):
        raise RegistrationError(f"signal {config.signal!r} needs "
                                f"{'a prediction' if config.signal == 'prediction' else 'the SEM image'}")
    pairs = []
    for image in (prediction if use_pred else None, sem_image if use_edges else None):
        if image is not None and tuple(np.shape(image)) != clip.image_shape:
            raise RegistrationError(f"image shape {np.shape(image)} is not the clip's {clip.image_shape}")
    if use_pred:
        pairs.append((edge_signal(clip.mask, config.edge_sigma_px),
                      edge_signal(np.asarray(prediction, np.float32), config.edge_sigma_px)))
    if use_edges:
        pairs.append((edge_signal(clip.mask, config.edge_sigma_px),
                      edge_signal(sem_image, config.edge_sigma_px)))
    return pairs


def used_signal(signal: str, has_prediction: bool, has_sem: bool) -> str:
    """The signal a registration actually used ("both" falls back to the one available)."""
    if signal == "auto":
        return "prediction" if has_prediction else "edges"
    if signal != "both" or (has_prediction and has_sem):
        return signal
    return "prediction" if has_prediction else "edges"


def _subpixel(surface: np.ndarray, v: int, u: int) -> tuple[float, float]:
    """Peak position refined by a parabola through it and its neighbours on each axis."""
    def offset(minus: float, centre: float, plus: float) -> float:
        curvature = minus - 2 * centre + plus
        return 0.0 if curvature >= 0 else float(np.clip(0.5 * (minus - plus) / curvature, -0.5, 0.5))
    height, width = surface.shape
    dv = offset(surface[v - 1, u], surface[v, u], surface[v + 1, u]) if 0 < v < height - 1 else 0.0
    du = offset(surface[v, u - 1], surface[v, u], surface[v, u + 1]) if 0 < u < width - 1 else 0.0
    return v + dv, u + du


def peak_ambiguity(surface: np.ndarray, config: RegistrationConfig
                   ) -> tuple[float, bool, list[tuple[int, int, float]]]:
    """(best NCC of another peak, whether the main peak is a ridge, the other peaks as high).

    Another peak is a local maximum more than ``exclusion_px`` from the best (Chebyshev): a
    wrong period of a repetitive pattern. A ridge is a main peak whose top (within 10 % of its
    height above the median) runs more than ``ridge_px`` along a row or column: lines seen
    without their ends fix the offset across them, not along them.
    """
    best_v, best_u = np.unravel_index(int(np.argmax(surface)), surface.shape)
    best, floor = float(surface[best_v, best_u]), float(np.median(surface))
    rows, cols = np.indices(surface.shape)
    far = np.maximum(np.abs(rows - best_v), np.abs(cols - best_u)) > config.exclusion_px
    local_max = (surface >= ndimage.maximum_filter(surface, size=3)) & far
    second = float(surface[local_max].max()) if local_max.any() else floor
    rivals = np.argwhere(local_max & (surface >= config.ambiguity_ratio * best))
    order = np.argsort(-surface[rivals[:, 0], rivals[:, 1]])[:4] if len(rivals) else []
    others = [(int(rivals[i, 0]), int(rivals[i, 1]), float(surface[tuple(rivals[i])])) for i in order]
    labels, _ = ndimage.label(surface >= best - 0.1 * (best - floor))
    top_rows, top_cols = np.nonzero(labels == labels[best_v, best_u])
    ridge = max(np.ptp(top_rows), np.ptp(top_cols)) + 1 > config.ridge_px
    return second, bool(ridge), others


def _combined(clip: DesignClip, pairs: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    return np.mean([_ncc(design, image) for design, image in pairs], axis=0)


def _warp(image: np.ndarray, rotation_deg: float, scale: float) -> np.ndarray:
    """Undo a rotation/scale of the image about its centre (the design frame), edge-replicated."""
    height, width = image.shape
    matrix = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), -rotation_deg, 1 / scale)
    return cv2.warpAffine(np.asarray(image, np.float32), matrix, (width, height),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _local_ncc(window: np.ndarray, inner: np.ndarray, reach: int) -> np.ndarray:
    """(2·reach + 1)² NCC of ``inner`` at the placements of ``window`` (direct, for small reach)."""
    template = inner - inner.mean()
    norm = np.sqrt(np.sum(template * template))
    height, width = inner.shape
    out = np.zeros((2 * reach + 1, 2 * reach + 1))
    for dv in range(2 * reach + 1):
        for du in range(2 * reach + 1):
            patch = window[dv:dv + height, du:du + width]
            patch = patch - patch.mean()
            denominator = norm * np.sqrt(np.sum(patch * patch))
            out[dv, du] = np.sum(patch * template) / denominator if denominator > 0 else 0.0
    return out


def _refine(clip: DesignClip, pairs, v: int, u: int, config: RegistrationConfig
            ) -> tuple[float, float, float, float, float]:
    """(rotation, scale, score, v, u) of the best rotation/scale near placement (v, u)."""
    height, width = clip.image_shape
    inset = int(np.ceil(np.hypot(height, width) / 2 * (np.deg2rad(max(map(abs, config.rotations_deg)))
                                                         + max(abs(s - 1) for s in config.scales)))) + 2
    reach = 3  # placements searched around the translation peak, in px
    if min(height, width) <= 4 * inset:
        return 0.0, 1.0, float("nan"), float(v), float(u)
    results = []
    for rotation in config.rotations_deg:
        for scale in config.scales:
            scores = []
            for design, image in pairs:
                inner = _warp(image, rotation, scale)[inset:height - inset, inset:width - inset]
                top, left = v + inset - reach, u + inset - reach
                window = np.pad(design, reach)[top + reach:top + reach + inner.shape[0] + 2 * reach,
                                               left + reach:left + reach + inner.shape[1] + 2 * reach]
                scores.append(_local_ncc(window, inner, reach))
            surface = np.mean(scores, axis=0)  # (2·reach + 1, 2·reach + 1)
            pv, pu = np.unravel_index(int(np.argmax(surface)), surface.shape)
            sv, su = _subpixel(surface, pv, pu)
            results.append((float(surface[pv, pu]), rotation, scale, v + sv - reach, u + su - reach))
    identity = next(r for r in results if r[1] == 0.0 and r[2] == 1.0)
    best = max(results, key=lambda r: r[0])
    chosen = best if best[0] > identity[0] + config.min_gain else identity
    return chosen[1], chosen[2], chosen[0], chosen[3], chosen[4]


def _register_signal(clip: DesignClip, prediction: np.ndarray | None,
                     sem_image: np.ndarray | None, config: RegistrationConfig) -> Registration:
    """Registration on one signal choice (``config.signal`` is not "auto" here)."""
    pairs = _signals(clip, prediction, sem_image, config)
    surface = _combined(clip, pairs)
    v, u = np.unravel_index(int(np.argmax(surface)), surface.shape)
    best = float(surface[v, u])
    second, ridge, others = peak_ambiguity(surface, config)
    sv, su = _subpixel(surface, v, u)
    rotation, scale = 0.0, 1.0
    if len(config.rotations_deg) > 1 or len(config.scales) > 1:
        rotation, scale, refined, rv, ru = _refine(clip, pairs, int(v), int(u), config)
        # A rotation/scale about the image centre barely moves the centre: one that does fits
        # noise or a wrong structure and is dropped. The offset stays the translation search's
        # (sub-pixel on the full image; the refinement sees only an inner crop).
        if (rotation != 0.0 or scale != 1.0) and np.hypot(rv - sv, ru - su) <= MAX_REFINE_SHIFT_PX:
            best = refined
        else:
            rotation, scale = 0.0, 1.0
    ratio = max(second, 0.0) / best if best > 0 else 1.0
    p, m = clip.nm_per_px, clip.margin_px
    return Registration(
        center_nm=clip.center_nm, nm_per_px=p, dx_nm=float((su - m) * p), dy_nm=float((m - sv) * p),
        rotation_deg=float(rotation), scale=float(scale), score=best, second_score=second,
        confidence=float(np.clip(1 - ratio, 0, 1)),
        ambiguous=bool(best <= 0 or ratio > config.ambiguity_ratio or ridge),
        signal=used_signal(config.signal, prediction is not None, sem_image is not None),
        search_nm=float(m * p),
        alternatives=tuple((float((ou - m) * p), float((m - ov) * p), score) for ov, ou, score in others))


def register(clip: DesignClip, prediction: np.ndarray | None = None,
             sem_image: np.ndarray | None = None,
             config: RegistrationConfig = RegistrationConfig()) -> Registration:
    """Find the design placement of the image: offset (sub-pixel), rotation/scale, confidence.

    "auto" trusts the prediction; where its fit is ambiguous (a model lost on a foreign tool
    predicts something the design only half matches) and the SEM is given, the SEM's edges
    are tried too and the less ambiguous, more confident of the two is kept.
    """
    if config.signal != "auto" or prediction is None or sem_image is None:
        return _register_signal(clip, prediction, sem_image, config)
    by_prediction = _register_signal(clip, prediction, None, replace(config, signal="prediction"))
    if not by_prediction.ambiguous:
        return by_prediction
    by_edges = _register_signal(clip, None, sem_image, replace(config, signal="edges"))
    return min((by_prediction, by_edges), key=lambda r: (r.ambiguous, -r.confidence))
