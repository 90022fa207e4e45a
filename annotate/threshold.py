"""The Correct tab's "threshold in box" tool: the SEM inside a dragged box split into two levels.

A plain Otsu threshold of raw SEM pixels fails on the images that need correcting most: at a low
dose every pixel is noisy (speckle on both sides of each edge), and charging or a background
gradient moves the substrate level across the box more than the material contrast. So:

1. the noise is measured (median absolute difference of neighbouring pixels) and the box is
   smoothed with the smallest Gaussian that makes the two Otsu levels stand ``MIN_SEPARATION``
   noise deviations apart;
2. a first split is made with the slow background (a Gaussian ``LEVEL_SCALE`` of the box wide)
   subtracted; the two levels are then followed across the box: each class's mean is taken locally (a
   Gaussian-weighted mean over that class's own pixels, ``LEVEL_SCALE`` of the box) and a pixel
   is bright when it is above the local midpoint. A large pad does not drag the substrate level
   with it, because only substrate pixels make the substrate level. Where one class is nearly
   absent (the local contrast falls under ``MIN_LOCAL_CONTRAST`` of the box's), the cut is set
   half the box's contrast from the class that is there, so empty substrate stays empty.

Which side is pattern is decided as before: the side that agrees better with the current mask
inside the box; ``invert`` takes the other side (the tool's shifted key).
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage.filters import threshold_otsu

SMOOTHING_PX = (0.0, 0.75, 1.0, 1.5, 2.0, 3.0)  # Gaussian sigmas tried, smallest first
MIN_SEPARATION = 6.0  # level difference / smoothed noise deviation wanted before thresholding
LEVEL_SCALE = 0.125  # Gaussian sigma of the local level maps, as a fraction of the box side
MIN_LEVEL_PX = 16.0  # ... but never below this (small boxes: levels are constant)
LEVEL_ROUNDS = 3  # class → local levels → class
MIN_LOCAL_CONTRAST = 0.6  # below this share of the box's contrast, one class is taken as absent


def noise_deviation(image: np.ndarray) -> float:
    """Per-pixel noise standard deviation (robust: median absolute neighbour difference)."""
    if image.shape[1] < 2:
        return 0.0
    steps = np.abs(np.diff(image, axis=1))
    return float(np.median(steps) / (0.6745 * np.sqrt(2.0)))


def smoothed_noise(noise: float, sigma: float) -> float:
    """Noise deviation left after a Gaussian of ``sigma`` px (white noise: 1 / (2σ√π))."""
    return noise if sigma <= 0 else noise * min(1.0, 1.0 / (2.0 * sigma * np.sqrt(np.pi)))


def _smooth(image: np.ndarray) -> np.ndarray:
    """The box smoothed just enough for its two levels to stand out of the noise."""
    noise = noise_deviation(image)
    smooth = image
    for sigma in SMOOTHING_PX:
        smooth = image if sigma == 0 else cv2.GaussianBlur(image, (0, 0), sigma)
        cut = threshold_otsu(smooth)
        low, high = smooth[smooth <= cut], smooth[smooth > cut]
        if low.size and high.size and \
                high.mean() - low.mean() >= MIN_SEPARATION * smoothed_noise(noise, sigma):
            break
    return smooth


def _local_mean(image: np.ndarray, weight: np.ndarray, sigma: float,
                fallback: float) -> tuple[np.ndarray, np.ndarray]:
    """(Gaussian-weighted mean of ``image`` over the pixels where ``weight`` is set, the local
    share of such pixels)."""
    w = weight.astype(np.float32)
    total = cv2.GaussianBlur(image * w, (0, 0), sigma)
    count = cv2.GaussianBlur(w, (0, 0), sigma)
    mean = np.where(count > 1e-3, total / np.maximum(count, 1e-6), fallback)
    return mean.astype(np.float32), count


def _local_cut(smooth: np.ndarray, bright: np.ndarray, sigma: float) -> np.ndarray:
    """The grey level between the two classes, pixel by pixel.

    Where both classes are near, the midpoint of their local means. Where one class is nearly
    absent (an empty stretch of substrate), its local mean would be made of noise pixels and the
    split would follow the noise, so the cut is set from the class that is there, half the
    box's overall contrast towards the other."""
    high, high_share = _local_mean(smooth, bright, sigma, float(smooth[bright].mean()))
    low, low_share = _local_mean(smooth, ~bright, sigma, float(smooth[~bright].mean()))
    contrast = float(smooth[bright].mean() - smooth[~bright].mean())
    midpoint = (high + low) / 2
    anchored = np.where(high_share > low_share, high - contrast / 2, low + contrast / 2)
    weak = (high - low) < MIN_LOCAL_CONTRAST * contrast
    return np.where(weak, anchored, midpoint)


def bright_side(window: np.ndarray) -> np.ndarray:
    """(h, w) bool: the brighter of the box's two grey levels, followed locally across it."""
    image = np.asarray(window, dtype=np.float32)
    if image.size < 4 or float(np.ptp(image)) < 1e-6:
        return np.zeros(image.shape, bool)
    smooth = _smooth(image)
    sigma = max(MIN_LEVEL_PX, LEVEL_SCALE * min(image.shape))
    if sigma >= 2 * max(image.shape):  # levels cannot vary inside a box this small
        return smooth > threshold_otsu(smooth)
    # First split: the box with its slow background taken out, so a gradient does not decide it.
    flat = smooth - cv2.GaussianBlur(smooth, (0, 0), sigma)
    bright = flat > threshold_otsu(flat)
    if bright.all() or not bright.any():
        return bright
    for _ in range(LEVEL_ROUNDS):
        updated = smooth > _local_cut(smooth, bright, sigma)
        if updated.all() or not updated.any():
            break
        bright = updated
    return bright


def threshold_in_box(mask: np.ndarray, sem_image: np.ndarray, corner_a: tuple[int, int],
                     corner_b: tuple[int, int], invert: bool = False) -> np.ndarray:
    """Inside the box (corners inclusive), the layout becomes the SEM split into two levels; the
    side that agrees better with the current mask there is pattern (the other with ``invert``).
    Outside the box the mask is unchanged."""
    (x0, x1), (y0, y1) = sorted((corner_a[0], corner_b[0])), sorted((corner_a[1], corner_b[1]))
    window = np.ascontiguousarray(sem_image[y0:y1 + 1, x0:x1 + 1])
    if window.size < 4:
        return mask.copy()
    bright = bright_side(window)
    current = mask[y0:y1 + 1, x0:x1 + 1]
    local = bright if np.mean(bright == current) >= np.mean(~bright == current) else ~bright
    out = mask.copy()
    out[y0:y1 + 1, x0:x1 + 1] = ~local if invert else local
    return out
