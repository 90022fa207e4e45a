"""The Correct tab's "copy to matches" tool: one corrected feature repeated wherever the SEM shows it.

Contact and via arrays repeat one small feature tens of times, and a prediction (or a threshold)
gets each of them slightly wrong in its own way: round, too small, with a speck beside it. The
engineer fixes one, draws a box around it (with some substrate around), and the tool puts that
box's layout on every place of the image where the SEM looks like it:

1. *Where*: the SEM, smoothed just enough for the example's two levels to stand out of the noise
   (as ``annotate.threshold`` does), is correlated with the example's layout pattern (normalised
   cross-correlation of the SEM window with the box's mask). A place is a match when it is a local
   maximum with correlation ≥ ``MIN_CORRELATION`` and its pattern-minus-surround grey difference
   is at least ``MIN_CONTRAST`` of the example's, with the example's sign (noise can correlate
   with a shape, but not with its contrast).
2. *Not on other features*: features of the mask that reach out of a match's box (a line
   passing by) are kept as they are, and a match whose pattern would fall on one is skipped;
   whatever lies wholly inside the box (a speck, a round print of the contact) is replaced.
3. *Aligned*: arrays are drawn on a grid, so matches that share a row (or a column) within a
   quarter of the box take that row's mean position; the noise moves single matches by a pixel.
4. *Stamped*: inside each match's box the mask becomes the example's (clipped at the border).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from skimage.feature import match_template, peak_local_max

from annotate.threshold import MIN_SEPARATION, SMOOTHING_PX, noise_deviation, smoothed_noise

MIN_CORRELATION = 0.5  # normalised cross-correlation of a match's SEM with the example's layout
MIN_CONTRAST = 0.6  # a match's pattern/surround grey difference, as a share of the example's
MAX_SHARE = 0.25  # the example box may cover at most this share of either image side


class StampError(ValueError):
    """The box cannot serve as an example (why, in words for the status line)."""


@dataclass(frozen=True)
class Stamped:
    """The mask after copying, and where the example was put (top-left corners, x, y)."""

    mask: np.ndarray
    places: tuple[tuple[int, int], ...]


def _example_smoothing(window: np.ndarray, pattern: np.ndarray, noise: float) -> float:
    """The smallest Gaussian sigma at which the example's pattern and surround differ by
    ``MIN_SEPARATION`` smoothed-noise deviations (the largest tried otherwise)."""
    for sigma in SMOOTHING_PX:
        smooth = window if sigma == 0 else cv2.GaussianBlur(window, (0, 0), sigma)
        difference = abs(float(smooth[pattern].mean() - smooth[~pattern].mean()))
        if difference >= MIN_SEPARATION * smoothed_noise(noise, sigma):
            return sigma
    return SMOOTHING_PX[-1]


def _aligned(positions: list[int], size: int) -> list[int]:
    """Positions of an array aligned: those closer than a quarter of the box to a neighbour are
    one row (or column) and take its mean, or the example's (the first) where it is one of them."""
    order = sorted(range(len(positions)), key=lambda i: positions[i])
    groups: list[list[int]] = []
    for i in order:
        if groups and positions[i] - positions[groups[-1][-1]] <= max(1, size // 4):
            groups[-1].append(i)
        else:
            groups.append([i])
    aligned = list(positions)
    for group in groups:
        value = positions[0] if 0 in group else round(float(np.mean([positions[i] for i in group])))
        for i in group:
            aligned[i] = value
    return aligned


def _box(corner_a: tuple[int, int], corner_b: tuple[int, int],
         shape: tuple[int, int]) -> tuple[int, int, int, int]:
    (x0, x1), (y0, y1) = sorted((corner_a[0], corner_b[0])), sorted((corner_a[1], corner_b[1]))
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, shape[1] - 1), min(y1, shape[0] - 1)
    return x0, y0, x1 + 1, y1 + 1


def _example(mask: np.ndarray, corner_a: tuple[int, int], corner_b: tuple[int, int]):
    """The box (x0, y0, x1, y1, exclusive ends) and the layout in it, or StampError."""
    x0, y0, x1, y1 = _box(corner_a, corner_b, mask.shape)
    example = mask[y0:y1, x0:x1].copy()
    height, width = example.shape
    if height < 3 or width < 3:
        raise StampError("Draw the box around a whole feature, with some substrate around it.")
    if height > MAX_SHARE * mask.shape[0] or width > MAX_SHARE * mask.shape[1]:
        raise StampError("The box is too large: copy works on a small repeated feature "
                         "(a contact, a via, a pad) with a little substrate around it.")
    if example.all() or not example.any():
        raise StampError("The box must hold both pattern and substrate: fix one feature, then "
                         "draw the box around it with some substrate.")
    return (x0, y0, x1, y1), example


