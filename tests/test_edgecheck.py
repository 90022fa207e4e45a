"""Edge-support check: invented outlines (no grey-level step in the SEM) are undone, real ones kept."""

from __future__ import annotations

import numpy as np
import pytest

from semgan.edgecheck import EdgeCheckConfig, EdgeCheckError, edge_support_check, noise_sigma

SIZE = 160


def _sem(pattern: np.ndarray, shading: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """SEM-like image: pattern 0.7, space 0.3, slightly blurred steps, optional shading, noise."""
    import cv2

    image = np.where(pattern, 0.7, 0.3).astype(np.float32)
    image = cv2.GaussianBlur(image, (0, 0), 1.5)
    if shading is not None:
        image = image - shading
    rng = np.random.default_rng(seed)
    return (image + rng.normal(0, 0.06, image.shape)).astype(np.float32)


def _wide_line() -> np.ndarray:
    pattern = np.zeros((SIZE, SIZE), bool)
    pattern[:, 30:130] = True  # wide metal, 100 px
    return pattern


def _dip(center: tuple[int, int], width: float, depth: float) -> np.ndarray:
    yy, xx = np.mgrid[:SIZE, :SIZE]
    return depth * np.exp(-((yy - center[0]) ** 2 + (xx - center[1]) ** 2) / (2 * width**2))


def test_correct_mask_of_real_edges_is_kept() -> None:
    pattern = _wide_line()
    pattern[40:60, 140:150] = True  # a small contact beside it
    pattern[70:90, 70:90] = False  # a real slot in the wide metal: a hole with real edges
    result = edge_support_check(_sem(pattern), pattern)
    assert result.regions == 0 and not result.flipped.any()
    assert np.array_equal(result.mask, pattern)


def test_hole_invented_by_shading_inside_wide_metal_is_filled() -> None:
    pattern = _wide_line()
    sem = _sem(pattern, shading=_dip((80, 80), 25, 0.3))  # interior darkened to space level
    predicted = pattern.copy()
    predicted[60:100, 60:100] = False  # the generator read the dark interior as space
    result = edge_support_check(sem, predicted)
    assert result.regions == 1
    assert np.array_equal(result.mask, pattern)
    assert result.flipped.sum() == 40 * 40


def test_speck_on_flat_background_is_removed_and_border_strip_too() -> None:
    pattern = np.zeros((SIZE, SIZE), bool)
    pattern[20:60, 20:60] = True
    predicted = pattern.copy()
    predicted[100:112, 100:112] = True  # speck with no feature under it
    predicted[:, SIZE - 6:] = True  # strip along the image border, the other side of a real region
    result = edge_support_check(_sem(pattern), predicted)
    assert np.array_equal(result.mask, pattern)
    assert result.regions == 2


def test_only_the_unsupported_side_of_an_invented_outline_flips() -> None:
    """The space region touching the invented strip also owns the real square's outline: the strip
    has less support, so it flips and the space stays space (a flip of both would swap them)."""
    pattern = np.zeros((SIZE, SIZE), bool)
    pattern[40:120, 40:120] = True
    predicted = pattern.copy()
    predicted[:, :25] = True  # invented strip: its only outline is invented
    result = edge_support_check(_sem(pattern), predicted)
    assert np.array_equal(result.mask, pattern)


@pytest.mark.parametrize(("gain", "offset"), [(2.5, -0.2), (-1.0, 1.0), (0.2, 0.5)])
def test_result_does_not_depend_on_the_tools_gain_or_offset(gain: float, offset: float) -> None:
    pattern = _wide_line()
    sem = _sem(pattern, shading=_dip((80, 80), 25, 0.3))
    predicted = pattern.copy()
    predicted[60:100, 60:100] = False
    reference = edge_support_check(sem, predicted)
    scaled = edge_support_check(sem * gain + offset, predicted)
    assert np.array_equal(scaled.mask, reference.mask)


def test_weak_but_real_edges_of_a_noisy_tool_are_kept() -> None:
    """Contrast 0.4 under noise σ 0.06 (the noisy profile's worst case is about this): kept."""
    pattern = np.zeros((SIZE, SIZE), bool)
    for x in range(10, SIZE - 10, 24):
        pattern[20:140, x:x + 10] = True  # 40 nm lines at 4 nm/px
    result = edge_support_check(_sem(pattern, seed=3), pattern)
    assert result.regions == 0


def test_an_image_whose_edges_drown_in_noise_is_left_alone() -> None:
    """Contrast 0.1 under noise σ 0.25 (a low-dose, inverted-contrast tool): the strongest edges are
    below half the noise, true outlines would fail the test, so the check skips the image."""
    import cv2

    pattern = np.zeros((SIZE, SIZE), bool)
    for x in range(10, SIZE - 10, 30):
        pattern[20:140, x:x + 14] = True
    image = cv2.GaussianBlur(np.where(pattern, 0.2, 0.3).astype(np.float32), (0, 0), 1.5)
    image += np.random.default_rng(4).normal(0, 0.25, image.shape).astype(np.float32)
    predicted = pattern.copy()
    predicted[60:80, 60:80] = ~predicted[60:80, 60:80]  # even a real error is not judged
    result = edge_support_check(image, predicted)
    assert result.skipped and result.regions == 0
    assert np.array_equal(result.mask, predicted)
    assert not edge_support_check(image, predicted, EdgeCheckConfig(min_edge_snr=0.0)).skipped


def test_disabled_uniform_and_invalid_inputs() -> None:
    pattern = _wide_line()
    predicted = pattern.copy()
    predicted[60:100, 60:100] = False
    sem = _sem(pattern, shading=_dip((80, 80), 25, 0.3))
    off = edge_support_check(sem, predicted, EdgeCheckConfig(enabled=False))
    assert off.regions == 0 and np.array_equal(off.mask, predicted)
    uniform = edge_support_check(sem, np.ones_like(predicted))  # no outline: nothing to check
    assert uniform.regions == 0 and uniform.mask.all()
    flat = edge_support_check(np.full((32, 32), 0.5, np.float32), np.eye(32, dtype=bool))
    assert noise_sigma(np.full((32, 32), 0.5, np.float32)) == 0
    assert flat.mask.shape == (32, 32)  # zero noise: defined, no division by zero
    with pytest.raises(EdgeCheckError, match="differ in shape"):
        edge_support_check(sem, predicted[:-1])
    with pytest.raises(EdgeCheckError, match="invalid edge-check settings"):
        EdgeCheckConfig(min_support=1.5)
    with pytest.raises(EdgeCheckError, match="invalid edge-check settings"):
        EdgeCheckConfig(max_rounds=0)
