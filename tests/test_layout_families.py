"""Layout families: each draws what it says, deterministically, and the legacy patterns are unchanged."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from scipy import ndimage

from semgan.layouts import PATTERNS, generate_clip, random_clip
from semgan.layouts.families import (
    FAMILIES,
    PATTERN_FAMILY,
    UnknownFamilyError,
    family_clip,
    family_of,
    parse_families,
    split_families,
)
from tests.support import opened

NM = 4.0


def squares(mask: np.ndarray) -> tuple[list[tuple[int, int, int, int]], list[tuple[int, int, int, int]]]:
    """(whole, cut) features as (top, left, height, width): cut ones touch the clip border."""
    labels, _ = ndimage.label(mask)
    whole, cut = [], []
    for k, box in enumerate(ndimage.find_objects(labels), start=1):
        rows, cols = box
        assert (labels[box] == k).all(), "a feature is not a rectangle"
        item = (rows.start, cols.start, rows.stop - rows.start, cols.stop - cols.start)
        border = rows.start == 0 or cols.start == 0 or rows.stop == mask.shape[0] or cols.stop == mask.shape[1]
        (cut if border else whole).append(item)
    return whole, cut


def check_lattice(clip, whole: list[tuple[int, int, int, int]]) -> None:
    """Whole features are squares of the drawn side with corners on the drawn (staggered) lattice."""
    side = clip.source["feature_px"]
    pitch_x, pitch_y = clip.source["pitch_px"]  # in the clip's own x (columns) and y (rows)
    assert side == round(clip.rules.min_width_nm / NM)
    assert {(h, w) for _, _, h, w in whole} == {(side, side)}
    stagger = clip.source.get("stagger_px", 0)
    across, along = (0, 1) if clip.source["orientation"] == "v" else (1, 0)  # rows, or columns, staggered
    pitches = (pitch_y, pitch_x)
    base = whole[0]
    for feature in whole:
        steps = (feature[across] - base[across]) / pitches[across]
        assert steps.is_integer()
        shifts = (-stagger, stagger) if steps % 2 else (0,)  # odd rows sit half a pitch over
        assert any((feature[along] - base[along] + s) % pitches[along] == 0 for s in shifts), \
            f"seed {clip.source['seed']}: feature {feature} off the lattice"


def test_every_family_pattern_is_registered_and_every_pattern_has_a_family() -> None:
    assert list(FAMILIES) == ["lines", "routing", "cell_metal", "contacts", "vias", "shapes", "mixed"]
    assert all(p in PATTERNS for family in FAMILIES.values() for p in family.patterns)
    assert set(PATTERN_FAMILY) == set(PATTERNS)
    assert FAMILIES["contacts"].real_layer == (33, 0) and FAMILIES["vias"].real_layer == (35, 0)
    assert FAMILIES["cell_metal"].real_layer == (34, 0)


@pytest.mark.parametrize("family", ["contacts", "vias"])
def test_contacts_and_vias_are_squares_of_the_drawn_size_at_the_drawn_pitch(family: str) -> None:
    sides, pitches, cut_any = set(), set(), False
    for seed in range(24):
        clip = family_clip(family, 256, NM, seed)
        assert clip.source["family"] == family and clip.source["pattern"] in FAMILIES[family].patterns
        whole, cut = squares(clip.mask)
        if len(whole) >= 1:
            check_lattice(clip, whole)
        cut_any |= any(h < clip.source["feature_px"] or w < clip.source["feature_px"] for _, _, h, w in cut)
        sides.add(clip.source["feature_px"])
        pitches.add(tuple(clip.source["pitch_px"]))
    assert len(sides) >= 10 and len(pitches) >= 15  # many sizes and pitches
    assert cut_any  # some features are cut by the tile border


def test_contact_arrangements_cover_dense_to_isolated_regular_and_staggered() -> None:
    clips = [family_clip("contacts", 256, NM, seed) for seed in range(60)]
    assert {c.source["arrangement"] for c in clips} == {"full", "partial", "rows", "blocks", "isolated"}
    assert {c.source["staggered"] for c in clips} == {True, False}
    staggered = [c for c in clips if c.source["staggered"]]
    assert all(c.source["stagger_px"] == c.source["pitch_px"][0 if c.source["orientation"] == "v" else 1] // 2
               for c in staggered)
    counts = {c.source["arrangement"]: [] for c in clips}
    for c in clips:
        counts[c.source["arrangement"]].append(c.source["features"])
    assert np.median(counts["full"]) > np.median(counts["isolated"])
    assert max(counts["isolated"]) <= 9


def test_vias_come_in_groups_sparse_and_dense() -> None:
    clips = [family_clip("vias", 256, NM, seed) for seed in range(30)]
    assert {c.source["density"] for c in clips} == {"sparse", "dense"}
    assert all(c.source["groups"] >= 1 for c in clips)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_respects_its_rules_and_shows_a_feature(family: str) -> None:
    for seed in range(5):
        clip = family_clip(family, 192, NM, seed)
        width, space = round(clip.rules.min_width_nm / NM), round(clip.rules.min_space_nm / NM)
        assert clip.mask.sum() >= width * width
        assert np.array_equal(opened(clip.mask, width), clip.mask), f"{family} seed {seed}: too thin"
        assert np.array_equal(opened(~clip.mask, space), ~clip.mask), f"{family} seed {seed}: gap too narrow"
        assert family_of(clip.source) == family


def test_cell_metal_has_rails_across_the_clip() -> None:
    clips = [family_clip("cell_metal", 256, NM, seed) for seed in range(12)]
    def has_rail(c) -> bool:
        return bool(c.mask.all(axis=1 if c.source["orientation"] == "v" else 0).any())
    assert sum(map(has_rail, clips)) >= 8
    assert all(c.source["shapes"] >= 0 and 6 <= c.source["row_nodes"] <= 11 for c in clips)


def test_sparse_patterns_are_sparser_than_their_dense_kin() -> None:
    def fill(pattern: str) -> float:
        return float(np.mean([generate_clip(pattern, 160, NM, s).mask.mean() for s in range(12)]))
    assert fill("sparse_routing") < 0.6 * fill("routing")
    assert fill("sparse_lines") < 0.6 * fill("lines")


def test_family_clips_are_deterministic_by_seed_and_rebuild_from_their_source() -> None:
    for family in FAMILIES:
        a, b, c = (family_clip(family, 128, NM, s) for s in (3, 3, 4))
        assert np.array_equal(a.mask, b.mask) and a.source == b.source
        assert not np.array_equal(a.mask, c.mask)
        rebuilt = generate_clip(a.source["pattern"], 128, NM, a.source["seed"])
        assert np.array_equal(rebuilt.mask, a.mask)


def test_mixed_clips_leave_out_excluded_families() -> None:
    for seed in range(20):
        clip = family_clip("mixed", 192, NM, seed, exclude=["contacts", "routing"])
        assert {r["pattern"] for r in clip.source["regions"]} <= {"lines", "line_ends", "shapes"}
        assert clip.source["region_patterns"] == ["lines", "line_ends", "shapes"]


def test_split_families_holds_out_whole_families() -> None:
    chosen, splits = split_families(hold_out=["contacts", "vias"])
    assert chosen == ["lines", "routing", "cell_metal", "shapes", "mixed"]
    assert splits["contacts"] == splits["vias"] == "holdout" and splits["lines"] == "train"
    assert split_families(hold_out=["vias"], split="holdout")[0] == ["vias"]
    assert parse_families(" vias, contacts,vias ") == ["vias", "contacts"]
    assert parse_families("all") == list(FAMILIES)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"families": ["wires"]}, "unknown layout family 'wires'"),
    ({"hold_out": list(FAMILIES)}, "every family is held out"),
    ({"split": "holdout"}, "no family is held out"),
    ({"families": ["lines"], "hold_out": ["vias"]}, "not among"),
    ({"families": ["mixed", "vias"]}, "leave 'mixed' out"),
])
def test_impossible_family_choices_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(UnknownFamilyError, match=message):
        split_families(**kwargs)


def _hash(mask: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(mask).tobytes() + str(mask.shape).encode()).hexdigest()[:16]


# Hashes recorded before the families were added: the legacy patterns must not change.
LEGACY = {
    "lines": ("64d4b91659dbf528", "5378e79f7c41cad9"), "line_ends": ("2ffa60868f070515", "95f50d8c3cc1a77b"),
    "contacts": ("31eb8957709e3947", "46ad719e1cb6a609"),
    "staggered_contacts": ("078468d6980112c2", "c5e2d84e6f90237e"),
    "shapes": ("9b39a5ab917832a5", "8fcd383f88f83a0b"), "routing": ("ebb5e632c7721e9c", "89ffb9be5e780111"),
    "mixed": ("21d2c9bb05bcb203", "1197140e3b089cb1"),
}
LEGACY_RANDOM = ["af6b99edd760f7af", "3857db5b8c05ddaf", "f1473af9c9c8260f", "5a3c28556406cfb9",
                 "43a455b4348b785e", "141a21b67bf2d235"]


@pytest.mark.parametrize("pattern", list(LEGACY))
def test_legacy_patterns_are_bit_identical(pattern: str) -> None:
    assert tuple(_hash(generate_clip(pattern, 160, NM, seed).mask) for seed in (0, 1)) == LEGACY[pattern]


def test_random_clip_is_bit_identical() -> None:
    assert [_hash(random_clip(256, NM, seed).mask) for seed in range(6)] == LEGACY_RANDOM
