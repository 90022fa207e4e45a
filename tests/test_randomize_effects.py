"""Domain randomization, imaging side: each new effect's measurable signature, pixel sizes, CD bias."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from semgan.semsim.effects import image_with_params
from semgan.semsim.imaging import render_sem
from semgan.semsim.printing import print_level
from semgan.semsim.profiles import ProfileError
from semgan.semsim.randomize import RandomizedTool, simulate_randomized

# Every nuisance off, so one effect at a time can be measured: round beam, no noise to speak of.
QUIET = dict(acquisition_nm_per_px=4.0, optical_blur_nm=8.0, cd_bias_nm=0.0, ler_sigma_nm=0.0,
             substrate_level=0.2, material_contrast=0.25, edge_bloom_gain=0.0, beam_sigma_nm=2.0,
             beam_aspect=1.0, beam_angle_deg=0.0, background_amplitude=0.0, background_gradient=0.0,
             halo_gain=0.0, row_drift_amplitude=0.0, line_noise_amplitude=0.0, scan_jitter_px=0.0,
             charging_amplitude=0.0, detector_smear_px=0.0, dose_electrons_per_px=1e5, gain=1.0,
             offset=10.0, gamma=1.0, saturation_grey=255.0)


def _pinned(**values: float) -> RandomizedTool:
    """A tool with QUIET values (then ``values``) pinned; the rest keep their default ranges."""
    ranges = {knob: (value, value) for knob, value in {**QUIET, **values}.items()}
    return RandomizedTool("pinned", ranges=ranges, held_out=(), split="all", reverse_scan_fraction=0.0)


def _image(layout: np.ndarray, seed: int = 0, **values: float) -> np.ndarray:
    return simulate_randomized(layout, 4.0, _pinned(**values), np.random.default_rng(seed))[0].astype(float)


def _pad(size: int, side: int) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    start = (size - side) // 2
    mask[start:start + side, start:start + side] = True
    return mask


def test_outputs_are_at_the_model_pixel_size() -> None:
    layout = _pad(48, 20)
    for pixel in (2.0, 8.0):
        sem, mask, params = simulate_randomized(layout, 4.0, _pinned(acquisition_nm_per_px=pixel),
                                                np.random.default_rng(0))
        assert sem.shape == mask.shape == (48, 48) and sem.dtype == np.uint8
        assert np.array_equal(mask, layout) and params["acquisition_nm_per_px"] == pixel


def test_neutral_settings_reproduce_the_named_profile_chain_bit_for_bit() -> None:
    layout = _pad(64, 30)
    noisy = dict(dose_electrons_per_px=30.0, scan_jitter_px=0.3, ler_sigma_nm=1.5, edge_bloom_gain=0.8,
                 charging_amplitude=0.1, background_amplitude=0.02, row_drift_amplitude=0.05,
                 line_noise_amplitude=0.01, detector_smear_px=0.5)
    params = _pinned(**noisy).sample(np.random.default_rng(0))
    randomized = image_with_params(layout, 4.0, params, np.random.default_rng(3)).sem_image
    rng = np.random.default_rng(3)
    named = render_sem(print_level(layout, 4.0, params, rng), 4.0, params, rng)
    assert np.array_equal(randomized, named)


def test_unusable_ranges_fail_with_a_clear_error() -> None:
    with pytest.raises(ProfileError, match="no usable all draw"):
        _pinned(dose_electrons_per_px=0.01).sample(np.random.default_rng(0))


def _edge_width(profile: np.ndarray) -> int:
    """Pixels between 10 % and 90 % of the step on the first edge of a pad profile."""
    half = profile[: len(profile) // 2]
    low, high = half[:5].mean(), profile[len(profile) // 2 - 3: len(profile) // 2 + 3].mean()
    fraction = (half - low) / (high - low)
    return int(((fraction > 0.1) & (fraction < 0.9)).sum())


def test_astigmatism_blurs_x_and_y_edges_differently() -> None:
    layout = _pad(96, 48)
    round_spot = _image(layout, beam_sigma_nm=10.0)
    across_x = _image(layout, beam_sigma_nm=10.0, beam_aspect=0.2, beam_angle_deg=0.0)
    across_y = _image(layout, beam_sigma_nm=10.0, beam_aspect=0.2, beam_angle_deg=90.0)
    assert abs(_edge_width(round_spot[48]) - _edge_width(round_spot[:, 48])) <= 1
    assert _edge_width(across_x[48]) >= _edge_width(across_x[:, 48]) + 3
    assert _edge_width(across_y[:, 48]) >= _edge_width(across_y[48]) + 3


def test_gamma_moves_the_mid_grey() -> None:
    empty = np.zeros((48, 48), bool)
    mid = dict(substrate_level=128 / 255, offset=0.0)
    assert _image(empty, **mid).mean() == pytest.approx(128, abs=1.0)
    assert _image(empty, **mid, gamma=1.5).mean() == pytest.approx(255 * 0.502**1.5, abs=1.5)
    assert _image(empty, **mid, gamma=0.7).mean() == pytest.approx(255 * 0.502**0.7, abs=1.5)


def test_saturation_clips_at_the_top() -> None:
    bright = dict(material_contrast=0.6, edge_bloom_gain=0.5)
    clipped = _image(_pad(64, 32), **bright, saturation_grey=200.0)
    free = _image(_pad(64, 32), **bright)
    assert clipped.max() == 200 and (clipped == 200).mean() > 0.15
    assert free.max() > 220


@pytest.mark.parametrize("contrast", [-0.2, 0.2])
def test_material_contrast_sign_sets_features_darker_or_brighter(contrast: float) -> None:
    image = _image(_pad(96, 48), material_contrast=contrast)
    difference = image[40:56, 40:56].mean() - image[:12, :12].mean()
    assert difference == pytest.approx(255 * contrast, abs=3.0)


def _halo_raise(layout: np.ndarray, band: np.ndarray, halo: float) -> float:
    image = _image(layout, halo_gain=halo, halo_width_nm=60.0)
    return float(image[band].mean() - image[:6, :6].mean())  # near the feature minus a far corner


def test_halo_raises_the_background_next_to_large_pads() -> None:
    pad = _pad(160, 60)
    ring = ndimage.binary_dilation(pad, iterations=10) & ~ndimage.binary_dilation(pad, iterations=4)
    line = np.zeros((160, 160), bool)
    line[50:110, 78:83] = True  # a 20 nm line as long as the pad: little feature area nearby
    line_ring = ndimage.binary_dilation(line, iterations=10) & ~ndimage.binary_dilation(line, iterations=4)
    assert abs(_halo_raise(pad, ring, 0.0)) < 1.0
    assert _halo_raise(pad, ring, 0.2) > 10.0
    assert _halo_raise(pad, ring, 0.2) > 2.5 * _halo_raise(line, line_ring, 0.2) > 0


def test_background_gradient_tilts_the_field() -> None:
    image = _image(np.zeros((64, 64), bool), background_gradient=0.2, background_gradient_angle_deg=0.0)
    assert image[:, -6:].mean() - image[:, :6].mean() == pytest.approx(255 * 0.2 * 58 / 64, rel=0.1)


def _contacts() -> np.ndarray:
    layout = np.zeros((160, 160), bool)
    for y in range(10, 150, 25):
        for x in range(10, 150, 25):
            layout[y:y + 10, x:x + 10] = True  # 40 nm squares at 4 nm/px
    return layout


@pytest.mark.parametrize(("bias", "smaller"), [(-6.0, True), (8.0, False)])
def test_cd_bias_prints_contacts_round_and_smaller_or_larger(bias: float, smaller: bool) -> None:
    layout = _contacts()
    tool = _pinned(cd_bias_nm=bias, optical_blur_nm=10.0)
    sample = image_with_params(layout, 4.0, tool.sample(np.random.default_rng(0)), np.random.default_rng(0))
    labels, count = ndimage.label(sample.printed_mask)
    assert count == 36
    area = ndimage.sum(sample.printed_mask, labels, range(1, 37)).mean()
    assert (area < 0.9 * 100) if smaller else (area > 1.1 * 100)
    boxes = ndimage.find_objects(labels)
    box_area = np.mean([(b[0].stop - b[0].start) * (b[1].stop - b[1].start) for b in boxes])
    assert area / box_area < 0.9  # a square would fill its box; a round contact fills ~π/4


def test_printed_cd_is_registered_at_any_acquisition_pixel_size() -> None:
    layout = np.zeros((32, 96), bool)
    layout[:, 30:55] = True  # 100 nm at the model's 4 nm/px
    widths = []
    for pixel in (2.0, 3.3, 4.0, 6.1, 8.0):
        sample = image_with_params(layout, 4.0, _pinned(acquisition_nm_per_px=pixel).sample(
            np.random.default_rng(0)), np.random.default_rng(0))
        widths.append(sample.printed_mask.sum(axis=1).mean())
        assert sample.printed_mask[:, 30:55].all()
    assert max(widths) - min(widths) <= 1.0


def test_coarse_pixels_give_softer_edges_at_the_model_pixel_size() -> None:
    layout = _pad(96, 48)
    fine = _image(layout, acquisition_nm_per_px=2.0, beam_sigma_nm=1.0, optical_blur_nm=4.0)
    coarse = _image(layout, acquisition_nm_per_px=8.0, beam_sigma_nm=1.0, optical_blur_nm=4.0)
    assert _edge_width(coarse[48]) > _edge_width(fine[48])


