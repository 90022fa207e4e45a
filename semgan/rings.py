"""Pixel-boundary rings of a mask: the exact outline that polygons and the clean-up start from.

Rings are (M, 2) int (row, col) corners of the pixel grid, row 0 at the top, interior on the right.
"""

from __future__ import annotations

import math

import numpy as np

from semgan.errors import SemganError

# Unit steps in (row, col) for the four directions; E, S, W, N is clockwise on screen.
_STEPS = np.array([(0, 1), (1, 0), (0, -1), (-1, 0)])


class PolygonError(SemganError):
    """A mask or polygon set that cannot be converted or written."""


def check_shape(mask: np.ndarray, what: str = "mask") -> np.ndarray:
    """``mask`` as a non-empty 2-D array."""
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.size == 0:
        raise PolygonError(f"{what} must be a non-empty 2-D array (H, W), got shape {mask.shape}")
    return mask


def check_mask(mask: np.ndarray, what: str = "mask") -> np.ndarray:
    """``mask`` as a non-empty 2-D bool array."""
    return check_shape(mask, what).astype(bool)


def check_pixel_size(nm_per_px: float | None) -> float:
    """``nm_per_px`` as a positive finite float, needed to place a mask in nm."""
    if nm_per_px is None or not (math.isfinite(nm_per_px) and nm_per_px > 0):
        raise PolygonError(f"nm_per_px must be a positive number to place a mask in nm, got {nm_per_px!r}")
    return float(nm_per_px)


def trace_rings(mask: np.ndarray) -> list[np.ndarray]:
    """Pixel-boundary rings of a mask as (M, 2) int (row, col) grid corners, interior on the right.

    Outer rings run clockwise on screen (positive shoelace area in (col, row)), holes the other
    way; only the corners where the direction changes are kept. Diagonal neighbours are separate.
    """
    mask = check_mask(mask)
    width = mask.shape[1]
    padded = np.pad(mask, 1)
    inner = padded[1:-1, 1:-1]
    starts, dirs = [], []
    # (unset neighbour, start-corner offset, direction): top edge runs E, right S, bottom W, left N.
    for neighbour, offset, direction in (
        (padded[:-2, 1:-1], (0, 0), 0),
        (padded[1:-1, 2:], (0, 1), 1),
        (padded[2:, 1:-1], (1, 1), 2),
        (padded[1:-1, :-2], (1, 0), 3),
    ):
        rows, cols = np.nonzero(inner & ~neighbour)
        starts.append(np.column_stack([rows + offset[0], cols + offset[1]]))
        dirs.append(np.full(len(rows), direction))
    start = np.concatenate(starts)
    direction = np.concatenate(dirs)
    if not len(start):
        return []
    end = start + _STEPS[direction]
    key = lambda corner: corner[:, 0] * (width + 1) + corner[:, 1]  # noqa: E731
    order = np.argsort(key(start), kind="stable")
    sorted_keys = key(start)[order]
    first = np.searchsorted(sorted_keys, key(end), side="left")
    count = np.searchsorted(sorted_keys, key(end), side="right") - first
    # Where two edges leave a corner (diagonal pixels), take the right turn: it hugs the same pixel.
    nxt = order[first]
    two = count == 2
    alt = order[np.minimum(first + 1, len(order) - 1)]
    take_alt = two & (direction[alt] == (direction + 1) % 4)
    nxt = np.where(take_alt, alt, nxt)
    used = np.zeros(len(start), bool)
    rings = []
    for seed in range(len(start)):
        if used[seed]:
            continue
        cycle = [seed]
        used[seed] = True
        edge = nxt[seed]
        while edge != seed:
            cycle.append(edge)
            used[edge] = True
            edge = nxt[edge]
        cyc = np.array(cycle)
        turns = direction[cyc] != direction[np.roll(cyc, 1)]
        rings.append(start[cyc[turns]])
    return rings


def signed_area(points: np.ndarray) -> float:
    """Shoelace area of an (N, 2) (x, y) polygon: positive when counter-clockwise."""
    x, y = points[:, 0], points[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))
