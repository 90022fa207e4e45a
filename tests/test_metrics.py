"""Metrics on hand-made masks with known answers, and agreement with scikit-image."""

import math

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from semgan.edge_metrics import (
    _segment_distance,
    cd_error,
    distance_to_edges,
    edge_placement_error,
    edgels,
)
from semgan.metric_inputs import MetricError
from semgan.metrics import aggregate, evaluate_pair, iou, l1, psnr, ssim

NM = 4.0  # nm per pixel in these tests


def vertical_line(left: int, width: int, shape=(64, 64), top: int = 0, bottom: int | None = None):
    mask = np.zeros(shape, bool)
    mask[top : bottom if bottom is not None else shape[0], left : left + width] = True
    return mask


def random_image(seed: int, shape=(48, 40)) -> np.ndarray:
    return np.random.default_rng(seed).random(shape)


def structured_image(shift: int) -> np.ndarray:
    image = np.full((64, 64), 0.2)
    image[10:50, 12 + shift : 30 + shift] = 0.8
    image[30:40, 5:60] = 0.5
    return image


# --- screening metrics ---------------------------------------------------------------------


def test_l1_is_mean_absolute_error():
    assert l1(np.full((4, 4), 0.25), np.full((4, 4), 0.75)) == pytest.approx(0.5)


def test_l1_scales_uint8_to_unit_range():
    assert l1(np.full((4, 4), 255, np.uint8), np.zeros((4, 4), np.uint8)) == pytest.approx(1.0)


def test_psnr_agrees_with_skimage_on_random_images():
    a, b = random_image(1), random_image(2)
    assert psnr(a, b) == pytest.approx(peak_signal_noise_ratio(b, a, data_range=1.0), abs=1e-4)


def test_psnr_agrees_with_skimage_on_structured_images():
    a, b = structured_image(0), structured_image(3)
    assert psnr(a, b) == pytest.approx(peak_signal_noise_ratio(b, a, data_range=1.0), abs=1e-4)


def test_psnr_of_identical_images_is_infinite():
    assert psnr(structured_image(0), structured_image(0)) == math.inf


def test_ssim_agrees_with_skimage_on_random_images():
    a, b = random_image(3), random_image(4)
    assert ssim(a, b) == pytest.approx(structural_similarity(a, b, data_range=1.0), abs=1e-4)


def test_ssim_agrees_with_skimage_on_structured_images():
    a, b = structured_image(0), structured_image(2)
    assert ssim(a, b) == pytest.approx(structural_similarity(a, b, data_range=1.0), abs=1e-4)


def test_ssim_of_uint8_equals_ssim_of_scaled_float():
    a = (random_image(5) * 255).astype(np.uint8)
    b = (random_image(6) * 255).astype(np.uint8)
    assert ssim(a, b) == pytest.approx(ssim(a / 255.0, b / 255.0), abs=1e-12)


def test_shape_mismatch_raises():
    with pytest.raises(MetricError):
        l1(np.zeros((4, 4)), np.zeros((4, 5)))


def test_float_image_outside_unit_range_raises():
    with pytest.raises(MetricError):
        l1(np.full((4, 4), -0.5), np.zeros((4, 4)))


def test_ssim_on_too_small_image_raises():
    with pytest.raises(MetricError):
        ssim(np.zeros((5, 5)), np.zeros((5, 5)))


# --- IoU -----------------------------------------------------------------------------------


def test_iou_identical_masks_is_one():
    assert iou(vertical_line(10, 6), vertical_line(10, 6)) == 1.0


def test_iou_disjoint_masks_is_zero():
    assert iou(vertical_line(10, 6), vertical_line(30, 6)) == 0.0


def test_iou_half_overlap():
    # 6 px wide lines overlapping by 3 px: 3 / 9.
    assert iou(vertical_line(10, 6), vertical_line(13, 6)) == pytest.approx(1 / 3)


def test_iou_both_empty_is_one():
    assert iou(np.zeros((8, 8), bool), np.zeros((8, 8), bool)) == 1.0


# --- EPE -----------------------------------------------------------------------------------


def test_epe_vertical_line_shifted_two_px():
    result = edge_placement_error(vertical_line(22, 10), vertical_line(20, 10), NM)
    assert (result.mean_nm, result.pred_to_true_mean_nm, result.true_to_pred_mean_nm) == (8.0, 8.0, 8.0)


def test_epe_horizontal_line_shifted_two_px():
    result = edge_placement_error(vertical_line(22, 10).T, vertical_line(20, 10).T, NM)
    assert (result.mean_nm, result.pred_to_true_mean_nm, result.true_to_pred_mean_nm) == (8.0, 8.0, 8.0)


def test_epe_counts_edges_of_both_masks():
    # Two full-height edges of 64 edgels per mask; the image border is not an edge.
    assert edge_placement_error(vertical_line(22, 10), vertical_line(20, 10), NM).n_edges == 256


def test_epe_identical_masks_is_zero():
    mask = vertical_line(20, 10, top=8, bottom=50)
    result = edge_placement_error(mask, mask, NM)
    assert (result.mean_nm, result.p95_nm, result.max_nm) == (0.0, 0.0, 0.0)


