"""Layout families: named kinds of layout (contacts, vias, routing, cell metal, lines, …).

A family groups the procedural patterns that draw it and, where real layouts have it, the
GDS layer its real clips are read from. Families are what a base model is judged on per kind
of layout, and what a training set can leave out whole: ``split_families`` says which
families a set generates and which it holds out, and ``family_clip`` draws a procedural clip
of one family whose mixed clips never contain a held-out family's pattern.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from semgan.layouts.errors import LayoutError
from semgan.layouts.io import format_layer
from semgan.layouts.procedural import REGION_PATTERNS, generate_clip
from semgan.layouts.shapes import LayoutClip


class UnknownFamilyError(LayoutError):
    """A layout family name that is not in ``FAMILIES``, or an impossible choice of families."""


@dataclass(frozen=True)
class LayoutFamily:
    """A named kind of layout: its procedural patterns (with weights) and its real layer, if any."""

    name: str
    description: str
    patterns: Mapping[str, float]
    real_layer: tuple[int, int] | None = None  # GDS layer/datatype of real clips of this family

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"name": self.name, "description": self.description, "patterns": dict(self.patterns),
                "real_layer": None if self.real_layer is None else format_layer(self.real_layer)}


FAMILIES: dict[str, LayoutFamily] = {
    "lines": LayoutFamily("lines", "line/space arrays, line ends and isolated lines",
                          {"lines": 0.45, "line_ends": 0.35, "sparse_lines": 0.2}),
    "routing": LayoutFamily("routing", "gridded wires with jogs, dense and sparse",
                            {"routing": 0.6, "sparse_routing": 0.4}),
    "cell_metal": LayoutFamily("cell_metal", "standard-cell Metal1: power rails, pins, straps",
                               {"cell_metal": 1.0}, real_layer=(34, 0)),
    "contacts": LayoutFamily("contacts", "square contacts: full, partial, staggered, row, block "
                             "and isolated arrays", {"contact_array": 1.0}, real_layer=(33, 0)),
    "vias": LayoutFamily("vias", "square vias: single, redundant pairs, n×n groups and bars",
                         {"via_array": 1.0}, real_layer=(35, 0)),
    "shapes": LayoutFamily("shapes", "scattered L/T/U/H shapes, jogs, crosses, bars and pads",
                           {"shapes": 1.0}),
    "mixed": LayoutFamily("mixed", "regions of lines, contacts, shapes and routing in one clip",
                          {"mixed": 1.0}),
}
# The family of every procedural pattern (random_clip's legacy patterns included).
PATTERN_FAMILY: dict[str, str] = {
    **{pattern: name for name, family in FAMILIES.items() for pattern in family.patterns},
    "contacts": "contacts", "staggered_contacts": "contacts",
}
# GLP clips carry one metal layer and no layer numbers: standard-cell metal.
GLP_FAMILY = "cell_metal"
# A real GDS clip on a layer no family claims.
OTHER_FAMILY = "other"
FAMILY_SPLITS = ("train", "holdout")
# Redraws allowed before a family clip with no whole feature in view is refused.
MAX_REDRAWS = 64


def check_families(names: Iterable[str]) -> list[str]:
    """The names, in order and without repeats; UnknownFamilyError for any not in ``FAMILIES``."""
    names = list(dict.fromkeys(names))
    unknown = [name for name in names if name not in FAMILIES]
    if unknown:
        raise UnknownFamilyError(f"unknown layout famil{'y' if len(unknown) == 1 else 'ies'} "
                                 f"{', '.join(map(repr, unknown))}; choose from {', '.join(FAMILIES)}")
    return names


def parse_families(text: str) -> list[str]:
    """``"contacts, vias"`` → ``["contacts", "vias"]`` (``"all"``: every family), checked."""
    if text.strip() == "all":
        return list(FAMILIES)
    return check_families(part.strip() for part in text.split(",") if part.strip())


def split_families(families: Sequence[str] | None = None, hold_out: Sequence[str] = (),
                   split: str = "train") -> tuple[list[str], dict[str, str]]:
    """(families this split generates, {family: "train" | "holdout"}) of the ``families`` universe.

    ``split="train"`` generates the families not held out, ``"holdout"`` only the held-out ones.
    """
    if split not in FAMILY_SPLITS:
        raise UnknownFamilyError(f"family split must be one of {FAMILY_SPLITS}, got {split!r}")
    universe = check_families(FAMILIES if families is None else families)
    held = check_families(hold_out)
    outside = [name for name in held if name not in universe]
    if outside:
        raise UnknownFamilyError(f"held-out famil{'y' if len(outside) == 1 else 'ies'} {outside} "
                                 f"not among the families {universe}")
    splits = {name: "holdout" if name in held else "train" for name in universe}
    chosen = [name for name in universe if splits[name] == split]
    if not chosen:
        what = "every family is held out" if split == "train" else "no family is held out"
        raise UnknownFamilyError(f"the {split!r} family split is empty: {what} (families {universe})")
    if "mixed" in chosen and not region_patterns(set(FAMILIES) - set(chosen)):
        raise UnknownFamilyError("a mixed clip needs one of lines, contacts, shapes or routing "
                                 "beside it; add one, or leave 'mixed' out too")
    return chosen, splits


def region_patterns(excluded_families: Iterable[str]) -> list[str]:
    """The patterns a mixed clip may use when ``excluded_families`` must not appear in it."""
    excluded = set(excluded_families)
    return [pattern for pattern in REGION_PATTERNS if PATTERN_FAMILY[pattern] not in excluded]


def family_of(source: Mapping) -> str:
    """The family of a clip from its source: its pattern's, GLP → cell metal, GDS by layer."""
    if source.get("family"):
        return str(source["family"])
    if source.get("kind") == "procedural":
        return PATTERN_FAMILY.get(str(source.get("pattern")), OTHER_FAMILY)
    if source.get("kind") == "glp":
        return GLP_FAMILY
    layer = source.get("layer")
    return next((name for name, family in FAMILIES.items()
                 if family.real_layer is not None and format_layer(family.real_layer) == layer), OTHER_FAMILY)


