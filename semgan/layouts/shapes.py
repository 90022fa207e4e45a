"""The data types shared by every layout source: polygons, design rules and clips."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

# (N, 2) float64 vertices in nm; x right, y up; not closed (no repeated first vertex).
Polygon = np.ndarray


@dataclass(frozen=True)
class DesignRules:
    """The rules a clip was drawn with, all in nm."""

    min_width_nm: float
    min_space_nm: float
    pitch_nm: float | None = None

    def to_dict(self) -> dict:
        """JSON-serialisable form."""
        return asdict(self)


@dataclass(frozen=True)
class LayoutClip:
    """A rasterised layout clip with its pixel size, rules (if known) and provenance."""

    mask: np.ndarray  # (H, W) bool, row 0 = top (largest y)
    nm_per_px: float
    rules: DesignRules | None  # None for imported real layouts (rules unknown)
    source: dict  # JSON-serialisable provenance (kind, pattern/file, seed, window_nm, ...)
