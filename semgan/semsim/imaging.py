"""CD-SEM imaging: printed contour → 8-bit grey SEM image.

The chain follows the physics in the order a real tool applies it:
secondary-electron yield (material contrast + edge bloom + slow background) → Gaussian beam
spot → scan-line jitter → charging along the scan (tail after features, per-line streaks,
slow row drift) → Poisson shot noise at the dose → detector smear along the scan → gain,
offset, 8-bit quantisation with clipping.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np

from semgan.semsim.printing import gradient_magnitude, smooth_noise, smooth_noise_1d

# The edge bloom spills outward over this fraction of its inward decay length.
OUTWARD_BLOOM_RATIO = 0.3
# Above this expected count per pixel, shot noise is drawn as a Gaussian with Poisson variance:
# indistinguishable in an image and several times faster than numpy's Poisson sampler.
EXACT_POISSON_BELOW = 10.0


def signed_distance_px(level: np.ndarray) -> np.ndarray:
    """Signed distance to the printed edge in px (> 0 inside), sub-pixel next to the edge."""
    mask = level > 0
    if mask.all() or not mask.any():
        return np.full(level.shape, 1e4 if mask.all() else -1e4, np.float32)
    inside = cv2.distanceTransform(mask.view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_5)
    outside = cv2.distanceTransform((~mask).view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_5)
    distance = np.where(mask, inside - 0.5, 0.5 - outside).astype(np.float32)
    # Next to the edge, linearise the level set for the sub-pixel position the mask has lost.
    slope = gradient_magnitude(level)
    near = (np.abs(distance) <= 1.0) & (slope > 1e-6)
    distance[near] = np.clip(level[near] / slope[near], -1.5, 1.5)
    return distance


def edge_bloom(distance_px: np.ndarray, decay_px: float) -> np.ndarray:
    """Pixel-averaged edge profile: exp(-d/decay) inside, exp(d/(0.3·decay)) outside; peak 1."""
    outer_px = OUTWARD_BLOOM_RATIO * decay_px
    near_side = np.minimum(distance_px + 0.5, 0.0)
    far_side = np.minimum(distance_px - 0.5, 0.0)
    # Integrate the profile over each pixel's footprint [d - 0.5, d + 0.5] so the rim keeps
    # the same area (and look) at any pixel size, even when it is narrower than a pixel.
    outward = outer_px * (np.exp(near_side / outer_px) - np.exp(far_side / outer_px))
    inward = decay_px * (np.exp(-np.maximum(distance_px - 0.5, 0.0) / decay_px)
                         - np.exp(-np.maximum(distance_px + 0.5, 0.0) / decay_px))
    return (inward + outward).astype(np.float32)


def secondary_yield(level: np.ndarray, nm_per_px: float, params: dict[str, float]) -> np.ndarray:
    """Noise-free SE yield before the beam: material contrast plus edge bloom, (H, W) float32."""
    distance = signed_distance_px(level)
    coverage = np.clip(distance + 0.5, 0.0, 1.0)  # area fraction of the pixel that is feature
    substrate, feature = params["substrate_level"], params["feature_level"]
    bloom = edge_bloom(distance, params["edge_bloom_decay_nm"] / nm_per_px)
    return np.float32(substrate) + np.float32(feature - substrate) * coverage + np.float32(
        params["edge_bloom_gain"]) * bloom


def scan_ewm(image: np.ndarray, decay_px: float) -> np.ndarray:
    """Causal exponential average along each row (left to right), mean preserving."""
    decay = math.exp(-1.0 / decay_px)
    # cv2.transpose is a cache-friendly copy, several times faster than numpy's for this.
    columns = cv2.transpose(np.ascontiguousarray(image, dtype=np.float32))  # (W, H): a row per step
    columns *= np.float32(1.0 - decay)
    out = np.empty_like(columns)
    state = columns[0] / np.float32(1.0 - decay)  # steady state: the line was dwelling there
    for step in range(columns.shape[0]):  # loop over W steps, vectorised over all H scan lines
        state *= np.float32(decay)
        state += columns[step]
        out[step] = state
    return cv2.transpose(out)


def _jitter_rows(image: np.ndarray, shifts_px: np.ndarray) -> np.ndarray:
    """Shift each row horizontally by a sub-pixel amount (beam position noise)."""
    height, width = image.shape
    map_x = np.arange(width, dtype=np.float32)[None, :] + shifts_px[:, None].astype(np.float32)
    map_y = np.repeat(np.arange(height, dtype=np.float32)[:, None], width, axis=1)
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def shot_noise(signal: np.ndarray, dose: float, rng: np.random.Generator) -> np.ndarray:
    """Detected SE per primary electron: Poisson(dose · signal) / dose."""
    expected = np.maximum(signal, 0.0) * np.float32(dose)
    noisy = expected + np.sqrt(expected) * rng.standard_normal(signal.shape, dtype=np.float32)
    low = expected < EXACT_POISSON_BELOW
    if low.any():
        noisy[low] = rng.poisson(expected[low])
    return np.maximum(noisy, 0.0) / np.float32(dose)


def render_sem(
    level: np.ndarray, nm_per_px: float, params: dict[str, float], rng: np.random.Generator,
    beam: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Image the printed pattern (its level set from ``print_level``) as an (H, W) uint8 SEM image.

    ``beam``, when given, replaces the round Gaussian spot: SE yield (H, W) → what the beam sees
    (the domain randomizer's astigmatic spot and halos); None keeps the profiles' chain as it is.
    """
    height = level.shape[0]
    signal = secondary_yield(level, nm_per_px, params)
    # Draw every random field up front, in a fixed order, so switching one effect off
    # (a knob at 0) leaves the others' randomness unchanged.
    background = smooth_noise(level.shape, params["background_scale_nm"] / nm_per_px, rng)
    jitter = rng.standard_normal(height).astype(np.float32)
    streak_strength = rng.standard_normal(height).astype(np.float32)
    line_offset = rng.standard_normal(height).astype(np.float32)
    drift = smooth_noise_1d(height, height / 4.0, rng)

    signal += np.float32(params["background_amplitude"]) * background
    beam_px = params["beam_sigma_nm"] / nm_per_px
    if beam is not None:
        signal = beam(signal)
    elif beam_px > 0.05:
        signal = cv2.GaussianBlur(signal, (0, 0), beam_px, borderType=cv2.BORDER_REFLECT)
    # Scan-line operations run along the scan direction; flip so they always run left to right.
    backward = params.get("scan_direction", 1.0) < 0
    if backward:
        signal = signal[:, ::-1]
    if params["scan_jitter_px"] > 0:
        signal = _jitter_rows(signal, params["scan_jitter_px"] * jitter)
    if params["charging_amplitude"] != 0:
        # Charge builds while the beam crosses bright (feature/edge) material and bleeds off
        # after it: a tail behind every feature whose strength varies from line to line.
        # The source is contrast against the substrate, so it works for either contrast sign.
        excess = np.abs(signal - np.float32(params["substrate_level"]))
        tail = scan_ewm(excess, params["charging_decay_px"])
        line_strength = np.maximum(1.0 + 0.5 * streak_strength, 0.0)[:, None]
        signal = signal + np.float32(params["charging_amplitude"]) * tail * line_strength
    signal = signal * (1.0 + np.float32(params["row_drift_amplitude"]) * drift)[:, None]
    signal = signal + (np.float32(params["line_noise_amplitude"]) * line_offset)[:, None]

    detected = shot_noise(signal, params["dose_electrons_per_px"], rng)
    if params["detector_smear_px"] > 0.05:
        detected = scan_ewm(detected, params["detector_smear_px"])
    if backward:
        detected = detected[:, ::-1]
    grey = np.float32(params["offset"]) + np.float32(255.0 * params["gain"]) * detected
    return np.clip(np.rint(grey), 0, 255).astype(np.uint8)
