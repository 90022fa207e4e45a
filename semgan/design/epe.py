"""EPE and CD against the registered design: signed, per edge segment, in nm.

Every design edge is cut into segments of about ``step_nm``; at each segment's midpoint the
predicted layout is sampled along the outward normal of the design edge (sub-pixel, linear
interpolation of P(feature)) and the crossing of 0.5 nearest to the design edge is the
predicted edge. EPE > 0: the predicted feature lies outside the design (grown); EPE < 0:
inside (shrunk); NaN: no predicted edge within ±``reach_nm`` (a missing or extra feature).
Edges shared by touching or overlapping polygons are not edges of the union and are skipped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import gdstk
import numpy as np
from scipy import ndimage

from semgan.design.clip import DesignLayout
from semgan.design.errors import DesignError
from semgan.design.placement import Registration, design_to_pixels, pixels_to_design

DEFAULT_STEP_NM = 4.0  # within the 2–5 nm metrologists sample EPE at
DEFAULT_REACH_NM = 40.0
_PROBE_NM = 0.5  # how far off an edge the inside test looks


@dataclass(frozen=True)
class EdgeSegment:
    """One design edge segment: its ends (nm), outward normal, where it is in the image, its EPE."""

    x1_nm: float
    y1_nm: float
    x2_nm: float
    y2_nm: float
    normal: tuple[float, float]  # outward, in design axes
    col: float  # midpoint in image pixels (pixel centres on integers)
    row: float
    epe_nm: float  # signed; NaN = no predicted edge within reach

    @property
    def midpoint_nm(self) -> tuple[float, float]:
        """The segment's centre in design coordinates."""
        return (self.x1_nm + self.x2_nm) / 2, (self.y1_nm + self.y2_nm) / 2


@dataclass(frozen=True)
class EpeReport:
    """Signed EPE of every design edge segment inside the image, with its summary."""

    segments: tuple[EdgeSegment, ...]
    step_nm: float
    reach_nm: float

    def _values(self) -> np.ndarray:
        return np.array([s.epe_nm for s in self.segments], dtype=np.float64)

    def summary(self) -> dict[str, float | int]:
        """Mean |EPE|, 95th percentile, max, mean signed (bias), counts; NaN where none measured."""
        values = self._values()
        found = values[np.isfinite(values)]
        if not len(found):
            nan = float("nan")
            return {"mean_abs_nm": nan, "p95_abs_nm": nan, "max_abs_nm": nan, "mean_nm": nan,
                    "segments": len(values), "missing": len(values)}
        return {"mean_abs_nm": float(np.mean(np.abs(found))),
                "p95_abs_nm": float(np.percentile(np.abs(found), 95)),
                "max_abs_nm": float(np.max(np.abs(found))), "mean_nm": float(np.mean(found)),
                "segments": len(values), "missing": int(len(values) - len(found))}

    def worst(self, count: int = 10) -> list[EdgeSegment]:
        """The ``count`` segments with the largest |EPE|, missing edges first."""
        values = self._values()
        order = np.argsort(-np.where(np.isfinite(values), np.abs(values), np.inf), kind="stable")
        return [self.segments[i] for i in order[:count]]

    def to_dict(self, worst: int = 20) -> dict:
        """JSON form (``epe.json``): settings, summary, the worst segments and every segment."""
        def row(s: EdgeSegment) -> dict:
            data = asdict(s)
            data["normal"] = list(s.normal)
            data["epe_nm"] = None if not np.isfinite(s.epe_nm) else s.epe_nm
            return data
        return {"step_nm": self.step_nm, "reach_nm": self.reach_nm, "summary": self.summary(),
                "worst": [row(s) for s in self.worst(worst)],
                "segments": [row(s) for s in self.segments]}


