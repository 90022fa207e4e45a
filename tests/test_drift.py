"""Drift features, reference profiles, per-image scores and the alarm."""

import json
import math

import numpy as np
import pytest
from scipy import ndimage

from semgan.drift import (
    DriftConfig,
    DriftError,
    PixelSizeMismatchError,
    ReferenceProfile,
    alarm,
    build_reference,
    image_features,
    kl_divergence,
    score,
)

NM = 4.0


def sem_like(seed: int) -> np.ndarray:
    """64×64 image of random bright rectangles with rims on a dark substrate, blurred and noisy."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((64, 64), bool)
    for _ in range(4):
        top, left = rng.integers(0, 48, 2)
        mask[top : top + rng.integers(8, 16), left : left + rng.integers(8, 16)] = True
    rim = mask & ~ndimage.binary_erosion(mask)
    image = 0.25 + 0.25 * mask + 0.25 * rim
    image = ndimage.gaussian_filter(image, 0.8) + rng.normal(0.0, 0.03, mask.shape)
    return np.clip(image, 0.0, 1.0)


@pytest.fixture(scope="module")
def reference() -> ReferenceProfile:
    return build_reference((sem_like(seed) for seed in range(30)), NM)


def test_edge_density_of_a_flat_image_is_zero():
    assert image_features(np.full((32, 32), 0.4), NM)["edge_density"] == 0.0


def test_edge_density_of_a_unit_step_is_four_columns_at_4nm():
    image = np.zeros((32, 32))
    image[:, 16:] = 1.0
    assert image_features(image, NM) == {"mean_intensity": 0.5, "contrast": 0.5, "edge_density": 0.125}


def test_uint8_features_equal_float_features():
    image = np.round(sem_like(1) * 255).astype(np.uint8)
    assert image_features(image, NM) == pytest.approx(image_features(image / 255.0, NM))


def test_image_from_the_same_distribution_is_not_flagged(reference):
    result = score(sem_like(100), NM, reference)
    assert (result.flagged, result.reasons) == (False, ())


def test_darker_image_is_flagged_for_mean_intensity(reference):
    result = score(sem_like(101) * 0.6, NM, reference)
    assert result.flagged and any(reason.startswith("mean_intensity") for reason in result.reasons)


def test_low_contrast_image_is_flagged_for_contrast(reference):
    image = sem_like(102)
    flat = image.mean() + (image - image.mean()) * 0.3
    assert any(reason.startswith("contrast") for reason in score(flat, NM, reference).reasons)


def test_histogram_shift_gives_kl_above_threshold(reference):
    result = score(np.clip(sem_like(103) + 0.2, 0.0, 1.0), NM, reference)
    assert result.kl > DriftConfig().kl_threshold and "histogram_kl" in result.reasons[-1]


def test_kl_with_empty_bins_is_finite():
    assert math.isfinite(kl_divergence(np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0])))


def test_kl_of_identical_histograms_is_zero():
    assert kl_divergence(np.array([0.2, 0.3, 0.5]), np.array([0.2, 0.3, 0.5])) == pytest.approx(0.0, abs=1e-12)


def test_constant_reference_feature_gives_finite_z():
    constant = build_reference([np.full((16, 16), 0.5)] * 3, NM)
    result = score(np.full((16, 16), 0.6), NM, constant)
    assert result.z["mean_intensity"] == pytest.approx(0.1 / DriftConfig().std_floor)


def test_pixel_size_mismatch_raises(reference):
    with pytest.raises(PixelSizeMismatchError):
        score(sem_like(104), 2.0, reference)


def test_reference_survives_json_round_trip(reference):
    assert ReferenceProfile.from_dict(json.loads(json.dumps(reference.to_dict()))) == reference


def test_malformed_reference_raises():
    with pytest.raises(DriftError):
        ReferenceProfile.from_dict({"means": {}, "stds": {}, "histogram": [], "n_images": 0})


def test_build_reference_without_images_raises():
    with pytest.raises(DriftError):
        build_reference([], NM)


def test_score_serialises_to_json(reference):
    data = json.loads(json.dumps(score(sem_like(105) * 0.6, NM, reference).to_dict()))
    assert (sorted(data), data["flagged"]) == (
        ["features", "flagged", "kl", "max_abs_z", "reasons", "z"],
        True,
    )


def test_alarm_when_five_of_last_ten_flagged():
    assert alarm([False] * 5 + [True, False, True, True, False, True, True], DriftConfig()) is True


def test_no_alarm_with_four_of_last_ten_flagged():
    assert alarm([True] * 10 + [False] * 6 + [True] * 4, DriftConfig()) is False


def test_no_alarm_on_an_empty_history():
    assert alarm([], DriftConfig()) is False