def test_epe_p95_catches_one_shifted_line_in_ten():
    true = np.zeros((32, 200), bool)
    for left in range(4, 200, 20):
        true[:, left : left + 6] = True
    pred = true.copy()
    pred[:, 4:10], pred[:, 6:12] = False, True  # first line shifted by 2 px: 10 % of the edges
    result = edge_placement_error(pred, true, NM)
    assert (result.mean_nm, result.p95_nm, result.max_nm) == (pytest.approx(0.8), 8.0, 8.0)


def test_epe_p95_ignores_one_shifted_line_in_forty():
    true = np.zeros((16, 800), bool)
    for left in range(4, 800, 20):
        true[:, left : left + 6] = True
    pred = true.copy()
    pred[:, 4:10], pred[:, 6:12] = False, True  # 2.5 % of the edges
    result = edge_placement_error(pred, true, NM)
    assert (result.p95_nm, result.max_nm) == (0.0, 8.0)


def test_epe_empty_prediction_is_infinite_and_flagged():
    result = edge_placement_error(np.zeros((16, 16), bool), vertical_line(4, 4, (16, 16)), NM)
    assert (result.mean_nm, result.missing_edges) == (math.inf, True)


def test_epe_both_empty_is_zero():
    empty = np.zeros((16, 16), bool)
    assert edge_placement_error(empty, empty, NM).mean_nm == 0.0


def test_edge_distance_matches_brute_force_on_random_masks():
    rng = np.random.default_rng(7)
    a, b = rng.random((24, 24)) > 0.7, rng.random((24, 24)) > 0.9
    (pa, _), (pb, kb) = edgels(a), edgels(b)
    brute = _segment_distance(pa[:, None, :], pb[None, :, :], kb[None, :]).min(axis=1)
    np.testing.assert_allclose(distance_to_edges(pa, pb, kb), brute, atol=1e-12)


def test_epe_rejects_nonpositive_pixel_size():
    with pytest.raises(MetricError):
        edge_placement_error(vertical_line(20, 10), vertical_line(20, 10), 0.0)


# --- CD error ------------------------------------------------------------------------------


def test_cd_line_two_px_wider_is_plus_two_px():
    result = cd_error(vertical_line(19, 12), vertical_line(20, 10), NM)
    assert {cut.error_nm for cut in result.cuts} == {8.0}


def test_cd_line_two_px_narrower_is_minus_two_px():
    assert cd_error(vertical_line(21, 8), vertical_line(20, 10), NM).mean_error_nm == -8.0


def test_cd_horizontal_line_two_px_wider_is_plus_two_px():
    result = cd_error(vertical_line(19, 12).T, vertical_line(20, 10).T, NM)
    assert (result.mean_error_nm, {cut.line_direction for cut in result.cuts}) == (8.0, {"horizontal"})


def test_cd_identical_masks_is_zero():
    mask = vertical_line(20, 10, top=4, bottom=60)
    result = cd_error(mask, mask, NM)
    assert (result.mean_error_nm, result.mean_abs_error_nm, result.p95_abs_error_nm) == (0.0, 0.0, 0.0)


def test_cd_places_three_cuts_one_width_from_the_line_ends():
    result = cd_error(vertical_line(20, 10, top=4, bottom=60), vertical_line(20, 10, top=4, bottom=60), NM)
    assert [cut.cut_px for cut in result.cuts] == [14, 32, 49]


def test_cd_reports_true_width_and_position_per_cut():
    cut = cd_error(vertical_line(19, 12), vertical_line(20, 10), NM).cuts[0]
    assert (cut.true_start_px, cut.true_stop_px, cut.true_width_nm, cut.pred_width_nm) == (20, 30, 40.0, 48.0)


def test_cd_missing_line_counts_as_zero_width():
    assert cd_error(np.zeros((64, 64), bool), vertical_line(20, 10), NM).mean_error_nm == -40.0


def test_cd_square_has_no_cuts():
    square = np.zeros((64, 64), bool)
    square[20:30, 20:30] = True
    result = cd_error(square, square, NM)
    assert (result.n_cuts, math.isnan(result.mean_error_nm)) == (0, True)


def test_cd_p95_over_mixed_cuts():
    true = np.zeros((64, 128), bool)
    pred = np.zeros((64, 128), bool)
    for index, left in enumerate(range(4, 124, 12)):  # 10 vertical lines, 3 cuts each
        true[:, left : left + 6] = True
        pred[:, left : left + (8 if index == 0 else 6)] = True  # first line 2 px wider
    result = cd_error(pred, true, NM)
    assert (result.n_cuts, result.mean_error_nm, result.p95_abs_error_nm) == (30, pytest.approx(0.8), 8.0)


# --- evaluate_pair and aggregate -----------------------------------------------------------


def test_evaluate_pair_perfect_prediction():
    mask = vertical_line(20, 10, top=4, bottom=60)
    row = evaluate_pair(mask.astype(np.float32), mask, mask, NM)
    assert row == {
        "l1": 0.0,
        "ssim": 1.0,
        "psnr": math.inf,
        "iou": 1.0,
        "epe_mean_nm": 0.0,
        "epe_p95_nm": 0.0,
        "cd_error_nm": 0.0,
        "cd_abs_error_nm": 0.0,
    }


def test_aggregate_ignores_nan_and_counts_rows():
    rows = [{"iou": 0.5, "cd_error_nm": math.nan}, {"iou": 1.0, "cd_error_nm": 4.0}]
    assert aggregate(rows) == {"iou": 0.75, "cd_error_nm": 4.0, "count": 2.0}
