"""Tool profiles: registry, sampling, JSON round trip and validation errors."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from semgan.errors import SemganError
from semgan.semsim import (
    KNOBS,
    PROFILES,
    TRAINING_PROFILES,
    ProfileError,
    ToolProfile,
    get_profile,
    load_profile,
    save_profile,
)


def test_registry_has_the_four_named_tools() -> None:
    assert list(PROFILES) == ["clean", "noisy", "aged", "drifted"]
    assert TRAINING_PROFILES == ("clean", "noisy", "aged")


def test_profile_error_is_a_semgan_error() -> None:
    assert issubclass(ProfileError, SemganError)


@pytest.mark.parametrize("name", list(PROFILES))
def test_dict_round_trip_is_equal(name: str) -> None:
    profile = PROFILES[name]
    assert ToolProfile.from_dict(json.loads(json.dumps(profile.to_dict()))) == profile


def test_json_file_round_trip_is_equal(tmp_path: Path) -> None:
    path = tmp_path / "tool.json"
    save_profile(PROFILES["aged"], path)
    assert load_profile(path) == PROFILES["aged"]
    assert get_profile(path) == PROFILES["aged"]
    assert get_profile(str(path)) == PROFILES["aged"]


def test_get_profile_by_name() -> None:
    assert get_profile("noisy") is PROFILES["noisy"]


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(ProfileError, match="clean, noisy, aged, drifted"):
        get_profile("sem-tool-7")


def test_sample_is_within_ranges_and_seeded() -> None:
    profile = PROFILES["noisy"]
    first = profile.sample(np.random.default_rng(3))
    assert first == profile.sample(np.random.default_rng(3))
    for knob in KNOBS:
        lo, hi = getattr(profile, knob)
        assert lo <= first[knob] <= hi
    assert first["scan_direction"] == 1.0


def test_degenerate_range_samples_its_value() -> None:
    profile = replace(PROFILES["clean"], dose_electrons_per_px=(12.5, 12.5))
    assert profile.sample(np.random.default_rng(0))["dose_electrons_per_px"] == 12.5


def test_a_single_number_means_a_fixed_value() -> None:
    data = PROFILES["clean"].to_dict() | {"gain": 0.9}
    assert ToolProfile.from_dict(data).gain == (0.9, 0.9)


def test_unknown_key_is_refused() -> None:
    data = PROFILES["clean"].to_dict() | {"beam_sigma": [1, 2]}
    with pytest.raises(ProfileError, match="beam_sigma"):
        ToolProfile.from_dict(data)


def test_missing_key_is_refused() -> None:
    data = PROFILES["clean"].to_dict()
    del data["dose_electrons_per_px"]
    with pytest.raises(ProfileError, match="dose_electrons_per_px"):
        ToolProfile.from_dict(data)


def test_low_above_high_is_refused() -> None:
    data = PROFILES["clean"].to_dict() | {"beam_sigma_nm": [4.0, 2.0]}
    with pytest.raises(ProfileError, match=r"beam_sigma_nm: low 4\.0 is above high 2\.0"):
        ToolProfile.from_dict(data)


def test_negative_dose_is_refused() -> None:
    data = PROFILES["clean"].to_dict() | {"dose_electrons_per_px": [-5, 10]}
    with pytest.raises(ProfileError, match="dose_electrons_per_px"):
        ToolProfile.from_dict(data)


def test_grey_levels_in_place_of_yield_are_refused() -> None:
    with pytest.raises(ProfileError, match=r"substrate_level .* outside the allowed \[0.0, 1.0\]"):
        replace(PROFILES["clean"], substrate_level=(50, 60))


def test_non_numeric_range_is_refused() -> None:
    data = PROFILES["clean"].to_dict() | {"gain": ["high", "low"]}
    with pytest.raises(ProfileError, match="gain"):
        ToolProfile.from_dict(data)


def test_unknown_scan_direction_is_refused() -> None:
    with pytest.raises(ProfileError, match="top_to_bottom"):
        replace(PROFILES["clean"], scan_direction="top_to_bottom")


def test_malformed_json_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{\n  "name": "x",\n  oops\n}')
    with pytest.raises(ProfileError, match=r"bad\.json: not valid JSON \(line 3"):
        load_profile(path)


def test_bad_value_in_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "tool.json"
    path.write_text(json.dumps(PROFILES["clean"].to_dict() | {"gain": [2.0, 1.0]}))
    with pytest.raises(ProfileError, match=r"tool\.json: .*gain"):
        get_profile(path)


def test_missing_file_is_a_profile_error(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="does not exist"):
        get_profile(tmp_path / "nope.json")


def test_json_array_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "list.json"
    path.write_text("[1, 2]")
    with pytest.raises(ProfileError, match="JSON object"):
        load_profile(path)
