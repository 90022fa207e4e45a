"""Magic wand: the connected area of the SEM around a click, bounded by the image's own edges.

Three steps, each tied to what an SEM looks like:
1. *Similar grey level*: near the click, the smoothed SEM is split at its local Otsu level
   (features and substrate differ by material); the clicked pixel's side is the candidate.
2. *Not crossing strong edges*: pixels whose gradient exceeds ``tolerance`` times the
   gradient of the image's own noise are cut out before taking the connected area, so a
   region cannot leak through a place where the grey levels happen to match across an edge.
3. *Snapped to the edge*: the boundary is moved to the strongest gradient ridge within a few
   pixels (a marker watershed), i.e. onto the SEM edge rather than the Otsu contour.
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage.filters import threshold_otsu
from skimage.segmentation import watershed

SMOOTH_SIGMA_PX = 1.5  # Gaussian smoothing against shot noise before grey levels and gradients
DEFAULT_TOLERANCE = 6.0  # an edge is a gradient this many times the noise gradient
WINDOW_HALF_PX = 48  # half-size of the first window for the local Otsu level (doubled if flat)
SEED_SEARCH_PX = 6  # a click on an edge starts from the nearest non-edge pixel this close
RING_PX = 5  # edge pixels this close to the area are given back (the bright edge rim)
CORE_ERODE_PX = 2  # the sure interior: the area shrunk by this much …
SNAP_PX = 5  # … and the boundary sought this far around it
MIN_OTHER_PX = 10  # other-side areas smaller than this are noise, not markers
MAX_HOLE_PX = 64  # holes up to this size inside the result are noise and get filled
CROP_HALF_PX = 256  # the wand works in a crop this far around the click, doubled while the
#                     area reaches the crop's side (most features are far smaller than a 4k image)
_RAYLEIGH_P25 = 0.7585  # 25th percentile of a Rayleigh distribution with σ = 1


def gradient(sem_image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(smoothed image, its gradient magnitude), float32."""
    smooth = cv2.GaussianBlur(np.asarray(sem_image, np.float32), (0, 0), SMOOTH_SIGMA_PX)
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    return smooth, np.hypot(gx, gy)


def _grey_per_gradient() -> float:
    """Smoothed-grey noise σ per gradient-component noise σ, for white noise (≈ 2.5)."""
    impulse = np.zeros((33, 33), np.float32)
    impulse[16, 16] = 1.0
    smooth = cv2.GaussianBlur(impulse, (0, 0), SMOOTH_SIGMA_PX)
    derivative = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    return float(np.sqrt((smooth ** 2).sum() / (derivative ** 2).sum()))


GREY_PER_GRADIENT = _grey_per_gradient()


def noise_gradient(magnitude: np.ndarray) -> float:
    """The per-component gradient noise σ, from the quietest quarter of the pixels (where the
    magnitude of pure noise is Rayleigh distributed); edges rarely cover 75 % of an image."""
    return max(float(np.percentile(magnitude, 25)) / _RAYLEIGH_P25, 1e-3)


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1,) * 2)


def _component(mask: np.ndarray, row: int, col: int) -> np.ndarray:
    """The 4-connected part of ``mask`` holding (row, col)."""
    _, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=4)
    return labels == labels[row, col]