def _whole_feature(mask: np.ndarray, min_width_px: int) -> bool:
    return int(mask.sum()) >= min_width_px * min_width_px


def family_clip(family: str, size_px: int | tuple[int, int], nm_per_px: float, seed: int,
                exclude: Iterable[str] = ()) -> LayoutClip:
    """A procedural clip of ``family``, deterministic in ``seed``; mixed clips avoid ``exclude``.

    The pattern is drawn by the family's weights; a clip with less than one min-width square
    of features in view is redrawn (the seed in its source rebuilds it with ``generate_clip``).
    """
    spec = FAMILIES[check_families([family])[0]]
    rng = np.random.default_rng([seed, 13])
    names = list(spec.patterns)
    weights = np.array([spec.patterns[name] for name in names], dtype=np.float64)
    excluded = set(exclude) - {family}
    regions = region_patterns(excluded) if family == "mixed" and excluded else None
    if regions is not None and not regions:
        raise UnknownFamilyError(f"no mixed regions left once {sorted(excluded)} are excluded")
    for _ in range(MAX_REDRAWS):
        pattern = names[int(rng.choice(len(names), p=weights / weights.sum()))]
        clip_seed = int(rng.integers(2**31))
        clip = generate_clip(pattern, size_px, nm_per_px, clip_seed,
                             region_patterns=regions if pattern == "mixed" else None)
        if _whole_feature(clip.mask, max(1, round(clip.rules.min_width_nm / nm_per_px))):
            return replace(clip, source={**clip.source, "family": family})
    raise LayoutError(f"no {family!r} clip of {size_px} px at {nm_per_px} nm/px shows a whole feature "
                      f"in {MAX_REDRAWS} draws; use a larger --size or a smaller --nm-per-px")
