"""What the metrics accept: grey images as floats in [0, 1], bool masks of one shape, a pixel size.

uint8 is divided by 255 and uint16 by 65535; floats must already lie in [0, 1].
"""

from __future__ import annotations

import math

import numpy as np

from semgan.errors import SemganError


class MetricError(SemganError):
    """Inputs that cannot be compared (shape, dtype, range or pixel size)."""


def as_unit_float(image: np.ndarray, what: str = "image") -> np.ndarray:
    """Return ``image`` as float64 in [0, 1]: bool/uint8/uint16 are scaled, floats are checked."""
    image = np.asarray(image)
    if image.ndim != 2:
        raise MetricError(f"{what} must be a 2-D grey image (H, W), got shape {image.shape}")
    if image.dtype == bool:
        return image.astype(np.float64)
    if image.dtype == np.uint8:
        return image.astype(np.float64) / 255.0
    if image.dtype == np.uint16:
        return image.astype(np.float64) / 65535.0
    if not np.issubdtype(image.dtype, np.floating):
        raise MetricError(f"{what} has dtype {image.dtype}; use bool, uint8, uint16 or float")
    out = image.astype(np.float64)
    if out.size and (not np.isfinite(out).all() or out.min() < -1e-6 or out.max() > 1 + 1e-6):
        raise MetricError(
            f"{what} has float values in [{out.min():.3g}, {out.max():.3g}]; expected [0, 1] "
            "(map a Tanh output x with (x + 1) / 2 first)"
        )
    return out


def image_pair(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two images as floats in [0, 1] of one shape."""
    pred, target = as_unit_float(pred, "pred"), as_unit_float(target, "target")
    if pred.shape != target.shape:
        raise MetricError(f"pred {pred.shape} and target {target.shape} differ in shape")
    return pred, target


def mask_pair(pred_mask: np.ndarray, true_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two 2-D masks of one shape as bool."""
    pred_mask, true_mask = np.asarray(pred_mask), np.asarray(true_mask)
    if pred_mask.shape != true_mask.shape or pred_mask.ndim != 2:
        raise MetricError(f"masks must be 2-D and equal in shape: {pred_mask.shape} vs {true_mask.shape}")
    return pred_mask.astype(bool), true_mask.astype(bool)


def check_pixel_size(nm_per_px: float) -> float:
    """``nm_per_px`` as a positive finite float."""
    try:
        value = float(nm_per_px)
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise MetricError(f"nm_per_px must be a positive number, got {nm_per_px!r}")
    return value
