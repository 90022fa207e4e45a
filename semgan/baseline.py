"""The classical baseline: SEM image → layout mask by denoising, Otsu thresholds and morphology.

An engineer's careful first try, not a straw man. SEM features glow at their edges and have grey
interiors, so a single threshold either returns outlines or, placed low enough to catch the
interiors, swells every feature by the beam-blurred glow outside its edge. Here a three-class Otsu
splits substrate | interior | edge rim; the rim (outer side of the glow peak ≈ the edge) is sealed
by a morphological closing, and each region it encloses — or cuts off against the image border —
is kept as a feature interior when its mean grey level is above the substrate/interior threshold.
Genuine holes (substrate inside a ring) stay open because their mean is substrate-level.
Assumes features brighter than the substrate, as on the tools the project simulates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage
from skimage.filters import threshold_multiotsu

from semgan.errors import SemganError
from semgan.metric_inputs import as_unit_float


class BaselineError(SemganError):
    """An image the baseline cannot segment (wrong shape, pixel size, or a flat image)."""


@dataclass(frozen=True)
class BaselineConfig:
    """Sizes in nm, converted to pixels with the image's nm/px so the baseline is scale-aware."""

    denoise_sigma_nm: float = 4.0  # Gaussian after a 3×3 median (shot noise is spiky)
    rim_close_nm: float = 4.0  # bridges pixel gaps in the bright edge rim
    seal_nm: float = 12.0  # wider closing used only to decide what the rim encloses
    min_area_nm2: float = 400.0  # specks and pinholes below this are noise


def _disk(radius_px: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius_px + 1, 2 * radius_px + 1))


def _close(mask: np.ndarray, radius_px: int) -> np.ndarray:
    if radius_px < 1:
        return mask
    # OpenCV's default border value leaves features that touch the image border intact.
    return cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, _disk(radius_px)).astype(bool)


def _drop_small(mask: np.ndarray, min_area_px: float) -> np.ndarray:
    labels, count = ndimage.label(mask)
    if count == 0:
        return mask
    keep = np.bincount(labels.ravel()) >= min_area_px
    keep[0] = False
    return keep[labels]


def otsu_baseline(
    sem_image: np.ndarray, nm_per_px: float, config: BaselineConfig = BaselineConfig()
) -> np.ndarray:
    """Segment an SEM image into a bool layout mask (H, W) with classical image processing."""
    image = as_unit_float(sem_image, "sem_image")
    if not (math.isfinite(nm_per_px) and nm_per_px > 0):
        raise BaselineError(f"nm_per_px must be a positive number, got {nm_per_px!r}")
    if min(image.shape) < 8:
        raise BaselineError(f"sem_image is {image.shape}; the baseline needs at least 8×8 pixels")
    px = lambda nm: round(nm / nm_per_px)  # noqa: E731
    smooth = ndimage.gaussian_filter(ndimage.median_filter(image, size=3), config.denoise_sigma_nm / nm_per_px)
    if np.ptp(smooth) < 1e-6:
        return np.zeros(image.shape, bool)
    substrate_cut, rim_cut = threshold_multiotsu(smooth, classes=3)
    rim = smooth > rim_cut
    rim_closed = _close(rim, px(config.rim_close_nm))
    sealed = _close(rim, max(px(config.seal_nm), 1))
    regions, count = ndimage.label(~sealed)
    means = ndimage.mean(smooth, regions, np.arange(1, count + 1))
    interior = np.concatenate([[False], np.asarray(means) > substrate_cut])[regions]
    # The sealing closing also ate into the interiors next to the rim: grow them back, but only
    # through pixels bright enough to be interior (never across a substrate space it bridged).
    grow_into = interior | (sealed & ~rim_closed & (smooth > substrate_cut))
    mask = rim_closed | ndimage.binary_propagation(interior, mask=grow_into)
    min_area_px = config.min_area_nm2 / nm_per_px**2
    return ~_drop_small(~_drop_small(mask, min_area_px), min_area_px)