def _large(mask: np.ndarray, min_area: int) -> np.ndarray:
    """``mask`` without its connected parts smaller than ``min_area`` px."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8),
                                                               connectivity=4)
    keep = np.zeros(count, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_area
    return keep[labels]


def _seed(allowed: np.ndarray, point_xy: tuple[int, int]) -> tuple[int, int] | None:
    """(row, col) of the allowed pixel at or nearest to the click, within SEED_SEARCH_PX."""
    x, y = point_xy
    if allowed[y, x]:
        return y, x
    top, left = max(0, y - SEED_SEARCH_PX), max(0, x - SEED_SEARCH_PX)
    rows, cols = np.nonzero(allowed[top:y + SEED_SEARCH_PX + 1, left:x + SEED_SEARCH_PX + 1])
    if rows.size == 0:
        return None
    nearest = int(np.argmin((rows + top - y) ** 2 + (cols + left - x) ** 2))
    return int(rows[nearest] + top), int(cols[nearest] + left)


def grey_side(smooth: np.ndarray, row: int, col: int, noise: float) -> np.ndarray:
    """Pixels on the clicked pixel's side of the local Otsu level. The window doubles until
    its two grey classes differ by over 2.5 σ of the smoothed noise (Otsu splits even pure
    noise, into halves 1.6 σ apart: a window inside one big feature)."""
    half = WINDOW_HALF_PX
    while True:
        window = smooth[max(0, row - half):row + half + 1, max(0, col - half):col + half + 1]
        level = threshold_otsu(window)
        low, high = window[window < level], window[window >= level]
        split = float(high.mean() - low.mean()) if low.size and high.size else 0.0
        if split > 2.5 * GREY_PER_GRADIENT * noise or window.size >= smooth.size:
            break
        half *= 2
    bright = smooth >= level
    return bright if bright[row, col] else ~bright


def _snap_to_edges(core: np.ndarray, others: np.ndarray, magnitude: np.ndarray) -> np.ndarray:
    """Grow ``core`` up to the strongest gradient ridge within SNAP_PX (marker watershed
    against ``others`` and everything farther away), in a window around the core."""
    rows, cols = np.nonzero(core)
    margin = SNAP_PX + 2
    window = (slice(max(0, rows.min() - margin), rows.max() + margin + 1),
              slice(max(0, cols.min() - margin), cols.max() + margin + 1))
    inner = core[window]
    far = ~cv2.dilate(inner.astype(np.uint8), _disk(SNAP_PX)).astype(bool)
    markers = np.zeros(inner.shape, np.int32)
    markers[others[window] | far] = 2
    markers[inner] = 1
    grown = np.zeros(core.shape, bool)
    grown[window] = watershed(magnitude[window], markers) == 1
    return _component(grown, int(rows[0]), int(cols[0]))


def wand_region(sem_image: np.ndarray, point_xy: tuple[int, int],
                tolerance: float = DEFAULT_TOLERANCE) -> np.ndarray:
    """The SEM area the wand selects from a click at ``point_xy`` (x, y), as a bool mask."""
    sem_image = np.asarray(sem_image)
    x, y = point_xy
    region = np.zeros(sem_image.shape[:2], bool)
    if not (0 <= y < region.shape[0] and 0 <= x < region.shape[1]) or min(region.shape) < 4:
        return region
    half = CROP_HALF_PX
    while True:
        top, left = max(0, y - half), max(0, x - half)
        bottom, right = min(region.shape[0], y + half + 1), min(region.shape[1], x + half + 1)
        found = _region_in(sem_image[top:bottom, left:right], (x - left, y - top), tolerance)
        cut = ((found[0].any() and top > 0) or (found[-1].any() and bottom < region.shape[0])
               or (found[:, 0].any() and left > 0)
               or (found[:, -1].any() and right < region.shape[1]))
        if not cut:
            region[top:bottom, left:right] = found
            return region
        half *= 2


def _region_in(sem_image: np.ndarray, point_xy: tuple[int, int],
               tolerance: float) -> np.ndarray:
    """The wand's area within one crop of the SEM (``point_xy`` in crop pixels)."""
    empty = np.zeros(sem_image.shape[:2], bool)
    smooth, magnitude = gradient(sem_image)
    noise = noise_gradient(magnitude)
    edges = magnitude >= max(tolerance, 1.0) * noise
    seed = _seed(~edges, point_xy)
    if seed is None:
        return empty
    side = grey_side(smooth, *seed, noise=noise)
    area = _component(side & ~edges, *seed)
    area = _component(side & cv2.dilate(area.astype(np.uint8), _disk(RING_PX)).astype(bool),
                      *seed)
    core = cv2.erode(area.astype(np.uint8), _disk(CORE_ERODE_PX)).astype(bool)
    if not core[seed]:
        core = area  # a thin area: no interior to shrink to
    others = _large(cv2.erode((~side).astype(np.uint8), _disk(CORE_ERODE_PX)).astype(bool),
                    MIN_OTHER_PX)
    region = _snap_to_edges(core, others, magnitude)
    return region | (~region & ~_large(~region, MAX_HOLE_PX + 1))


def apply_wand(mask: np.ndarray, sem_image: np.ndarray, point_xy: tuple[int, int], add: bool,
               tolerance: float = DEFAULT_TOLERANCE) -> np.ndarray:
    """The mask with the wand's area made pattern (``add``) or erased."""
    region = wand_region(sem_image, point_xy, tolerance)
    return mask | region if add else mask & ~region
