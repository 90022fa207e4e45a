"""One-click correction tools: delete/fill a region, keep a region, threshold in a box, move edges."""

from __future__ import annotations

import numpy as np

from annotate.editing import flip_region, keep_region, move_region_edges, region_at
from annotate.threshold import bright_side, noise_deviation, threshold_in_box
from semgan.metrics import iou


def _two_lines() -> np.ndarray:
    mask = np.zeros((20, 20), bool)
    mask[2:18, 3:6] = True  # line A
    mask[2:18, 12:15] = True  # line B
    return mask


def test_region_at_is_the_connected_pattern_under_the_point():
    region = region_at(_two_lines(), (4, 10))
    assert region.sum() == 16 * 3 and region[10, 4] and not region[10, 13]


def test_flip_region_deletes_a_line_and_fills_a_hole():
    mask = _two_lines()
    assert flip_region(mask, (13, 5)).sum() == 16 * 3  # line B gone
    holed = mask.copy()
    holed[8:10, 4] = False
    assert np.array_equal(flip_region(holed, (4, 8)), mask)  # the hole is filled


def test_keep_region_removes_every_other_region_and_ignores_a_gap_click():
    mask = _two_lines()
    kept = keep_region(mask, (13, 5))
    assert kept.sum() == 16 * 3 and kept[10, 13] and not kept[10, 4]
    assert np.array_equal(keep_region(mask, (9, 10)), mask)


def test_threshold_in_box_redraws_the_box_from_the_sem_only():
    truth = _two_lines()
    sem = np.where(truth, 180, 60).astype(np.uint8)
    wrong = truth.copy()
    wrong[4:16, 12:15] = False  # line B mostly missing
    wrong[0, 0] = True  # a speck outside the box stays
    fixed = threshold_in_box(wrong, sem, (10, 2), (17, 18))
    assert np.array_equal(fixed[2:19, 10:18], truth[2:19, 10:18])
    assert fixed[0, 0]


def test_threshold_in_box_keeps_the_polarity_of_the_current_mask():
    truth = _two_lines()
    dark_lines = np.where(truth, 40, 200).astype(np.uint8)  # pattern darker than the substrate
    fixed = threshold_in_box(truth, dark_lines, (0, 0), (19, 19))
    assert np.array_equal(fixed, truth)


def test_threshold_in_box_other_side_takes_the_opposite_polarity():
    truth = _two_lines()
    sem = np.where(truth, 180, 60).astype(np.uint8)
    assert np.array_equal(threshold_in_box(truth, sem, (0, 0), (19, 19), invert=True), ~truth)
    empty = np.zeros_like(truth)  # nothing to agree with: the minority side is pattern
    assert np.array_equal(threshold_in_box(empty, sem, (0, 0), (19, 19)), truth)


def _noisy_lines_on_a_gradient(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Dark 8 px lines (contrast 30 grey levels) under noise of σ 12 and a 60-level ramp."""
    truth = np.zeros((128, 128), bool)
    for x0 in range(8, 120, 24):
        truth[10:118, x0:x0 + 8] = True
    ramp = np.linspace(0, 60, 128)[None, :] + np.zeros((128, 1))
    rng = np.random.default_rng(seed)
    sem = 120 + ramp - 30 * truth + rng.normal(0, 12, truth.shape)
    return np.clip(sem, 0, 255).astype(np.uint8), truth


def test_noise_deviation_measures_white_noise():
    rng = np.random.default_rng(1)
    assert abs(noise_deviation(rng.normal(100, 10, (64, 64)).astype(np.float32)) - 10) < 1.0


def test_threshold_in_box_follows_the_levels_through_noise_and_a_gradient():
    sem, truth = _noisy_lines_on_a_gradient()
    # plain Otsu of the raw pixels: the ramp and the noise decide, not the lines
    from skimage.filters import threshold_otsu
    plain = sem < threshold_otsu(sem)
    assert iou(plain, truth) < 0.5
    fixed = threshold_in_box(truth, sem, (0, 0), (127, 127))
    assert iou(fixed, truth) > 0.85
    assert not bright_side(sem)[truth].mean() > 0.1  # the lines are on the dark side


def test_bright_side_of_a_flat_box_is_empty():
    assert not bright_side(np.full((30, 30), 77, np.uint8)).any()


def test_move_region_edges_grows_and_shrinks_only_the_clicked_line():
    mask = _two_lines()
    grown = move_region_edges(mask, (4, 10), 4.0, nm_per_px=2.0)  # 2 px out
    assert grown[2:18, 1:8].all() and not grown[10, 0] and not grown[10, 8]
    assert np.array_equal(grown[:, 10:], mask[:, 10:])
    shrunk = move_region_edges(mask, (13, 10), -2.0, nm_per_px=2.0)  # 1 px in
    assert shrunk[:, 10:].sum() == 14 * 1
    assert np.array_equal(move_region_edges(mask, (9, 10), 4.0, 2.0), mask)  # a gap: unchanged
