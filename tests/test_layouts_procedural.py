"""Procedural layout clips: determinism, design rules, exact widths, registry."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from scipy import ndimage

from semgan.layouts import (
    PATTERNS,
    LayoutError,
    UnknownPatternError,
    generate_clip,
    random_clip,
)
from tests.support import opened

ALL_PATTERNS = ["lines", "line_ends", "contacts", "staggered_contacts", "shapes", "routing", "mixed",
                "sparse_lines", "sparse_routing", "cell_metal", "contact_array", "via_array"]


def test_registry_has_the_promised_patterns() -> None:
    assert sorted(PATTERNS) == sorted(ALL_PATTERNS)


@pytest.mark.parametrize("pattern", ALL_PATTERNS)
def test_same_seed_gives_identical_clip(pattern: str) -> None:
    a = generate_clip(pattern, 160, 4.0, seed=11)
    b = generate_clip(pattern, 160, 4.0, seed=11)
    assert np.array_equal(a.mask, b.mask)
    assert a.rules == b.rules and a.source == b.source


@pytest.mark.parametrize("pattern", ALL_PATTERNS)
def test_different_seeds_give_different_clips(pattern: str) -> None:
    masks = [generate_clip(pattern, 160, 4.0, seed=s).mask for s in range(4)]
    assert all(not np.array_equal(masks[0], m) for m in masks[1:])


def test_clip_shape_type_and_metadata() -> None:
    clip = generate_clip("routing", (96, 160), 2.5, seed=5)
    assert clip.mask.shape == (96, 160) and clip.mask.dtype == bool
    assert clip.nm_per_px == 2.5
    assert clip.source["kind"] == "procedural" and clip.source["pattern"] == "routing"
    assert clip.source["seed"] == 5 and clip.source["size_px"] == [96, 160]
    assert clip.source["orientation"] in ("h", "v")
    json.dumps(clip.source)
    json.dumps(clip.rules.to_dict())


@pytest.mark.parametrize("nm_per_px", [2.0, 4.0, 8.0])
def test_design_rules_are_in_nm_ranges_and_whole_pixels(nm_per_px: float) -> None:
    for seed in range(15):
        rules = generate_clip("lines", 64, nm_per_px, seed).rules
        assert 40 - nm_per_px / 2 <= rules.min_width_nm <= 200 + nm_per_px / 2
        assert rules.min_space_nm >= 40 - nm_per_px / 2
        assert (rules.min_width_nm / nm_per_px).is_integer() and (rules.min_space_nm / nm_per_px).is_integer()
        if rules.pitch_nm is not None:
            assert 80 - nm_per_px <= rules.pitch_nm <= 400 + nm_per_px


def test_regular_lines_have_exactly_the_drawn_width_and_space() -> None:
    clip = next(c for c in (generate_clip("lines", 200, 4.0, s) for s in range(50))
                if c.rules.pitch_nm is not None and c.source["orientation"] == "v")
    width, space = round(clip.rules.min_width_nm / 4.0), round(clip.rules.min_space_nm / 4.0)
    row = clip.mask[100].astype(np.int8)
    edges = np.flatnonzero(np.diff(row)) + 1
    runs = np.diff(edges)  # lengths of the runs strictly inside the clip
    assert set(runs[row[edges[:-1]] == 1].tolist()) == {width}
    assert set(runs[row[edges[:-1]] == 0].tolist()) == {space}
    assert (clip.mask == clip.mask[:1]).all()  # vertical lines: every row identical


@pytest.mark.parametrize("nm_per_px", [2.5, 4.0, 7.0])
def test_routing_respects_min_width_and_space(nm_per_px: float) -> None:
    for seed in range(12):
        clip = generate_clip("routing", (200, 176), nm_per_px, seed)
        width = round(clip.rules.min_width_nm / nm_per_px)
        space = round(clip.rules.min_space_nm / nm_per_px)
        assert clip.mask.mean() > 0.05
        assert np.array_equal(opened(clip.mask, width), clip.mask), f"seed {seed}: metal narrower than {width} px"
        assert np.array_equal(opened(~clip.mask, space), ~clip.mask), f"seed {seed}: gap narrower than {space} px"


def test_space_check_catches_gaps_narrowed_by_one_pixel() -> None:
    clip = next(c for c in (generate_clip("lines", 200, 4.0, s) for s in range(50)) if c.rules.pitch_nm)
    space = round(clip.rules.min_space_nm / 4.0)
    assert np.array_equal(opened(~clip.mask, space), ~clip.mask)
    widened = ndimage.binary_dilation(clip.mask, structure=np.ones((3, 3), bool))  # every gap 2 px narrower
    assert not np.array_equal(opened(~widened, space), ~widened)


@pytest.mark.parametrize("pattern", ["lines", "line_ends", "contacts", "staggered_contacts", "shapes", "mixed"])
def test_every_pattern_respects_its_rules(pattern: str) -> None:
    for seed in range(6):
        clip = generate_clip(pattern, 192, 4.0, seed)
        width, space = round(clip.rules.min_width_nm / 4.0), round(clip.rules.min_space_nm / 4.0)
        assert np.array_equal(opened(clip.mask, width), clip.mask)
        assert np.array_equal(opened(~clip.mask, space), ~clip.mask)


def test_contacts_inside_the_clip_all_have_the_same_size() -> None:
    clip = generate_clip("contacts", 256, 4.0, seed=2)
    labels, count = ndimage.label(clip.mask)
    border = set(np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))) - {0}
    sizes = {int((labels == k).sum()) for k in range(1, count + 1) if k not in border}
    assert count > 10 and len(sizes) == 1


def test_random_clip_can_be_rebuilt_from_its_source() -> None:
    clip = random_clip(128, 4.0, seed=21)
    again = generate_clip(clip.source["pattern"], 128, 4.0, clip.source["seed"])
    assert np.array_equal(clip.mask, again.mask)


def test_random_clip_picks_varied_patterns_by_seed() -> None:
    picked = [random_clip(32, 4.0, seed=s).source["pattern"] for s in range(60)]
    assert len(set(picked)) >= 5
    assert picked == [random_clip(32, 4.0, seed=s).source["pattern"] for s in range(60)]


def test_unknown_pattern_raises() -> None:
    with pytest.raises(UnknownPatternError, match=r"'zigzag'.*lines"):
        generate_clip("zigzag", 64, 4.0, seed=0)


def test_bad_size_or_pixel_size_raises() -> None:
    with pytest.raises(LayoutError, match="at least 1"):
        generate_clip("lines", (0, 64), 4.0, seed=0)
    with pytest.raises(LayoutError, match="positive"):
        generate_clip("lines", 64, 0.0, seed=0)


def test_256_px_clip_takes_milliseconds() -> None:
    start = time.perf_counter()
    for seed in range(20):
        random_clip(256, 4.0, seed)
    assert (time.perf_counter() - start) / 20 < 0.05
