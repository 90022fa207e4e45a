"""Image and pattern metrics: L1, PSNR, SSIM (screening) and IoU, EPE, CD error (the verdict).

Images are compared as floats in [0, 1] and masks as bool (``semgan.metric_inputs``); EPE and
CD error, measured on edges between pixels, live in ``semgan.edge_metrics``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from skimage.metrics import structural_similarity

from semgan.edge_metrics import cd_error, edge_placement_error
from semgan.metric_inputs import MetricError, image_pair, mask_pair

__all__ = ["aggregate", "evaluate_pair", "iou", "l1", "psnr", "ssim"]


def l1(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean absolute error between two images in [0, 1]."""
    pred, target = image_pair(pred, target)
    return float(np.mean(np.abs(pred - target)))


def psnr(pred: np.ndarray, target: np.ndarray, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB (inf for identical images), as scikit-image computes it."""
    pred, target = image_pair(pred, target)
    mse = float(np.mean((pred - target) ** 2))
    return math.inf if mse == 0.0 else float(10.0 * np.log10(data_range**2 / mse))


def ssim(pred: np.ndarray, target: np.ndarray, data_range: float = 1.0) -> float:
    """Mean SSIM with scikit-image's defaults (7×7 uniform window, K1 0.01, K2 0.03)."""
    pred, target = image_pair(pred, target)
    if min(pred.shape) < 7:
        raise MetricError(f"SSIM needs images of at least 7×7 pixels, got {pred.shape}")
    return float(structural_similarity(pred, target, data_range=data_range))


def iou(pred_mask: np.ndarray, true_mask: np.ndarray) -> float:
    """Intersection over union of two bool masks; 1.0 when both are empty."""
    pred_mask, true_mask = mask_pair(pred_mask, true_mask)
    union = np.count_nonzero(pred_mask | true_mask)
    return 1.0 if union == 0 else np.count_nonzero(pred_mask & true_mask) / union


# --- one pair, many pairs ----------------------------------------------------------------------


def evaluate_pair(
    pred_image: np.ndarray, pred_mask: np.ndarray, true_mask: np.ndarray, nm_per_px: float
) -> dict[str, float]:
    """All metrics for one prediction as a flat dict (image metrics against the true mask as 0/1)."""
    target = np.asarray(true_mask).astype(np.float64)
    epe = edge_placement_error(pred_mask, true_mask, nm_per_px)
    cd = cd_error(pred_mask, true_mask, nm_per_px)
    return {
        "l1": l1(pred_image, target),
        "ssim": ssim(pred_image, target),
        "psnr": psnr(pred_image, target),
        "iou": float(iou(pred_mask, true_mask)),
        "epe_mean_nm": epe.mean_nm,
        "epe_p95_nm": epe.p95_nm,
        "cd_error_nm": cd.mean_error_nm,
        "cd_abs_error_nm": cd.mean_abs_error_nm,
    }


def aggregate(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    """Mean of every metric over rows, ignoring NaN (inf propagates), plus ``count`` (rows)."""
    keys = sorted({key for row in rows for key in row})
    out: dict[str, float] = {}
    for key in keys:
        values = np.array([row.get(key, math.nan) for row in rows], dtype=np.float64)
        finite_or_inf = values[~np.isnan(values)]
        out[key] = float(finite_or_inf.mean()) if finite_or_inf.size else math.nan
    out["count"] = float(len(rows))
    return out
