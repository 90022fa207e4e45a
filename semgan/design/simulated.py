"""Registration test cases: a layout, a site shifted by a known offset, and its simulated SEM.

One case is a design (polygons in nm), the true site centre, the centre the user believes
(true − offset), and what the tool saw there: the printed contour and a simulated SEM
(``semgan.semsim``). Registration must recover the offset from the believed centre.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semgan.design.clip import DesignLayout, DesignSource, image_window, load_design
from semgan.design.errors import DesignError
from semgan.layouts import generate_clip, rasterize
from semgan.polygons import mask_to_polygons
from semgan.semsim import PROFILES, simulate

CASE_PROFILES = ("clean", "noisy", "aged", "drifted")
REPETITIVE_PATTERNS = ("lines", "contacts", "staggered_contacts")


@dataclass(frozen=True)
class RegistrationCase:
    """One simulated acquisition of a known design site, believed to be ``offset`` away."""

    name: str
    kind: str  # "real", or the procedural pattern name
    layout: DesignLayout
    true_center_nm: tuple[float, float]
    believed_center_nm: tuple[float, float]
    sem_image: np.ndarray  # (H, W) uint8
    printed_mask: np.ndarray  # (H, W) bool
    design_mask: np.ndarray  # (H, W) bool, the design on the image's pixels
    profile: str
    nm_per_px: float

    @property
    def offset_nm(self) -> tuple[float, float]:
        """The (dx, dy) registration must find."""
        return (self.true_center_nm[0] - self.believed_center_nm[0],
                self.true_center_nm[1] - self.believed_center_nm[1])


def procedural_layout(pattern: str, size_px: int, nm_per_px: float, seed: int) -> DesignLayout:
    """A procedural clip of ``pattern`` as polygons (nm, origin at its bottom-left corner)."""
    clip = generate_clip(pattern, size_px, nm_per_px, seed)
    source = DesignSource(f"procedural:{pattern}:{seed}", None, (0, 0))
    return DesignLayout(source, mask_to_polygons(clip.mask, nm_per_px), pattern)


def _site(layout: DesignLayout, shape: tuple[int, int], nm_per_px: float, reach_nm: float,
          rng: np.random.Generator, tries: int = 40) -> tuple[float, float]:
    """A site whose image (and search reach) lies inside the layout and shows some pattern."""
    x0, y0, x1, y1 = layout.bounds_nm
    half_w, half_h = shape[1] * nm_per_px / 2, shape[0] * nm_per_px / 2
    low_x, high_x = x0 + half_w + reach_nm, x1 - half_w - reach_nm
    low_y, high_y = y0 + half_h + reach_nm, y1 - half_h - reach_nm
    centre = ((x0 + x1) / 2, (y0 + y1) / 2)
    for _ in range(tries):
        pick = (rng.uniform(low_x, high_x) if high_x > low_x else centre[0],
                rng.uniform(low_y, high_y) if high_y > low_y else centre[1])
        fill = rasterize(layout.polygons, image_window(pick, shape, nm_per_px), nm_per_px).mean()
        if 0.04 <= fill <= 0.9:
            return float(np.round(pick[0])), float(np.round(pick[1]))
    raise DesignError(f"no site with pattern in {layout.source.path}")


def make_case(layout: DesignLayout, kind: str, *, profile: str, seed: int, size_px: int = 256,
              nm_per_px: float = 4.0, max_offset_nm: float = 200.0) -> RegistrationCase:
    """Pick a site of ``layout``, image it with ``profile`` and believe it ``±max_offset_nm`` off."""
    rng = np.random.default_rng(seed)
    shape = (size_px, size_px)
    true_center = _site(layout, shape, nm_per_px, 2 * max_offset_nm, rng)
    offset = rng.uniform(-max_offset_nm, max_offset_nm, size=2)
    believed = (true_center[0] - float(offset[0]), true_center[1] - float(offset[1]))
    design_mask = rasterize(layout.polygons, image_window(true_center, shape, nm_per_px), nm_per_px)
    sample = simulate(design_mask, nm_per_px, PROFILES[profile], rng)
    name = f"{kind}:{Path(layout.source.path).stem}:{profile}:{seed}"
    return RegistrationCase(name, kind, layout, true_center, believed, sample.sem_image,
                            sample.printed_mask, design_mask, profile, nm_per_px)


def noisy_prediction(printed_mask: np.ndarray, seed: int, flip_fraction: float = 0.01,
                     blobs: int = 6) -> np.ndarray:
    """A stand-in for the model's output: the printed contour with speckle and a few wrong blobs."""
    rng = np.random.default_rng(seed)
    mask = printed_mask.copy()
    mask ^= rng.random(mask.shape) < flip_fraction
    height, width = mask.shape
    for _ in range(blobs):
        r, c = int(rng.integers(height)), int(rng.integers(width))
        size = int(rng.integers(3, 10))
        mask[r:r + size, c:c + size] = not mask[r, c]
    return mask


