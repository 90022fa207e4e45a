"""Lithography: design layout → printed contour (optical blur, threshold, line-edge roughness).

The layout is blurred by a Gaussian (the optical image), roughened by a smooth random edge
displacement, and thresholded. The threshold is chosen so that a straight, isolated edge moves
outward by exactly half the sampled CD bias; the blur rounds corners with a radius of about
its sigma. All lengths arrive in nm and are converted with nm/px.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

# Below this the Gaussian is not resolved by the pixel grid and the level set loses its slope.
MIN_BLUR_PX = 0.5


def _gaussian_kernel(sigma_px: float) -> np.ndarray:
    """Normalised 1-D Gaussian taps out to 4 sigma."""
    radius = max(1, math.ceil(4.0 * sigma_px))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (x / sigma_px) ** 2)
    return (kernel / kernel.sum()).astype(np.float32)


def smooth_noise(shape: tuple[int, int], correlation_px: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-std Gaussian random field whose autocorrelation is exp(-(r / correlation_px)²)."""
    height, width = shape
    sigma = max(correlation_px / math.sqrt(2.0), MIN_BLUR_PX)  # filter sigma of white noise
    # Long correlations are drawn on a coarse grid (filter sigma 2 cells) and upsampled, so the
    # cost does not grow with the correlation length.
    step = max(1.0, sigma / 2.0)
    coarse_sigma = sigma / step
    kernel = _gaussian_kernel(coarse_sigma)
    pad = len(kernel) // 2
    coarse_h = math.ceil(height / step) + 2
    coarse_w = math.ceil(width / step) + 2
    white = rng.standard_normal((coarse_h + 2 * pad, coarse_w + 2 * pad), dtype=np.float32)
    field = cv2.sepFilter2D(white, -1, kernel, kernel, borderType=cv2.BORDER_CONSTANT)
    # White noise filtered by a separable kernel k has std sum(k²) — exact, no sample estimate.
    field = field[pad:pad + coarse_h, pad:pad + coarse_w] / float(np.sum(kernel.astype(np.float64) ** 2))
    if step > 1.0:
        size = (round(coarse_w * step), round(coarse_h * step))  # cv2 wants (width, height)
        field = cv2.resize(field, size, interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(field[:height, :width], dtype=np.float32)


def smooth_noise_1d(length: int, correlation_px: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-std 1-D Gaussian random sequence with autocorrelation exp(-(r / correlation_px)²)."""
    kernel = _gaussian_kernel(max(correlation_px / math.sqrt(2.0), MIN_BLUR_PX)).astype(np.float64)
    white = rng.standard_normal(length + len(kernel) - 1)
    return (np.convolve(white, kernel, mode="valid") / math.sqrt(np.sum(kernel**2))).astype(np.float32)


def gradient_magnitude(field: np.ndarray) -> np.ndarray:
    """|∇field| per pixel (central differences)."""
    grad_x = cv2.Sobel(field, cv2.CV_32F, 1, 0, ksize=3, scale=0.125, borderType=cv2.BORDER_REPLICATE)
    grad_y = cv2.Sobel(field, cv2.CV_32F, 0, 1, ksize=3, scale=0.125, borderType=cv2.BORDER_REPLICATE)
    return cv2.magnitude(grad_x, grad_y)


def print_threshold(cd_bias_nm: float, blur_sigma_nm: float) -> float:
    """Threshold on the blurred layout that moves a straight edge outward by cd_bias_nm / 2."""
    # A blurred straight edge is Φ(-x/σ); it crosses t at x = -σ·Φ⁻¹(t), so t = Φ(-bias/2σ).
    threshold = 0.5 * math.erfc(cd_bias_nm / (2.0 * math.sqrt(2.0) * blur_sigma_nm))
    return min(max(threshold, 0.01), 0.99)


def print_level(
    layout_mask: np.ndarray, nm_per_px: float, params: dict[str, float], rng: np.random.Generator
) -> np.ndarray:
    """Level set of the printed pattern: (H, W) float32, > 0 where the feature printed."""
    layout = np.asarray(layout_mask, dtype=np.float32)  # (H, W) 0/1
    blur_px = max(params["optical_blur_nm"] / nm_per_px, MIN_BLUR_PX)
    field = cv2.GaussianBlur(layout, (0, 0), blur_px, borderType=cv2.BORDER_REFLECT)
    threshold = print_threshold(params["cd_bias_nm"], blur_px * nm_per_px)
    # Always draw the roughness field so the rest of the random stream does not depend on LER.
    displacement_px = smooth_noise(layout.shape, params["ler_correlation_nm"] / nm_per_px, rng)
    displacement_px *= params["ler_sigma_nm"] / nm_per_px
    # f(x + d·n) ≈ f + d·|∇f|: moves every edge outward by d, whatever the local blur slope.
    field += displacement_px * gradient_magnitude(field)
    return field - np.float32(threshold)


def print_layout(
    layout_mask: np.ndarray, nm_per_px: float, params: dict[str, float], rng: np.random.Generator
) -> np.ndarray:
    """The contour that actually printed, as an (H, W) bool mask."""
    return print_level(layout_mask, nm_per_px, params, rng) > 0
