"""Image and pattern metrics: L1, PSNR, SSIM (screening) and IoU, EPE, CD error (the verdict).

Conventions. Images are compared as floats in [0, 1] (uint8 is divided by 255, uint16 by
65535). Masks are bool (H, W), row 0 at the top. Edges live *between* pixels: an edge element
("edgel") is a unit segment of the pixel grid separating a set pixel from an unset one. Edgels
on the image border are not edges (a feature cut by the clip border has no edge there).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree
from skimage.metrics import structural_similarity

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


def _pair(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, target = as_unit_float(pred, "pred"), as_unit_float(target, "target")
    if pred.shape != target.shape:
        raise MetricError(f"pred {pred.shape} and target {target.shape} differ in shape")
    return pred, target


def _masks(pred_mask: np.ndarray, true_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred_mask, true_mask = np.asarray(pred_mask), np.asarray(true_mask)
    if pred_mask.shape != true_mask.shape or pred_mask.ndim != 2:
        raise MetricError(f"masks must be 2-D and equal in shape: {pred_mask.shape} vs {true_mask.shape}")
    return pred_mask.astype(bool), true_mask.astype(bool)


def _check_pixel_size(nm_per_px: float) -> float:
    try:
        value = float(nm_per_px)
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise MetricError(f"nm_per_px must be a positive number, got {nm_per_px!r}")
    return value


def l1(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean absolute error between two images in [0, 1]."""
    pred, target = _pair(pred, target)
    return float(np.mean(np.abs(pred - target)))


