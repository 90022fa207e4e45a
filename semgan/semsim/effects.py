"""The randomized imaging chain: the profiles' print + image chain plus the effects they lack.

The new effects are small pure functions on float32 / uint8 arrays: an astigmatic (elliptical,
rotated) beam spot, a wide blur for halos around large features, a linear background gradient
across the field, a detector response with gamma and saturation, and resampling between pixel
sizes. ``image_with_params`` runs the chain for one drawn parameter set (see ``randomize``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from semgan.semsim.imaging import render_sem, signed_distance_px
from semgan.semsim.printing import print_level

# Below this sigma (px) a sampled Gaussian is a delta: the beam is not resolved by the grid.
MIN_BEAM_PX = 0.05
# Wide blurs run on a grid this many filter sigmas per cell coarser, so cost does not grow with width.
WIDE_BLUR_CELLS_PER_SIGMA = 4.0


def astigmatic_kernel(sigma_major_px: float, sigma_minor_px: float, angle_deg: float) -> np.ndarray:
    """Normalised 2-D elliptical Gaussian; its major axis at ``angle_deg`` from +x towards the top."""
    minor = max(sigma_minor_px, MIN_BEAM_PX)
    radius = max(1, math.ceil(4.0 * max(sigma_major_px, minor)))
    axis = np.arange(-radius, radius + 1, dtype=np.float64)
    x, y_up = axis[None, :], -axis[:, None]  # rows run downwards, so "up" is minus the row
    theta = math.radians(angle_deg)
    along = x * math.cos(theta) + y_up * math.sin(theta)
    across = -x * math.sin(theta) + y_up * math.cos(theta)
    kernel = np.exp(-0.5 * ((along / sigma_major_px) ** 2 + (across / minor) ** 2))
    return (kernel / kernel.sum()).astype(np.float32)


def astigmatic_blur(
    image: np.ndarray, sigma_major_px: float, sigma_minor_px: float, angle_deg: float
) -> np.ndarray:
    """Blur by the beam spot: round (exactly as the named profiles' chain) or elliptical."""
    if sigma_major_px <= MIN_BEAM_PX:
        return image
    if sigma_minor_px == sigma_major_px:
        # A round spot takes the same call as imaging.render_sem, so outputs match bit for bit.
        return cv2.GaussianBlur(image, (0, 0), sigma_major_px, borderType=cv2.BORDER_REFLECT)
    kernel = astigmatic_kernel(sigma_major_px, sigma_minor_px, angle_deg)
    # filter2D correlates; a Gaussian is point-symmetric, so that is the convolution.
    return cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REFLECT)


def wide_blur(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian blur of any width, on a coarse grid when wide (halos reach hundreds of nm)."""
    image = np.ascontiguousarray(image, dtype=np.float32)
    if sigma_px <= 2.0 * WIDE_BLUR_CELLS_PER_SIGMA:
        return cv2.GaussianBlur(image, (0, 0), max(sigma_px, MIN_BEAM_PX), borderType=cv2.BORDER_REFLECT)
    height, width = image.shape
    step = sigma_px / WIDE_BLUR_CELLS_PER_SIGMA
    small_w, small_h = max(1, round(width / step)), max(1, round(height / step))
    small = cv2.resize(image, (small_w, small_h), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigmaX=sigma_px * small_w / width,
                             sigmaY=sigma_px * small_h / height, borderType=cv2.BORDER_REFLECT)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def field_gradient(shape: tuple[int, int], angle_deg: float) -> np.ndarray:
    """Linear ramp from -0.5 to +0.5 across the field along ``angle_deg`` (from +x towards the top)."""
    height, width = shape
    x = (np.arange(width, dtype=np.float32) + 0.5) / width - 0.5
    y_up = 0.5 - (np.arange(height, dtype=np.float32) + 0.5) / height
    theta = math.radians(angle_deg)
    return (np.float32(math.cos(theta)) * x[None, :]
            + np.float32(math.sin(theta)) * y_up[:, None]).astype(np.float32)


def detector_response(image: np.ndarray, gamma: float, saturation_grey: float) -> np.ndarray:
    """8-bit grey through the detector's power-law response, clipped where it saturates."""
    levels = np.arange(256, dtype=np.float64) / 255.0
    table = np.clip(np.rint(255.0 * levels**gamma), 0, math.floor(saturation_grey))
    return table.astype(np.uint8)[np.asarray(image, dtype=np.uint8)]


def resample(image: np.ndarray, height: int, width: int, *, coverage: bool = False) -> np.ndarray:
    """Resize to (height, width): area averaging when shrinking, bilinear when enlarging.

    ``coverage=True`` always averages areas (also when enlarging), so a 0/1 mask becomes the
    exact fraction of each new pixel that it covers; sub-pixel edges survive the resampling.
    """
    if image.shape == (height, width):
        return image
    shrinking = height * width < image.shape[0] * image.shape[1]
    interpolation = cv2.INTER_AREA if coverage or shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


@dataclass(frozen=True)
class RandomizedSample:
    """One randomized acquisition, everything at the model's pixel size."""

    sem_image: np.ndarray  # (H, W) uint8
    layout_mask: np.ndarray  # (H, W) bool — the design, as given
    printed_mask: np.ndarray  # (H, W) bool — the printed contour
    params: dict[str, float]  # the drawn values (JSON-serialisable floats)


def _beam(level: np.ndarray, nm_per_px: float, params: dict[str, float]) -> Callable[[np.ndarray], np.ndarray]:
    """SE yield → what the beam sees: add halo and gradient yield, then the (astigmatic) spot."""
    coverage = np.clip(signed_distance_px(level) + 0.5, 0.0, 1.0)  # feature area per pixel
    # Halo: SE excited by electrons scattered out of (or charge held by) nearby feature
    # material, so it scales with how much feature lies within its reach: large pads glow.
    extra = np.float32(params["halo_gain"]) * wide_blur(coverage, params["halo_width_nm"] / nm_per_px)
    extra += np.float32(params["background_gradient"]) * field_gradient(
        level.shape, params["background_gradient_angle_deg"])
    major_px = params["beam_sigma_nm"] / nm_per_px
    minor_px = major_px * params["beam_aspect"]

    def beam(signal: np.ndarray) -> np.ndarray:
        return astigmatic_blur(signal + extra, major_px, minor_px, params["beam_angle_deg"])

    return beam


def image_with_params(
    layout_mask: np.ndarray, nm_per_px_model: float, params: dict[str, float], rng: np.random.Generator
) -> RandomizedSample:
    """Print and image ``layout_mask`` (at the model's nm/px) with one drawn parameter set.

    The field is imaged at the drawn ``acquisition_nm_per_px`` and resampled to the model's
    pixel size; the design is printed from its exact area coverage, so edges stay registered.
    """
    layout = np.asarray(layout_mask, dtype=bool)
    height, width = layout.shape
    scale = nm_per_px_model / params["acquisition_nm_per_px"]
    grid_h, grid_w = max(2, round(height * scale)), max(2, round(width * scale))
    nm_per_px = nm_per_px_model * height / grid_h  # the exact pixel size of that grid
    coverage = resample(layout.astype(np.float32), grid_h, grid_w, coverage=True)
    level = print_level(coverage, nm_per_px, params, rng)
    grey = render_sem(level, nm_per_px, params, rng, beam=_beam(level, nm_per_px, params))
    grey = detector_response(grey, params["gamma"], params["saturation_grey"])
    return RandomizedSample(
        sem_image=resample(grey, height, width),
        layout_mask=layout.copy(),
        printed_mask=resample(level, height, width) > 0,
        params=dict(params),
    )