def _edge_pieces(polygons: list[np.ndarray], step_nm: float) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2, 2) segment ends and (N, 2) unit normals (one side, not yet outward)."""
    ends, normals = [], []
    for points in polygons:
        points = np.asarray(points, np.float64)
        following = np.roll(points, -1, axis=0)
        for a, b in zip(points, following, strict=True):
            length = float(np.hypot(*(b - a)))
            if length < 1e-9:
                continue
            count = max(1, round(length / step_nm))
            t = np.linspace(0, 1, count + 1)
            stops = a + np.outer(t, b - a)  # (count + 1, 2)
            ends.append(np.stack([stops[:-1], stops[1:]], axis=1))
            direction = (b - a) / length
            normals.append(np.repeat([[direction[1], -direction[0]]], count, axis=0))
    if not ends:
        return np.zeros((0, 2, 2)), np.zeros((0, 2))
    return np.concatenate(ends), np.concatenate(normals)


def _crossings(profile: np.ndarray, offsets_nm: np.ndarray) -> np.ndarray:
    """Per row: the offset (nm) of the 0.5 down-crossing (inside → outside) nearest to 0, or NaN."""
    inside = profile >= 0.5
    falls = inside[:, :-1] & ~inside[:, 1:]  # (N, S - 1)
    a, b = profile[:, :-1], profile[:, 1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.clip((a - 0.5) / (a - b), 0, 1)
    where = offsets_nm[:-1] + frac * (offsets_nm[1] - offsets_nm[0])
    where = np.where(falls, where, np.nan)
    distance = np.where(falls, np.abs(where), np.inf)
    best = np.argmin(distance, axis=1)
    chosen = where[np.arange(len(where)), best]
    return np.where(np.isfinite(distance[np.arange(len(where)), best]), chosen, np.nan)


def edge_placement(layout: DesignLayout, registration: Registration, prediction: np.ndarray,
                   step_nm: float = DEFAULT_STEP_NM, reach_nm: float = DEFAULT_REACH_NM) -> EpeReport:
    """Signed EPE of the prediction (bool mask or P(feature)) at every design edge segment."""
    if not 0 < step_nm <= 50 or not reach_nm > 0:
        raise DesignError(f"EPE step must be in (0, 50] nm and reach positive, got {step_nm}, {reach_nm}")
    field = np.asarray(prediction, np.float64)
    if field.ndim != 2:
        raise DesignError(f"the prediction must be a 2-D (H, W) image, got shape {field.shape}")
    height, width = field.shape
    ends, normals = _edge_pieces(layout.polygons, step_nm)
    mids = ends.mean(axis=1)
    pixels = design_to_pixels(mids, registration, field.shape)
    visible = (pixels[:, 0] >= 0.5) & (pixels[:, 0] <= width - 1.5) & \
              (pixels[:, 1] >= 0.5) & (pixels[:, 1] <= height - 1.5)
    ends, normals, mids, pixels = ends[visible], normals[visible], mids[visible], pixels[visible]
    if not len(mids):
        return EpeReport((), float(step_nm), float(reach_nm))
    polygons = [np.asarray(p, np.float64) for p in layout.polygons]
    plus = np.array(gdstk.inside(mids + _PROBE_NM * normals, polygons), bool)
    minus = np.array(gdstk.inside(mids - _PROBE_NM * normals, polygons), bool)
    edge = plus != minus  # inside on exactly one side: an edge of the union
    normals = np.where(plus[:, None], -normals, normals)  # outward: from inside to outside
    ends, normals, mids, pixels = ends[edge], normals[edge], mids[edge], pixels[edge]
    sample_nm = registration.nm_per_px / 4
    offsets = np.arange(-reach_nm, reach_nm + sample_nm / 2, sample_nm)  # (S,)
    probe = mids[:, None, :] + offsets[None, :, None] * normals[:, None, :]  # (N, S, 2) nm
    probe_px = design_to_pixels(probe.reshape(-1, 2), registration, field.shape)
    profile = ndimage.map_coordinates(field, [probe_px[:, 1], probe_px[:, 0]], order=1,
                                      mode="nearest").reshape(len(mids), len(offsets))
    epe = _crossings(profile, offsets)
    segments = tuple(EdgeSegment(float(e[0, 0]), float(e[0, 1]), float(e[1, 0]), float(e[1, 1]),
                                 (float(n[0]), float(n[1])), float(p[0]), float(p[1]), float(v))
                     for e, n, p, v in zip(ends, normals, pixels, epe, strict=True))
    return EpeReport(segments, float(step_nm), float(reach_nm))


@dataclass(frozen=True)
class CutWidth:
    """One design feature crossed by a cut line: its design CD, the predicted CD, the error."""

    start_px: float  # along the cut, where the design feature starts
    stop_px: float
    design_cd_nm: float
    predicted_cd_nm: float  # NaN when the prediction has no feature there
    error_nm: float  # predicted − design


def _runs(inside: np.ndarray) -> list[tuple[int, int]]:
    padded = np.concatenate([[False], inside, [False]]).astype(np.int8)
    change = np.flatnonzero(np.diff(padded))
    return list(zip(change[::2], change[1::2], strict=True))


def cd_along_cut(layout: DesignLayout, registration: Registration, prediction: np.ndarray,
                 axis: str, position_px: float) -> list[CutWidth]:
    """CDs of design and prediction along a horizontal (``axis="row"``) or vertical cut line."""
    field = np.asarray(prediction, np.float64)
    height, width = field.shape
    if axis not in ("row", "col"):
        raise DesignError(f"a cut line runs along a 'row' or a 'col', got {axis!r}")
    length = width if axis == "row" else height
    limit = height if axis == "row" else width
    if not 0 <= position_px <= limit - 1:
        raise DesignError(f"cut {axis} {position_px} is outside the image (0 … {limit - 1})")
    step = 0.125  # px along the cut
    along = np.arange(-0.5 + step / 2, length - 0.5, step)  # sample centres
    across = np.full_like(along, float(position_px))
    cols, rows = (along, across) if axis == "row" else (across, along)
    design_inside = np.array(gdstk.inside(pixels_to_design(np.column_stack([cols, rows]), registration,
                                                           field.shape), layout.polygons), bool)
    predicted = ndimage.map_coordinates(field, [rows, cols], order=1, mode="nearest") >= 0.5
    cuts = []
    for start, stop in _runs(design_inside):
        if start == 0 or stop == len(along):
            continue  # cut by the image border: not a full width
        design_cd = (stop - start) * step * registration.nm_per_px
        overlapping = [(a, b) for a, b in _runs(predicted) if a < stop and b > start]
        if overlapping:
            a, b = min(r[0] for r in overlapping), max(r[1] for r in overlapping)
            predicted_cd = (b - a) * step * registration.nm_per_px
        else:
            predicted_cd = float("nan")
        cuts.append(CutWidth(float(along[start] - step / 2), float(along[stop - 1] + step / 2), float(design_cd),
                             float(predicted_cd), float(predicted_cd - design_cd)))
    return cuts