def psnr(pred: np.ndarray, target: np.ndarray, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB (inf for identical images), as scikit-image computes it."""
    pred, target = _pair(pred, target)
    mse = float(np.mean((pred - target) ** 2))
    return math.inf if mse == 0.0 else float(10.0 * np.log10(data_range**2 / mse))


def ssim(pred: np.ndarray, target: np.ndarray, data_range: float = 1.0) -> float:
    """Mean SSIM with scikit-image's defaults (7×7 uniform window, K1 0.01, K2 0.03)."""
    pred, target = _pair(pred, target)
    if min(pred.shape) < 7:
        raise MetricError(f"SSIM needs images of at least 7×7 pixels, got {pred.shape}")
    return float(structural_similarity(pred, target, data_range=data_range))


def iou(pred_mask: np.ndarray, true_mask: np.ndarray) -> float:
    """Intersection over union of two bool masks; 1.0 when both are empty."""
    pred_mask, true_mask = _masks(pred_mask, true_mask)
    union = np.count_nonzero(pred_mask | true_mask)
    return 1.0 if union == 0 else np.count_nonzero(pred_mask & true_mask) / union


# --- edge placement error -------------------------------------------------------------------


@dataclass(frozen=True)
class EpeResult:
    """Edge placement error in nm, pooled over both directions (pred→true and true→pred).

    ``missing_edges`` is True when exactly one mask has edges: every distance is then inf.
    """

    mean_nm: float
    p95_nm: float
    max_nm: float
    pred_to_true_mean_nm: float
    true_to_pred_mean_nm: float
    n_edges: int  # edgels pooled: pred edgels + true edgels
    n_pred_edges: int = 0
    n_true_edges: int = 0
    missing_edges: bool = False


def edgels(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Midpoints (x = column coordinate, y = row coordinate) and orientation (0 vertical, 1 horizontal) of a mask's edgels."""
    mask = np.asarray(mask, dtype=bool)
    rows, cols = np.nonzero(mask[:, 1:] != mask[:, :-1])  # vertical edgel at x = cols + 1
    vertical = np.column_stack([cols + 1.0, rows + 0.5])
    rows, cols = np.nonzero(mask[1:, :] != mask[:-1, :])  # horizontal edgel at y = rows + 1
    horizontal = np.column_stack([cols + 0.5, rows + 1.0])
    points = np.concatenate([vertical, horizontal]).reshape(-1, 2)
    kinds = np.concatenate([np.zeros(len(vertical), np.int8), np.ones(len(horizontal), np.int8)])
    return points, kinds


def _segment_distance(points: np.ndarray, mids: np.ndarray, kinds: np.ndarray) -> np.ndarray:
    # Distance from each point to unit axis-aligned segments centred at mids; (..., 2) broadcasts.
    dx = np.abs(points[..., 0] - mids[..., 0])
    dy = np.abs(points[..., 1] - mids[..., 1])
    dx = np.where(kinds == 1, np.maximum(dx - 0.5, 0.0), dx)
    dy = np.where(kinds == 0, np.maximum(dy - 0.5, 0.0), dy)
    return np.hypot(dx, dy)


def distance_to_edges(points: np.ndarray, mids: np.ndarray, kinds: np.ndarray) -> np.ndarray:
    """Exact distance (px) from each point to the union of edgel segments ``(mids, kinds)``."""
    tree = cKDTree(mids)
    result = np.empty(len(points))
    todo = np.arange(len(points))
    k = min(8, len(mids))
    while len(todo):
        mid_dist, idx = tree.query(points[todo], k=k)
        mid_dist, idx = mid_dist.reshape(len(todo), k), idx.reshape(len(todo), k)
        seg = _segment_distance(points[todo][:, None, :], mids[idx], kinds[idx]).min(axis=1)
        # Any segment beyond the k-th midpoint is at least (k-th distance − ½) away.
        done = (seg <= mid_dist[:, -1] - 0.5) | (k == len(mids))
        result[todo[done]] = seg[done]
        todo = todo[~done]
        k = min(2 * k, len(mids))
    return result


def edge_placement_error(pred_mask: np.ndarray, true_mask: np.ndarray, nm_per_px: float) -> EpeResult:
    """Distance from every predicted edgel midpoint to the true edge (and the reverse), in nm."""
    pred_mask, true_mask = _masks(pred_mask, true_mask)
    scale = _check_pixel_size(nm_per_px)
    pred_pts, pred_kinds = edgels(pred_mask)
    true_pts, true_kinds = edgels(true_mask)
    n_pred, n_true = len(pred_pts), len(true_pts)
    if n_pred == 0 and n_true == 0:
        return EpeResult(0.0, 0.0, 0.0, 0.0, 0.0, 0, 0, 0)
    if n_pred == 0 or n_true == 0:
        inf = math.inf
        return EpeResult(inf, inf, inf, inf, inf, n_pred + n_true, n_pred, n_true, True)
    forward = distance_to_edges(pred_pts, true_pts, true_kinds) * scale
    backward = distance_to_edges(true_pts, pred_pts, pred_kinds) * scale
    pooled = np.concatenate([forward, backward])
    return EpeResult(
        mean_nm=float(pooled.mean()),
        p95_nm=float(np.percentile(pooled, 95)),
        max_nm=float(pooled.max()),
        pred_to_true_mean_nm=float(forward.mean()),
        true_to_pred_mean_nm=float(backward.mean()),
        n_edges=n_pred + n_true,
        n_pred_edges=n_pred,
        n_true_edges=n_true,
    )


# --- CD error along automatically placed cuts --------------------------------------------------


@dataclass(frozen=True)
class CdCut:
    """One cut across a line of the true mask: where it is and the widths measured along it."""

    line_direction: str  # "vertical" (cut along a row) or "horizontal" (cut along a column)
    cut_px: int  # the row (vertical lines) or column (horizontal lines) of the cut
    true_start_px: int  # first pixel of the true line along the cut
    true_stop_px: int  # one past the last pixel
    true_width_nm: float
    pred_width_nm: float
    error_nm: float  # pred − true


@dataclass(frozen=True)
class CdResult:
    """CD error statistics over all cuts (NaN when the true mask has no line features)."""

    mean_error_nm: float
    mean_abs_error_nm: float
    p95_abs_error_nm: float
    n_cuts: int
    cuts: tuple[CdCut, ...]


def _runs(line: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    edges = np.diff(np.concatenate([[0], line.astype(np.int8), [0]]))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def _line_stretches(mask: np.ndarray, min_aspect: float) -> list[tuple[int, int, int, int]]:
    # Vertical line segments of constant width: the same run [c0, c1) in consecutive rows,
    # not touching the left/right border (a clipped width is unknown), length ≥ min_aspect·width.
    height, width = mask.shape
    active: dict[tuple[int, int], int] = {}
    found = []
    for row in range(height + 1):
        current = set()
        if row < height:
            starts, stops = _runs(mask[row])
            current = {(int(a), int(b)) for a, b in zip(starts, stops, strict=True) if a > 0 and b < width}
        for run in [run for run in active if run not in current]:
            top = active.pop(run)
            if row - top >= min_aspect * (run[1] - run[0]):
                found.append((run[0], run[1], top, row))
        for run in current - active.keys():
            active[run] = row
    return found


def _cuts_one_direction(pred, true, scale, direction, min_aspect, cuts_per_line) -> list[CdCut]:
    cuts = []
    for c0, c1, top, bottom in _line_stretches(true, min_aspect):
        margin = c1 - c0  # stay one line width away from line ends and junctions
        rows = np.unique(np.round(np.linspace(top + margin, bottom - margin - 1, cuts_per_line)))
        for row in rows.astype(int):
            starts, stops = _runs(pred[row])
            overlap = np.minimum(stops, c1) - np.maximum(starts, c0)
            pred_width = int(stops[overlap.argmax()] - starts[overlap.argmax()]) if overlap.size and overlap.max() > 0 else 0
            true_nm, pred_nm = (c1 - c0) * scale, pred_width * scale
            cuts.append(CdCut(direction, int(row), c0, c1, true_nm, pred_nm, pred_nm - true_nm))
    return cuts


def cd_error(
    pred_mask: np.ndarray,
    true_mask: np.ndarray,
    nm_per_px: float,
    min_aspect: float = 3.0,
    cuts_per_line: int = 3,
) -> CdResult:
    """CD error (pred − true, nm) along cuts placed across the true mask's line features.

    A line feature is a straight stretch of constant width at least ``min_aspect`` times longer
    than wide; ``cuts_per_line`` cuts are spread along it, one width away from its ends. The
    predicted width is the predicted run along the cut that overlaps the true line most (0 if none).
    """
    pred_mask, true_mask = _masks(pred_mask, true_mask)
    scale = _check_pixel_size(nm_per_px)
    if cuts_per_line < 1 or min_aspect <= 0:
        raise MetricError(f"cuts_per_line must be ≥ 1 and min_aspect > 0, got {cuts_per_line}, {min_aspect}")
    cuts = _cuts_one_direction(pred_mask, true_mask, scale, "vertical", min_aspect, cuts_per_line)
    cuts += _cuts_one_direction(pred_mask.T, true_mask.T, scale, "horizontal", min_aspect, cuts_per_line)
    if not cuts:
        return CdResult(math.nan, math.nan, math.nan, 0, ())
    errors = np.array([cut.error_nm for cut in cuts])
    return CdResult(
        mean_error_nm=float(errors.mean()),
        mean_abs_error_nm=float(np.abs(errors).mean()),
        p95_abs_error_nm=float(np.percentile(np.abs(errors), 95)),
        n_cuts=len(cuts),
        cuts=tuple(cuts),
    )


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