def real_layouts(root: str | Path, count: int, layer: tuple[int, int] = (34, 0),
                 seed: int = 0) -> list[DesignLayout]:
    """``count`` GDS cells of a folder (spread over its sorted files) on ``layer``."""
    files = sorted(Path(root).glob("*.gds"))
    if not files:
        raise DesignError(f"{root}: no .gds files")
    chosen = np.random.default_rng(seed).choice(len(files), size=min(count, len(files)), replace=False)
    return [load_design(DesignSource(str(files[i]), None, layer)) for i in sorted(chosen)]


def case_family(layouts_root: str | Path | None, *, real_count: int = 8, per_layout: int = 4,
                procedural_seeds: int = 4, size_px: int = 256, nm_per_px: float = 4.0,
                seed: int = 0) -> list[RegistrationCase]:
    """Real cells × profiles plus repetitive procedural patterns × profiles, all shifted ±200 nm."""
    cases = []
    if layouts_root is not None and Path(layouts_root).is_dir():
        for index, layout in enumerate(real_layouts(layouts_root, real_count, seed=seed)):
            # Wide standard cells only: a cell narrower than the image plus its search is skipped.
            x0, y0, x1, y1 = layout.bounds_nm
            if min(x1 - x0, y1 - y0) < size_px * nm_per_px + 800:
                continue
            for k in range(per_layout):
                profile = CASE_PROFILES[(index + k) % len(CASE_PROFILES)]
                cases.append(make_case(layout, "real", profile=profile, seed=seed * 1000 + index * 10 + k,
                                       size_px=size_px, nm_per_px=nm_per_px))
    grow = size_px + 2 * int(np.ceil(400 / nm_per_px)) + 16
    for pattern in (*REPETITIVE_PATTERNS, "line_ends", "routing"):
        for k in range(procedural_seeds):
            layout = procedural_layout(pattern, grow, nm_per_px, seed=seed * 100 + k)
            profile = CASE_PROFILES[k % len(CASE_PROFILES)]
            cases.append(make_case(layout, pattern, profile=profile, seed=seed * 1000 + 500 + k,
                                   size_px=size_px, nm_per_px=nm_per_px))
    return cases


@dataclass(frozen=True)
class CaseOutcome:
    """How registration did on one case: the error (px, worst axis) and the ambiguity flag."""

    name: str
    kind: str
    profile: str
    error_px: float
    ambiguous: bool

    @property
    def recovered(self) -> bool:
        """Within one pixel on both axes."""
        return self.error_px <= 1.0

    @property
    def passed(self) -> bool:
        """Recovered, or wrong but honestly flagged as ambiguous."""
        return self.recovered or self.ambiguous


def outcome(case: RegistrationCase, dx_nm: float, dy_nm: float, ambiguous: bool) -> CaseOutcome:
    """Score a registration result against the case's known offset."""
    error = max(abs(dx_nm - case.offset_nm[0]), abs(dy_nm - case.offset_nm[1])) / case.nm_per_px
    return CaseOutcome(case.name, case.kind, case.profile, float(error), bool(ambiguous))


def rates(outcomes: list[CaseOutcome]) -> dict[str, dict[str, float | int]]:
    """Per case kind (real/repetitive/other) and overall: recovered, passed, silently wrong."""
    groups: dict[str, list[CaseOutcome]] = {"all": outcomes}
    for item in outcomes:
        kind = "real" if item.kind == "real" else \
            "repetitive" if item.kind in REPETITIVE_PATTERNS else "procedural"
        groups.setdefault(kind, []).append(item)
    return {kind: {"cases": len(items),
                   "recovered": sum(i.recovered for i in items) / len(items),
                   "passed": sum(i.passed for i in items) / len(items),
                   "silently_wrong": sum(not i.passed for i in items),
                   "flagged": sum(i.ambiguous for i in items)}
            for kind, items in groups.items() if items}
