"""SEM simulator: determinism, printing (CD bias, LER, no vanishing features), imaging signatures."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage

from semgan.semsim import KNOBS, PROFILES, SimulationError, ToolProfile, print_layout, simulate


def _fixed(base: ToolProfile, **values: float) -> ToolProfile:
    """``base`` with every knob pinned to its range midpoint, then ``values`` pinned exactly."""
    pinned = {knob: ((lo + hi) / 2, (lo + hi) / 2) for knob, (lo, hi) in
              ((k, getattr(base, k)) for k in KNOBS)}
    pinned.update({knob: (value, value) for knob, value in values.items()})
    return replace(base, name="test", **pinned)


# A clean tool with every random nuisance switched off: only material contrast, bloom and beam.
QUIET = dict(ler_sigma_nm=0.0, background_amplitude=0.0, row_drift_amplitude=0.0,
             line_noise_amplitude=0.0, scan_jitter_px=0.0, charging_amplitude=0.0,
             detector_smear_px=0.0, dose_electrons_per_px=1e6)


def _vertical_line(size: int, width_px: int, height: int | None = None) -> np.ndarray:
    mask = np.zeros((height or size, size), bool)
    left = (size - width_px) // 2
    mask[:, left:left + width_px] = True
    return mask


def _line_array(size: int, pitch: int, cd: int, transpose: bool = False) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    for x0 in range(pitch // 2, size - cd, pitch):
        mask[:, x0:x0 + cd] = True
    return mask.T.copy() if transpose else mask


def test_same_seed_gives_identical_outputs() -> None:
    layout = _line_array(96, 24, 10)
    a = simulate(layout, 4.0, PROFILES["noisy"], 7)
    b = simulate(layout, 4.0, PROFILES["noisy"], np.random.default_rng(7))
    assert np.array_equal(a.sem_image, b.sem_image)
    assert np.array_equal(a.printed_mask, b.printed_mask)
    assert a.params == b.params


def test_different_seed_gives_a_different_image() -> None:
    layout = _line_array(96, 24, 10)
    a = simulate(layout, 4.0, PROFILES["clean"], 1)
    b = simulate(layout, 4.0, PROFILES["clean"], 2)
    assert not np.array_equal(a.sem_image, b.sem_image)


def test_sample_types_and_json_params() -> None:
    sample = simulate(_line_array(64, 20, 8), 4.0, PROFILES["aged"], 0)
    assert sample.sem_image.shape == (64, 64) and sample.sem_image.dtype == np.uint8
    assert sample.printed_mask.shape == (64, 64) and sample.printed_mask.dtype == np.bool_
    assert set(sample.params) == {*KNOBS, "scan_direction"}
    assert json.loads(json.dumps(sample.params)) == sample.params


@pytest.mark.parametrize("name", list(PROFILES))
def test_printed_cd_of_100nm_line_is_100_plus_the_profile_bias(name: str) -> None:
    # 2 µm of line: long enough that roughness averages out of the mean CD
    sample = simulate(_vertical_line(160, 100, height=2048), 1.0, PROFILES[name], 3)
    cd_nm = sample.printed_mask.sum(axis=1).mean()  # 1 nm/px: px = nm
    bias = sample.params["cd_bias_nm"]
    lo, hi = PROFILES[name].cd_bias_nm
    assert abs(cd_nm - (100.0 + bias)) < 1.5
    assert np.sign(cd_nm - 100.0) == np.sign(lo) == np.sign(hi)


def test_negative_bias_narrows_and_positive_widens_exactly() -> None:
    layout = _vertical_line(160, 100)
    rng = np.random.default_rng(0)
    narrow = _fixed(PROFILES["clean"], cd_bias_nm=-6.0, ler_sigma_nm=0.0).sample(rng)
    wide = _fixed(PROFILES["clean"], cd_bias_nm=6.0, ler_sigma_nm=0.0).sample(rng)
    assert print_layout(layout, 1.0, narrow, rng).sum(axis=1).tolist() == [94] * 160
    assert print_layout(layout, 1.0, wide, rng).sum(axis=1).tolist() == [106] * 160


def _left_edges(mask: np.ndarray) -> np.ndarray:
    return mask.argmax(axis=1).astype(float)  # first printed column of every row


def test_line_edge_roughness_matches_ler_sigma() -> None:
    layout = _vertical_line(512, 100)
    rough = simulate(layout, 1.0, _fixed(PROFILES["clean"], ler_sigma_nm=3.0,
                                         ler_correlation_nm=20.0), 4)
    smooth = simulate(layout, 1.0, _fixed(PROFILES["clean"], ler_sigma_nm=0.0), 4)
    assert _left_edges(smooth.printed_mask).std() == 0.0
    assert 2.0 < _left_edges(rough.printed_mask).std() < 4.5


def test_ler_is_correlated_along_the_edge() -> None:
    profile = _fixed(PROFILES["clean"], ler_sigma_nm=3.0, ler_correlation_nm=30.0)
    edges = _left_edges(simulate(_vertical_line(512, 100), 1.0, profile, 5).printed_mask)
    edges -= edges.mean()
    lag_5 = np.corrcoef(edges[:-5], edges[5:])[0, 1]  # 5 nm apart: far inside the 30 nm length
    lag_120 = np.corrcoef(edges[:-120], edges[120:])[0, 1]
    assert lag_5 > 0.8
    assert abs(lag_120) < 0.5


@pytest.mark.parametrize("name", list(PROFILES))
def test_40nm_contacts_all_print(name: str) -> None:
    layout = np.zeros((160, 160), bool)
    for y in range(10, 150, 25):
        for x in range(10, 150, 25):
            layout[y:y + 10, x:x + 10] = True  # 40 nm squares at 4 nm/px, pitch 100 nm
    printed = simulate(layout, 4.0, PROFILES[name], 0).printed_mask
    assert ndimage.label(printed)[1] == 36


def _rim_margin(profile: ToolProfile, seed: int = 0) -> tuple[float, dict[str, float]]:
    """Mean grey within one bloom decay length inside the edges minus the feature interior."""
    nm_per_px = 2.0
    layout = _line_array(256, 110, 80)  # 160 nm lines: a wide interior far from the rims
    sample = simulate(layout, nm_per_px, profile, seed)
    inside = ndimage.distance_transform_edt(sample.printed_mask)
    decay_px = sample.params["edge_bloom_decay_nm"] / nm_per_px
    rim = (inside > 0) & (inside <= decay_px + 0.5)
    interior = inside > 4 * decay_px + 3 * sample.params["beam_sigma_nm"] / nm_per_px
    image = sample.sem_image.astype(float)
    return image[rim].mean() - image[interior].mean(), sample.params


def test_edge_rim_is_brighter_by_the_bloom_gain() -> None:
    margin, params = _rim_margin(_fixed(PROFILES["clean"], **QUIET))
    full_bloom = 255 * params["gain"] * params["edge_bloom_gain"]
    assert 0.35 * full_bloom < margin < 0.75 * full_bloom


def test_no_bloom_means_no_bright_rim() -> None:
    margin, _ = _rim_margin(_fixed(PROFILES["clean"], **QUIET, edge_bloom_gain=0.0))
    assert margin < 0.0  # only the beam-blurred material step remains: the rim is darker


@pytest.mark.parametrize("name", ["clean", "noisy"])
def test_profile_rims_are_bright_within_noise(name: str) -> None:
    margin, params = _rim_margin(PROFILES[name], seed=1)
    assert margin > 0.25 * 255 * params["gain"] * params["edge_bloom_gain"]


def test_aged_tool_has_a_weaker_rim_than_clean() -> None:
    clean, _ = _rim_margin(PROFILES["clean"], seed=2)
    aged, _ = _rim_margin(PROFILES["aged"], seed=2)
    assert clean > 2.5 * aged


def test_material_levels_set_substrate_and_feature_grey() -> None:
    profile = _fixed(PROFILES["clean"], **QUIET, substrate_level=0.2, feature_level=0.5,
                     gain=1.0, offset=10.0)
    sample = simulate(_vertical_line(128, 80), 2.0, profile, 0)
    assert abs(sample.sem_image[:, :10].mean() - (10 + 255 * 0.2)) < 1.0
    assert abs(sample.sem_image[:, 60:68].mean() - (10 + 255 * 0.5)) < 1.0


def _flat_variance(dose: float) -> float:
    profile = _fixed(PROFILES["clean"], **{**QUIET, "dose_electrons_per_px": dose})
    return float(simulate(np.zeros((128, 128), bool), 4.0, profile, 0).sem_image.var())


def test_noise_variance_grows_as_dose_falls() -> None:
    high, low = _flat_variance(100.0), _flat_variance(10.0)
    assert low > high
    assert 6.0 < low / high < 14.0  # Poisson: variance ∝ 1 / dose


def _row_spread(sample_image: np.ndarray) -> float:
    return float(sample_image.astype(float).std(axis=0).mean())  # identical rows → 0


def test_scan_jitter_shifts_rows_only_when_enabled() -> None:
    layout = _line_array(96, 24, 10)
    still = simulate(layout, 4.0, _fixed(PROFILES["clean"], **QUIET), 0).sem_image
    shaky = simulate(layout, 4.0, _fixed(PROFILES["clean"], **{**QUIET, "scan_jitter_px": 1.0}), 0)
    assert _row_spread(still) < 0.6
    assert _row_spread(shaky.sem_image) > 5.0


def _tails(direction: str, amplitude: float) -> tuple[float, float]:
    """Mean grey of the substrate just left and just right of a central block."""
    layout = np.zeros((64, 192), bool)
    layout[:, 80:112] = True
    profile = _fixed(PROFILES["clean"], **{**QUIET, "charging_amplitude": amplitude,
                                           "charging_decay_px": 20.0, "dose_electrons_per_px": 1e4})
    image = simulate(layout, 4.0, replace(profile, scan_direction=direction), 0).sem_image.astype(float)
    return image[:, 60:74].mean(), image[:, 118:132].mean()


def test_charging_leaves_a_tail_along_the_scan_direction() -> None:
    before, after = _tails("left_to_right", 0.3)
    assert after - before > 10.0


def test_charging_tail_follows_a_reversed_scan() -> None:
    before, after = _tails("right_to_left", 0.3)
    assert before - after > 10.0


def test_no_charging_no_tail() -> None:
    before, after = _tails("left_to_right", 0.0)
    assert abs(after - before) < 1.0


def _image_stats(name: str) -> tuple[np.ndarray, np.ndarray]:
    means, contrasts = [], []
    for index, (pitch, cd) in enumerate([(20, 8), (24, 12), (30, 10), (36, 20), (28, 14), (40, 16)]):
        image = simulate(_line_array(128, pitch, cd, index % 2 == 1), 4.0, PROFILES[name], index)
        means.append(image.sem_image.mean())
        contrasts.append(image.sem_image.std())
    return np.array(means), np.array(contrasts)


def test_drifted_tool_statistics_are_several_sigma_from_clean() -> None:
    clean_mean, clean_contrast = _image_stats("clean")
    drift_mean, drift_contrast = _image_stats("drifted")
    assert abs(drift_mean.mean() - clean_mean.mean()) / clean_mean.std() > 3.0
    assert abs(drift_contrast.mean() - clean_contrast.mean()) / clean_contrast.std() > 3.0


def test_same_profile_same_cd_at_2_and_8_nm_per_px() -> None:
    profile = _fixed(PROFILES["clean"], cd_bias_nm=4.0, ler_sigma_nm=0.0)
    fine = simulate(_vertical_line(128, 48), 2.0, profile, 0).printed_mask.sum(axis=1).mean() * 2.0
    coarse = simulate(_vertical_line(64, 12), 8.0, profile, 0).printed_mask.sum(axis=1).mean() * 8.0
    assert fine == pytest.approx(100.0, abs=2.0)
    assert coarse == pytest.approx(96.0 + 4.0, abs=8.0)  # one 8 nm pixel of quantisation


def test_empty_and_full_layouts_image_without_error() -> None:
    empty = simulate(np.zeros((32, 32), bool), 4.0, PROFILES["clean"], 0)
    full = simulate(np.ones((32, 32), bool), 4.0, PROFILES["clean"], 0)
    assert not empty.printed_mask.any() and full.printed_mask.all()
    assert full.sem_image.mean() > empty.sem_image.mean()


def test_non_2d_layout_is_refused() -> None:
    with pytest.raises(SimulationError, match="2-D"):
        simulate(np.zeros((4, 32, 32), bool), 4.0, PROFILES["clean"], 0)


def test_non_positive_pixel_size_is_refused() -> None:
    with pytest.raises(SimulationError, match="nm_per_px"):
        simulate(np.zeros((32, 32), bool), 0.0, PROFILES["clean"], 0)
