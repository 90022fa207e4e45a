"""Where an SEM image sits on the design (a ``Registration``) and its pixel ↔ design (nm) maps.

Design points are nm with y up; image points are (col, row) with pixel centres on integers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np


@dataclass(frozen=True)
class Registration:
    """Where the image sits on the design: the true centre is ``center_nm + (dx_nm, dy_nm)``.

    ``rotation_deg`` (counter-clockwise) and ``scale`` (image size over design size) map the
    design about that centre onto the image. ``nudge_*`` are the user's manual corrections,
    already included in ``dx_nm``/``dy_nm``.
    """

    center_nm: tuple[float, float]
    nm_per_px: float
    dx_nm: float
    dy_nm: float
    rotation_deg: float
    scale: float
    score: float  # NCC of the best placement, in [-1, 1]
    second_score: float  # best NCC outside the main peak
    confidence: float  # 1 − second/best, in [0, 1]
    ambiguous: bool
    signal: str
    search_nm: float
    alternatives: tuple[tuple[float, float, float], ...] = ()  # (dx, dy, NCC) of rival peaks
    nudge_x_nm: float = 0.0
    nudge_y_nm: float = 0.0

    @property
    def true_center_nm(self) -> tuple[float, float]:
        """The design point at the image centre."""
        return self.center_nm[0] + self.dx_nm, self.center_nm[1] + self.dy_nm

    def nudged(self, dx_nm: float, dy_nm: float) -> Registration:
        """The same registration moved by (dx, dy) nm by hand."""
        return replace(self, dx_nm=self.dx_nm + dx_nm, dy_nm=self.dy_nm + dy_nm,
                       nudge_x_nm=self.nudge_x_nm + dx_nm, nudge_y_nm=self.nudge_y_nm + dy_nm)

    def to_dict(self) -> dict:
        """JSON-serialisable form (also ``registration.json``)."""
        data = asdict(self)
        data["center_nm"] = list(self.center_nm)
        data["true_center_nm"] = list(self.true_center_nm)
        data["alternatives"] = [list(alt) for alt in self.alternatives]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Registration:
        """Inverse of ``to_dict``."""
        fields = {k: v for k, v in data.items() if k != "true_center_nm"}
        fields["center_nm"] = tuple(float(v) for v in data["center_nm"])
        fields["alternatives"] = tuple(tuple(float(v) for v in alt) for alt in data["alternatives"])
        return cls(**fields)


def design_to_pixels(points_nm: np.ndarray, registration: Registration,
                     image_shape: tuple[int, int]) -> np.ndarray:
    """(N, 2) design points (nm) → (N, 2) image (col, row) with pixel centres on integers."""
    height, width = image_shape
    cx, cy = registration.true_center_nm
    theta = np.deg2rad(registration.rotation_deg)
    rot = registration.scale * np.array([[np.cos(theta), -np.sin(theta)],
                                         [np.sin(theta), np.cos(theta)]])
    local = (np.asarray(points_nm, np.float64).reshape(-1, 2) - (cx, cy)) @ rot.T / registration.nm_per_px
    return np.column_stack([width / 2 + local[:, 0] - 0.5, height / 2 - local[:, 1] - 0.5])


def pixels_to_design(pixels: np.ndarray, registration: Registration,
                     image_shape: tuple[int, int]) -> np.ndarray:
    """Inverse of ``design_to_pixels``: (N, 2) image (col, row) → design points (nm)."""
    height, width = image_shape
    pixels = np.asarray(pixels, np.float64).reshape(-1, 2)
    local = np.column_stack([pixels[:, 0] + 0.5 - width / 2, height / 2 - pixels[:, 1] - 0.5])
    theta = np.deg2rad(registration.rotation_deg)
    rot = registration.scale * np.array([[np.cos(theta), -np.sin(theta)],
                                         [np.sin(theta), np.cos(theta)]])
    return local * registration.nm_per_px @ np.linalg.inv(rot).T + registration.true_center_nm
