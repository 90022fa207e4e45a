"""The classical Otsu + morphology baseline on synthetic SEM-like images."""

import numpy as np
import pytest
from scipy import ndimage

from semgan.baseline import BaselineError, otsu_baseline
from semgan.metrics import iou

NM = 4.0


def sem_like(mask: np.ndarray, seed: int, noise: float = 0.04) -> np.ndarray:
    """Grey interior above a dark substrate, a bright rim just inside each edge, blur and noise."""
    inside = ndimage.distance_transform_edt(np.pad(mask, 1, mode="edge"))[1:-1, 1:-1]
    image = 0.2 + 0.25 * mask + 0.35 * mask * np.exp(-(inside - 1) / 1.5)
    image = ndimage.gaussian_filter(image, 0.8)
    image += np.random.default_rng(seed).normal(0.0, noise, mask.shape)
    return np.clip(image, 0.0, 1.0)


def rectangle(shape=(96, 96), rows=(20, 70), cols=(30, 80)) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[rows[0] : rows[1], cols[0] : cols[1]] = True
    return mask


def test_rimmed_rectangle_is_recovered():
    truth = rectangle()
    assert iou(otsu_baseline(sem_like(truth, 0), NM), truth) >= 0.8


def test_line_cut_by_the_image_border_is_filled():
    truth = rectangle(rows=(0, 96), cols=(30, 50))
    assert iou(otsu_baseline(sem_like(truth, 1), NM), truth) >= 0.8


def test_hole_in_a_ring_stays_open():
    truth = rectangle()
    truth[35:55, 45:65] = False
    result = otsu_baseline(sem_like(truth, 2), NM)
    assert result[38:52, 48:62].mean() < 0.1


def test_bright_specks_below_min_area_are_dropped():
    truth = rectangle()
    image = sem_like(truth, 3)
    image[85:87, 5:7] = 1.0  # a 2×2 px charging spark: 64 nm²
    assert not otsu_baseline(image, NM)[80:90, 0:10].any()


def test_uint8_input_matches_float_input():
    image = sem_like(rectangle(), 4)
    as_uint8 = np.round(image * 255).astype(np.uint8)
    assert np.array_equal(otsu_baseline(as_uint8, NM), otsu_baseline(as_uint8 / 255.0, NM))


def test_flat_image_gives_an_empty_mask():
    assert not otsu_baseline(np.full((32, 32), 0.5), NM).any()


def test_nonpositive_pixel_size_raises():
    with pytest.raises(BaselineError):
        otsu_baseline(sem_like(rectangle(), 5), 0.0)
