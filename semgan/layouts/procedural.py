"""Seeded procedural Manhattan layout clips: line/space, line ends, contacts, shapes, routing, mixtures.

Beside the patterns ``random_clip`` mixes, ``PATTERNS`` holds those the layout families add
(``semgan.layouts.families``): isolated lines, sparse routing, standard-cell metal, square
contact arrays and via groups.

Design rules are drawn per clip in nm (CD about 40–200 nm, pitch 80–400 nm, space >= min
space) and snapped to whole pixels at the requested nm/px, so each clip is exact at any pixel
size and records the rules it was drawn with. All randomness comes from one Generator: the
same seed gives the same mask.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial

import numpy as np

from semgan.layouts import arrays, cellmetal, patterns
from semgan.layouts.errors import LayoutError, UnknownPatternError
from semgan.layouts.patterns import PixelRules
from semgan.layouts.raster import rasterize_rects
from semgan.layouts.shapes import DesignRules, LayoutClip

MIN_CD_NM, MAX_CD_NM = 40.0, 200.0
MIN_PITCH_NM, MAX_PITCH_NM = 80.0, 400.0
MIN_SPACE_NM = 40.0

Builder = Callable[[np.random.Generator, PixelRules, int, int], tuple[np.ndarray, dict]]
RulesDraw = Callable[[np.random.Generator, float], PixelRules]


def _px(nm: float, nm_per_px: float) -> int:
    return max(1, round(nm / nm_per_px))


def draw_line_rules(rng: np.random.Generator, nm_per_px: float, regular: bool = True) -> PixelRules:
    """Width/space/pitch for line-like patterns, drawn in nm and snapped to whole pixels."""
    pitch_nm = float(np.exp(rng.uniform(np.log(MIN_PITCH_NM), np.log(MAX_PITCH_NM))))
    width_nm = float(np.clip(rng.uniform(0.35, 0.6) * pitch_nm, MIN_CD_NM, MAX_CD_NM))
    space_nm = max(pitch_nm - width_nm, MIN_SPACE_NM)
    width, space = _px(width_nm, nm_per_px), _px(space_nm, nm_per_px)
    return PixelRules(width, space, width + space if regular else None)


def _draw_contact_rules(rng: np.random.Generator, nm_per_px: float) -> tuple[PixelRules, dict]:
    size_nm = float(np.exp(rng.uniform(np.log(MIN_CD_NM), np.log(160.0))))
    size_x = _px(size_nm, nm_per_px)
    # Mostly square contacts; some bar-shaped (longer along y).
    size_y = size_x if rng.random() < 0.7 else _px(size_nm * rng.uniform(1.3, 2.5), nm_per_px)
    space_nm = rng.uniform(max(MIN_SPACE_NM, 0.7 * size_nm), max(MIN_SPACE_NM, 2.0 * size_nm))
    gap_x = _px(space_nm, nm_per_px)
    gap_y = _px(space_nm * rng.uniform(1.0, 1.6), nm_per_px)
    rules = PixelRules(min(size_x, size_y), min(gap_x, gap_y), min(size_x + gap_x, size_y + gap_y))
    return rules, {"size": (size_x, size_y), "gaps": (gap_x, gap_y)}


def _square_rules(low_nm: float, high_nm: float, space_ratio: tuple[float, float]) -> RulesDraw:
    """Rules of square contacts/vias: side log-uniform in [low, high] nm, space a multiple of it."""
    def draw(rng: np.random.Generator, nm_per_px: float) -> PixelRules:
        size_nm = float(np.exp(rng.uniform(np.log(low_nm), np.log(high_nm))))
        size = _px(size_nm, nm_per_px)
        space = max(_px(size_nm * rng.uniform(*space_ratio), nm_per_px), _px(MIN_SPACE_NM, nm_per_px))
        return PixelRules(size, space, size + space)
    return draw


def _sparse_line_rules(rng: np.random.Generator, nm_per_px: float) -> PixelRules:
    """Isolated lines: line rules whose space is 3–10× the usual."""
    rules = draw_line_rules(rng, nm_per_px, regular=bool(rng.random() < 0.5))
    space = round(rules.space * rng.uniform(3.0, 10.0))
    return PixelRules(rules.width, space, None if rules.pitch is None else rules.width + space)


def _to_design_rules(rules: PixelRules, nm_per_px: float) -> DesignRules:
    pitch = None if rules.pitch is None else rules.pitch * nm_per_px
    return DesignRules(rules.width * nm_per_px, rules.space * nm_per_px, pitch)


def _draw_rects(builder: Builder, rng: np.random.Generator, rules: PixelRules,
                height: int, width: int, orientation: str) -> tuple[np.ndarray, dict]:
    """Run a builder in its canonical (vertical) frame, transposed for horizontal clips."""
    if orientation == "v":
        return builder(rng, rules, width, height)
    rects, info = builder(rng, rules, height, width)
    return rects[:, [1, 0, 3, 2]], info  # swap x and y


def _mask(rects_px: np.ndarray, height: int, width: int, nm_per_px: float) -> np.ndarray:
    window = (0.0, 0.0, width * nm_per_px, height * nm_per_px)
    return rasterize_rects(rects_px * nm_per_px, window, nm_per_px)  # (H, W)


def _single(name: str, builder: Builder, contact_like: bool = False,
            rules_for: RulesDraw | None = None) -> Callable[..., LayoutClip]:
    def generate(rng: np.random.Generator, height: int, width: int, nm_per_px: float) -> LayoutClip:
        orientation = str(rng.choice(["v", "h"]))
        if rules_for is not None:
            rules = rules_for(rng, nm_per_px)
            rects, info = _draw_rects(builder, rng, rules, height, width, orientation)
            if orientation == "h" and "pitch_px" in info:  # report pitches in the clip's own x, y
                info = {**info, "pitch_px": info["pitch_px"][::-1]}
        elif contact_like:
            rules, sizes = _draw_contact_rules(rng, nm_per_px)
            rects, info = _draw_rects(lambda r, ru, w, h: builder(r, ru, w, h, **sizes), rng, rules,
                                      height, width, orientation)
        else:
            rules = draw_line_rules(rng, nm_per_px, regular=bool(rng.random() < 0.65))
            rects, info = _draw_rects(builder, rng, rules, height, width, orientation)
        source = {"kind": "procedural", "pattern": name, "orientation": orientation, **info}
        return LayoutClip(_mask(rects, height, width, nm_per_px), float(nm_per_px),
                          _to_design_rules(rules, nm_per_px), source)

    generate.__doc__ = f"A procedural {name!r} clip of height×width px at nm_per_px."
    return generate


# Patterns that can fill a region of a mixed clip, sharing that clip's rules.
_REGION_BUILDERS: dict[str, Builder] = {
    "lines": patterns.lines,
    "line_ends": patterns.line_ends,
    "contacts": patterns.contacts,
    "staggered_contacts": patterns.staggered_contacts,
    "shapes": patterns.shapes,
    "routing": patterns.routing,
}


def _split(rng: np.random.Generator, box: tuple[int, int, int, int], depth: int,
           smallest: int) -> list[tuple[int, int, int, int]]:
    """Guillotine-cut (row0, col0, row1, col1) into regions at least ``smallest`` px on a side."""
    r0, c0, r1, c1 = box
    cut_rows = (r1 - r0) >= (c1 - c0)
    span = (r1 - r0) if cut_rows else (c1 - c0)
    if depth <= 0 or span < 2 * smallest:
        return [box]
    cut = int(rng.integers(smallest, span - smallest + 1))
    if cut_rows:
        halves = [(r0, c0, r0 + cut, c1), (r0 + cut, c0, r1, c1)]
    else:
        halves = [(r0, c0, r1, c0 + cut), (r0, c0 + cut, r1, c1)]
    return [part for half in halves for part in _split(rng, half, depth - int(rng.integers(1, 3)), smallest)]


def box_opening(mask: np.ndarray, size: int) -> np.ndarray:
    """Morphological opening by a size×size square, the image border extended (replicated)."""
    if size <= 1:
        return mask.copy()
    padded = np.pad(mask, size - 1, mode="edge").astype(np.int32)
    fits = _box_sum(padded, size) == size * size  # (H+size-1, W+size-1): square fits at top-left
    return _box_sum(fits.astype(np.int32), size) > 0  # (H, W): covered by some fitting square


def _box_sum(values: np.ndarray, size: int) -> np.ndarray:
    """Sum of every size×size window (valid positions only), via an integral image."""
    integral = np.pad(values, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    return integral[size:, size:] - integral[:-size, size:] - integral[size:, :-size] + integral[:-size, :-size]


def mixed(rng: np.random.Generator, height: int, width: int, nm_per_px: float,
          region_patterns: Sequence[str] | None = None) -> LayoutClip:
    """Regions of different patterns (and orientations) in one clip, separated by at least min space.

    ``region_patterns`` limits the regions to some of ``REGION_PATTERNS`` (default: all).
    """
    names = list(_REGION_BUILDERS) if region_patterns is None else list(region_patterns)
    unknown = sorted(set(names) - set(_REGION_BUILDERS))
    if not names or unknown:
        raise UnknownPatternError(f"mixed regions must be some of {', '.join(_REGION_BUILDERS)}, got {names}")
    rules = draw_line_rules(rng, nm_per_px, regular=True)
    smallest = max(3 * (rules.width + rules.space), 16)
    boxes = _split(rng, (0, 0, height, width), int(rng.integers(1, 3)), smallest)
    mask = np.zeros((height, width), dtype=bool)
    regions = []
    half = rules.space // 2
    for r0, c0, r1, c1 in boxes:
        name = str(rng.choice(names))
        orientation = str(rng.choice(["v", "h"]))
        rects, _ = _draw_rects(_REGION_BUILDERS[name], rng, rules, r1 - r0, c1 - c0, orientation)
        part = _mask(rects, r1 - r0, c1 - c0, nm_per_px)
        # Keep clear of internal borders (half the min space on each side, so regions are >= space apart).
        top, left = (half if r0 > 0 else 0), (half if c0 > 0 else 0)
        bottom = (rules.space - half) if r1 < height else 0
        right = (rules.space - half) if c1 < width else 0
        part[:top], part[part.shape[0] - bottom:], part[:, :left], part[:, part.shape[1] - right:] = (
            False, False, False, False)
        mask[r0:r1, c0:c1] = part
        regions.append({"pattern": name, "orientation": orientation, "box_px": [r0, c0, r1, c1]})
    # Features cut by an internal border can leave slivers thinner than the min width: remove them.
    mask = box_opening(mask, rules.width)
    source = {"kind": "procedural", "pattern": "mixed", "regions": regions}
    return LayoutClip(mask, float(nm_per_px), _to_design_rules(rules, nm_per_px), source)


PATTERNS: dict[str, Callable[[np.random.Generator, int, int, float], LayoutClip]] = {
    "lines": _single("lines", patterns.lines),
    "line_ends": _single("line_ends", patterns.line_ends),
    "contacts": _single("contacts", patterns.contacts, contact_like=True),
    "staggered_contacts": _single("staggered_contacts", patterns.staggered_contacts, contact_like=True),
    "shapes": _single("shapes", patterns.shapes),
    "routing": _single("routing", patterns.routing),
    "mixed": mixed,
    # Family patterns (``semgan.layouts.families``); random_clip's mix below leaves them out.
    "sparse_lines": _single("sparse_lines", patterns.isolated_lines, rules_for=_sparse_line_rules),
    "sparse_routing": _single("sparse_routing", partial(patterns.routing, density=(0.12, 0.4))),
    "cell_metal": _single("cell_metal", cellmetal.cell_metal),
    "contact_array": _single("contact_array", arrays.contact_array, rules_for=_square_rules(40.0, 250.0, (0.6, 3.0))),
    "via_array": _single("via_array", arrays.via_array, rules_for=_square_rules(40.0, 260.0, (0.7, 1.6))),
}
REGION_PATTERNS = tuple(_REGION_BUILDERS)
# How often random_clip picks each pattern: mostly the varied, realistic ones.
PATTERN_WEIGHTS: dict[str, float] = {
    "mixed": 0.25, "routing": 0.25, "lines": 0.15, "line_ends": 0.1,
    "shapes": 0.1, "contacts": 0.08, "staggered_contacts": 0.07,
}


def _size(size_px: int | tuple[int, int]) -> tuple[int, int]:
    height, width = (size_px, size_px) if isinstance(size_px, int | np.integer) else size_px
    if int(height) < 1 or int(width) < 1:
        raise LayoutError(f"clip size must be at least 1×1 px, got {size_px}")
    return int(height), int(width)


def generate_clip(pattern: str, size_px: int | tuple[int, int], nm_per_px: float, seed: int,
                  *, region_patterns: Sequence[str] | None = None) -> LayoutClip:
    """A ``pattern`` clip of ``size_px`` (side, or (height, width)) at ``nm_per_px``, deterministic in ``seed``.

    ``region_patterns`` (``"mixed"`` only) limits a mixed clip's regions to those patterns.
    """
    if pattern not in PATTERNS:
        raise UnknownPatternError(f"unknown layout pattern {pattern!r}; choose one of {', '.join(PATTERNS)}")
    if not nm_per_px > 0:
        raise LayoutError(f"nm_per_px must be positive, got {nm_per_px}")
    height, width = _size(size_px)
    rng = np.random.default_rng(seed)
    extra: dict = {}
    if region_patterns is None:
        clip = PATTERNS[pattern](rng, height, width, float(nm_per_px))
    elif pattern == "mixed":
        clip = mixed(rng, height, width, float(nm_per_px), region_patterns)
        extra = {"region_patterns": list(region_patterns)}
    else:
        raise UnknownPatternError(f"region_patterns applies to the 'mixed' pattern only, not {pattern!r}")
    source = {**clip.source, "seed": int(seed), "nm_per_px": float(nm_per_px), "size_px": [height, width], **extra}
    return replace(clip, source=source)


def random_clip(size_px: int | tuple[int, int], nm_per_px: float, seed: int) -> LayoutClip:
    """A clip of a pattern chosen by ``seed`` (weighted towards mixed, routing and lines)."""
    names = list(PATTERN_WEIGHTS)
    weights = np.array([PATTERN_WEIGHTS[n] for n in names])
    # A separate stream picks the pattern, so generate_clip(source pattern, seed) rebuilds the clip.
    pattern = names[int(np.random.default_rng([seed, 7]).choice(len(names), p=weights / weights.sum()))]
    return generate_clip(pattern, size_px, nm_per_px, seed)
