"""Domain randomization, sampler side: ranges, determinism, JSON, leave-out regions, synth hook."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from semgan.__main__ import main
from semgan.semsim.profiles import ProfileError
from semgan.semsim.randomize import (
    RANDOMIZED_TOOLS,
    RandomizedTool,
    load_randomized_tool,
    resolve_randomized,
    save_randomized_tool,
    simulate_randomized,
)
from semgan.semsim.space import RANDOM_KNOBS, HeldOutRegion, held_out_region
from semgan.synth import make_pair, resolve_profiles, write_dataset

RANDOM = RANDOMIZED_TOOLS["random"]


def test_default_draws_respect_ranges_and_span_them() -> None:
    rng = np.random.default_rng(0)
    draws = [RANDOM.sample(rng, split="all") for _ in range(300)]
    for knob in RANDOM_KNOBS:
        low, high = RANDOM.ranges[knob]
        assert all(low <= draw[knob] <= high for draw in draws), knob
    assert all(0.0 <= d["feature_level"] <= 1.0 and d["scan_direction"] in (-1.0, 1.0) for d in draws)
    contrast = [d["material_contrast"] for d in draws]
    assert min(contrast) < -0.2 and max(contrast) > 0.3  # inverted through zero to strongly positive
    dose = [d["dose_electrons_per_px"] for d in draws]
    assert min(dose) < 5 and max(dose) > 150  # log-uniform: both decades are reached
    pixel = [d["acquisition_nm_per_px"] for d in draws]
    assert min(pixel) < 2.5 and max(pixel) > 7.5
    assert json.loads(json.dumps(draws[0])) == draws[0]


def test_sampling_and_images_are_deterministic_by_seed() -> None:
    layout = np.zeros((64, 64), bool)
    layout[20:44, 20:44] = True
    first = simulate_randomized(layout, 4.0, RANDOM, np.random.default_rng(5))
    again = simulate_randomized(layout, 4.0, RANDOM, np.random.default_rng(5))
    other = simulate_randomized(layout, 4.0, RANDOM, np.random.default_rng(6))
    assert np.array_equal(first[0], again[0]) and first[2] == again[2]
    assert first[2] != other[2] and not np.array_equal(first[0], other[0])


def test_a_pinned_knob_leaves_the_other_draws_unchanged() -> None:
    free = RANDOM.draw(np.random.default_rng(9))
    pinned = RandomizedTool("p", ranges={"dose_electrons_per_px": 50.0}).draw(np.random.default_rng(9))
    assert pinned["dose_electrons_per_px"] == 50.0
    assert {k: v for k, v in pinned.items() if k != "dose_electrons_per_px"} == \
           {k: v for k, v in free.items() if k != "dose_electrons_per_px"}


def test_dict_and_file_round_trip(tmp_path: Path) -> None:
    assert RandomizedTool.from_dict(json.loads(json.dumps(RANDOM.to_dict()))) == RANDOM
    path = tmp_path / "tool.json"
    save_randomized_tool(RANDOM.with_split("validation"), path)
    assert load_randomized_tool(path) == RANDOM.with_split("validation")
    assert resolve_randomized(f"{path}:all") == RANDOM.with_split("all")


def test_left_out_knobs_take_the_default_range() -> None:
    tool = RandomizedTool.from_dict({"kind": "randomized", "name": "x", "gamma": [1.0, 1.2]})
    assert tool.ranges["gamma"] == (1.0, 1.2)
    assert tool.ranges["dose_electrons_per_px"] == RANDOM.ranges["dose_electrons_per_px"]
    assert tool.held_out == RANDOM.held_out


@pytest.mark.parametrize(("change", "message"), [
    ({"beam_astigmatism": [0, 1]}, "beam_astigmatism"),
    ({"gamma": [1.5, 1.0]}, r"gamma: low 1\.5 is above high 1\.0"),
    ({"acquisition_nm_per_px": [0.1, 4.0]}, r"acquisition_nm_per_px: .*outside the allowed"),
    ({"dose_electrons_per_px": [-5, 10]}, "dose_electrons_per_px"),
    ({"saturation_grey": ["high", "low"]}, "saturation_grey"),
    ({"split": "test"}, "split must be one of train, validation, all"),
    ({"kind": "profile"}, '"kind": "randomized"'),
    ({"reverse_scan_fraction": 2.0}, "reverse_scan_fraction"),
    ({"held_out": [{"name": "r", "bounds": {"dose": [1, 2]}}]}, "unknown knob 'dose'"),
    ({"held_out": [{"name": "r", "bounds": {"gamma": [1, 2]}}] * 2}, "unique"),
    ({"held_out": [], "split": "validation"}, "needs at least one held-out region"),
])
def test_bad_values_are_refused(change: dict, message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        RandomizedTool.from_dict(RANDOM.to_dict() | change)


def test_malformed_file_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{\n  "kind": "randomized",\n  oops\n}')
    with pytest.raises(ProfileError, match=r"bad\.json: not valid JSON \(line 3"):
        load_randomized_tool(path)


def test_validation_needs_a_region_the_ranges_reach() -> None:
    tool = RandomizedTool("x", ranges={"gamma": 1.0}, held_out=(HeldOutRegion("r", {"gamma": (5, 6)}),))
    assert tool.sample(np.random.default_rng(0))["gamma"] == 1.0  # training: the region is just empty
    with pytest.raises(ProfileError, match="no held-out region overlaps"):
        tool.sample(np.random.default_rng(0), split="validation")


def test_training_draws_never_land_in_a_held_out_region() -> None:
    rng = np.random.default_rng(1)
    assert all(held_out_region(RANDOM.sample(rng), RANDOM.held_out) is None for _ in range(500))


def test_validation_draws_always_land_in_a_held_out_region() -> None:
    rng = np.random.default_rng(2)
    hits = [held_out_region(RANDOM.sample(rng, split="validation"), RANDOM.held_out) for _ in range(300)]
    assert None not in hits
    assert set(hits) == {region.name for region in RANDOM.held_out}


def test_the_all_split_reaches_both_sides() -> None:
    rng = np.random.default_rng(3)
    inside = [held_out_region(RANDOM.sample(rng, split="all"), RANDOM.held_out) for _ in range(200)]
    assert None in inside and any(name is not None for name in inside)


def test_region_bounds_are_inclusive_and_cover_only_their_knobs() -> None:
    region = HeldOutRegion("coarse", {"acquisition_nm_per_px": (6.5, 8.0)})
    assert region.contains({"acquisition_nm_per_px": 6.5, "gamma": 9.0})
    assert not region.contains({"acquisition_nm_per_px": 6.49})


def test_a_region_covering_everything_leaves_no_training_draw() -> None:
    tool = RandomizedTool("x", held_out=(HeldOutRegion("all", {"gamma": (0.1, 10.0)}),))
    with pytest.raises(ProfileError, match="no usable train draw"):
        tool.sample(np.random.default_rng(0))


def test_synth_resolves_random_profiles_and_splits() -> None:
    train, validation, clean = resolve_profiles("random,random:validation,clean")
    assert train == RANDOM and validation == RANDOM.with_split("validation")
    assert clean.name == "clean"
    with pytest.raises(ProfileError, match="random:test"):
        resolve_profiles("random:test")


def test_make_pair_with_random_is_deterministic_and_new_per_image() -> None:
    a = make_pair(3, size=64, nm_per_px=4.0, profiles=[RANDOM], seed=1)
    b = make_pair(3, size=64, nm_per_px=4.0, profiles=[RANDOM], seed=1)
    c = make_pair(4, size=64, nm_per_px=4.0, profiles=[RANDOM], seed=1)
    assert np.array_equal(a.sem_image, b.sem_image) and a.tool_params == b.tool_params
    assert a.tool_params != c.tool_params
    assert a.sem_image.shape == a.layout_mask.shape == a.printed_mask.shape == (64, 64)


def test_validation_dataset_is_all_held_out(tmp_path: Path) -> None:
    manifest = json.loads(write_dataset(tmp_path, 4, size=48, profiles=resolve_profiles("random:validation"),
                                        seed=2).read_text())
    assert manifest["profile_definitions"]["random"]["split"] == "validation"
    assert all(held_out_region(item["tool_params"], RANDOM.held_out) for item in manifest["items"])


def test_cli_synth_with_a_randomized_tool_file(tmp_path: Path) -> None:
    path = tmp_path / "wide.json"
    save_randomized_tool(RandomizedTool("wide", ranges={"gamma": (0.5, 2.0)}), path)
    assert main(["synth", "--out", str(tmp_path / "d"), "--count", "2", "--size", "48",
                 "--profile", str(path)]) == 0
    items = json.loads((tmp_path / "d" / "manifest.json").read_text())["items"]
    assert [item["profile"] for item in items] == ["wide", "wide"]
    assert all(0.5 <= item["tool_params"]["gamma"] <= 2.0 for item in items)
