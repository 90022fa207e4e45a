"""Layout → printed contour → realistic CD-SEM image, with named tool profiles.

``simulate`` is the entry point: it samples a tool profile, prints the layout
(``printing``) and images the printed pattern (``imaging``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from semgan.errors import SemganError
from semgan.semsim.imaging import render_sem
from semgan.semsim.printing import print_layout, print_level
from semgan.semsim.profiles import (
    KNOBS,
    PROFILES,
    TRAINING_PROFILES,
    ProfileError,
    ToolProfile,
    get_profile,
    load_profile,
    save_profile,
)

__all__ = [
    "KNOBS",
    "PROFILES",
    "TRAINING_PROFILES",
    "ProfileError",
    "SemSample",
    "SimulationError",
    "ToolProfile",
    "get_profile",
    "load_profile",
    "print_layout",
    "save_profile",
    "simulate",
]


class SimulationError(SemganError):
    """The layout or pixel size given to the simulator cannot be imaged."""


@dataclass(frozen=True)
class SemSample:
    """One simulated acquisition: the SEM image, what printed, and the tool values used."""

    sem_image: np.ndarray  # (H, W) uint8
    printed_mask: np.ndarray  # (H, W) bool — contour after blur, threshold and LER
    params: dict[str, float]  # sampled profile values (JSON-serialisable floats)


def simulate(
    layout_mask: np.ndarray, nm_per_px: float, profile: ToolProfile, seed: int | np.random.Generator
) -> SemSample:
    """Print ``layout_mask`` and image it with one random draw of ``profile``."""
    layout_mask = np.asarray(layout_mask)
    if layout_mask.ndim != 2 or min(layout_mask.shape) < 2:
        raise SimulationError(f"layout_mask must be a 2-D (H, W) mask, got shape {layout_mask.shape}")
    if not nm_per_px > 0:
        raise SimulationError(f"nm_per_px must be positive, got {nm_per_px}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    params = profile.sample(rng)
    level = print_level(layout_mask.astype(bool), nm_per_px, params, rng)
    sem_image = render_sem(level, nm_per_px, params, rng)
    return SemSample(sem_image=sem_image, printed_mask=level > 0, params=params)