class _Features:
    """The mask's connected features, to tell what reaches out of a box from what lies in it."""

    def __init__(self, mask: np.ndarray) -> None:
        _, self.labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8),
                                                                    connectivity=4)
        self.x0, self.y0 = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
        self.x1 = self.x0 + stats[:, cv2.CC_STAT_WIDTH]
        self.y1 = self.y0 + stats[:, cv2.CC_STAT_HEIGHT]

    def reaching_out(self, left: int, top: int, width: int, height: int) -> np.ndarray:
        """(height, width) bool, the box clipped to the image marked only where the mask holds
        a feature that extends outside the box (left, top may be negative)."""
        x0, y0 = max(left, 0), max(top, 0)
        x1 = min(left + width, self.labels.shape[1])
        y1 = min(top + height, self.labels.shape[0])
        labels = self.labels[y0:y1, x0:x1]
        ids = np.unique(labels[labels > 0])
        out_of_box = ids[(self.x0[ids] < x0) | (self.y0[ids] < y0) | (self.x1[ids] > x1) |
                         (self.y1[ids] > y1)]
        return np.isin(labels, out_of_box)


def _offset(score: np.ndarray, home: tuple[int, int], size: tuple[int, int]) -> tuple[int, int]:
    """(dx, dy) from where the example was drawn to its own correlation peak, within a quarter
    of the box: a scan smear moves the SEM's feature off the drawn edges, and every match
    carries the same offset."""
    (x, y), (height, width) = home, size
    left, top = max(x - width // 4, 0), max(y - height // 4, 0)
    near = score[top:y + height // 4 + 1, left:x + width // 4 + 1]
    dy, dx = np.unravel_index(int(np.argmax(near)), near.shape)
    return left + int(dx) - x, top + int(dy) - y


def _matches(smooth: np.ndarray, example: np.ndarray, home: tuple[int, int],
             features: _Features) -> list[tuple[int, int]]:
    """Top-left corners (x, y) of the example's matches in the image, the example first."""
    height, width = example.shape
    contrast = float(smooth[home[1]:home[1] + height, home[0]:home[0] + width][example].mean() -
                     smooth[home[1]:home[1] + height, home[0]:home[0] + width][~example].mean())
    if abs(contrast) < 1e-6:
        return [home]
    # Padded by half the box, so that features cut by the image border are matched too.
    pad_y, pad_x = height // 2, width // 2
    padded = np.pad(smooth, ((pad_y, pad_y), (pad_x, pad_x)), mode="reflect")
    score = np.sign(contrast) * match_template(padded, example.astype(np.float32))
    shift_x, shift_y = _offset(score, (home[0] + pad_x, home[1] + pad_y), example.shape)
    peaks = peak_local_max(score, min_distance=max(1, min(height, width) // 2),
                           threshold_abs=MIN_CORRELATION, exclude_border=False)
    found = [home]
    for top, left in sorted(map(tuple, peaks), key=lambda p: -score[p]):
        window = padded[top:top + height, left:left + width]
        if (window[example].mean() - window[~example].mean()) / contrast < MIN_CONTRAST:
            continue
        x = min(max(int(left) - shift_x - pad_x, -pad_x), smooth.shape[1] - width + pad_x)
        y = min(max(int(top) - shift_y - pad_y, -pad_y), smooth.shape[0] - height + pad_y)
        if max(abs(x - home[0]), abs(y - home[1])) <= 1:
            continue
        if (_clipped(example, x, y, smooth.shape) & features.reaching_out(x, y, width, height)).any():
            continue  # the pattern would fall on a feature passing by
        found.append((x, y))
    return found


def _clipped(box: np.ndarray, left: int, top: int, shape: tuple[int, int]) -> np.ndarray:
    """The part of a box placed at (left, top) that lies inside an image of ``shape``."""
    height, width = box.shape
    return box[max(-top, 0):min(height, shape[0] - top), max(-left, 0):min(width, shape[1] - left)]


def copy_to_matches(mask: np.ndarray, sem_image: np.ndarray, corner_a: tuple[int, int],
                    corner_b: tuple[int, int]) -> Stamped:
    """The box's layout (corners inclusive) copied to every place where the SEM matches it."""
    (x0, y0, x1, y1), example = _example(mask, corner_a, corner_b)
    sem = np.asarray(sem_image, np.float32)
    sigma = _example_smoothing(sem[y0:y1, x0:x1], example, noise_deviation(sem))
    smooth = sem if sigma == 0 else cv2.GaussianBlur(sem, (0, 0), sigma)
    features = _Features(mask)
    found = _matches(smooth, example, (x0, y0), features)
    height, width = example.shape
    places = list(zip(_aligned([x for x, _ in found], width), _aligned([y for _, y in found], height),
                      strict=True))
    out = mask.copy()
    for left, top in places:
        keep = features.reaching_out(left, top, width, height)
        target = out[max(top, 0):top + height, max(left, 0):left + width]
        target[...] = _clipped(example, left, top, mask.shape) | keep
    return Stamped(out, tuple(places))
