"""Pattern metrics on masks: edge placement error (EPE) and CD error along automatic cuts.

Masks are bool (H, W), row 0 at the top. Edges live *between* pixels: an edge element
("edgel") is a unit segment of the pixel grid separating a set pixel from an unset one. Edgels
on the image border are not edges (a feature cut by the clip border has no edge there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from semgan.metric_inputs import MetricError, check_pixel_size, mask_pair

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
    pred_mask, true_mask = mask_pair(pred_mask, true_mask)
    scale = check_pixel_size(nm_per_px)
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
    pred_mask, true_mask = mask_pair(pred_mask, true_mask)
    scale = check_pixel_size(nm_per_px)
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
