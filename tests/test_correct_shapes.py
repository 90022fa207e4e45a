"""The polygon and magic-wand correction tools: their mask operations."""

from __future__ import annotations

import cv2
import numpy as np

from annotate.polygon import add_vertex, apply_polygon, closed_outline, polygon_mask, snap
from annotate.render import rectangle_mask
from annotate.wand import apply_wand, wand_region
from semgan.semsim import PROFILES
from semgan.synth import make_pair


def _clicks(points: list[tuple[int, int]], radius: int = 3) -> tuple[list, bool]:
    vertices, closed = [], False
    for point in points:
        vertices, closed = add_vertex(vertices, point, radius)
    return vertices, closed


def test_each_new_edge_is_snapped_horizontal_or_vertical() -> None:
    assert snap((10, 10), (20, 12)) == (20, 10)
    assert snap((10, 10), (12, 30)) == (10, 30)
    vertices, closed = _clicks([(2, 2), (20, 3), (21, 10), (11, 11), (10, 20), (3, 19)])
    assert vertices == [(2, 2), (20, 2), (20, 10), (11, 10), (11, 20), (3, 20)]
    assert not closed


def test_clicking_the_first_vertex_closes_an_l_shape_with_its_outline_filled() -> None:
    vertices, closed = _clicks([(2, 2), (20, 2), (20, 10), (11, 10), (11, 20), (2, 20),
                                (3, 3)])
    assert closed and len(vertices) == 6
    expected = np.zeros((24, 24), bool)
    expected[2:11, 2:21] = True  # the arm, rows 2–10 and columns 2–20 included
    expected[2:21, 2:12] = True  # the leg
    assert np.array_equal(polygon_mask((24, 24), vertices), expected)


def test_a_four_vertex_polygon_fills_what_the_rectangle_tool_fills() -> None:
    vertices, closed = _clicks([(5, 4), (30, 4), (30, 17), (5, 17), (5, 5)])
    assert closed
    assert np.array_equal(polygon_mask((40, 40), vertices),
                          rectangle_mask((40, 40), (5, 4), (30, 17)))


def test_closing_off_axis_adds_a_corner_that_turns_the_last_edge() -> None:
    assert closed_outline([(0, 0), (10, 0), (10, 8)]) == [(0, 0), (10, 0), (10, 8), (0, 8)]
    assert closed_outline([(0, 0), (0, 8), (6, 8)]) == [(0, 0), (0, 8), (6, 8), (6, 0)]


def test_straight_continuations_and_repeated_clicks_add_no_vertex() -> None:
    vertices, _ = _clicks([(0, 0), (5, 0), (9, 1), (9, 0)])
    assert vertices == [(0, 0), (9, 0)]
    vertices, closed = _clicks([(0, 0), (9, 0), (1, 1)])  # two vertices cannot close
    assert not closed and vertices == [(0, 0), (1, 0)]  # going back along the edge shortens it


def test_apply_polygon_adds_or_erases_only_inside() -> None:
    mask = np.zeros((20, 20), bool)
    mask[:, 10:] = True
    square = [(5, 5), (14, 5), (14, 14), (5, 14)]
    added = apply_polygon(mask, square, add=True)
    assert added[5:15, 5:15].all() and added.sum() == mask.sum() + 50
    erased = apply_polygon(mask, square, add=False)
    assert not erased[5:15, 10:15].any() and erased.sum() == mask.sum() - 50


def _glowing_sem(truth: np.ndarray, seed: int = 0) -> np.ndarray:
    """A synthetic SEM of ``truth``: brighter features with glowing edges, blur, noise."""
    rim = truth & ~cv2.erode(truth.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    image = np.where(truth, 120.0, 60.0) + 70.0 * rim
    image = cv2.GaussianBlur(image.astype(np.float32), (0, 0), 1.0)
    noisy = image + np.random.default_rng(seed).normal(0, 8, image.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def _error_beyond_1px(region: np.ndarray, truth: np.ndarray) -> float:
    """Fraction of ``truth``'s area wrong by more than 1 px from its edge."""
    kernel = np.ones((3, 3), np.uint8)
    band = (cv2.dilate(truth.astype(np.uint8), kernel).astype(bool)
            & ~cv2.erode(truth.astype(np.uint8), kernel).astype(bool))
    return float(((region ^ truth) & ~band).sum() / truth.sum())


def _two_features() -> tuple[np.ndarray, np.ndarray]:
    truth = np.zeros((96, 96), bool)
    line = truth.copy()
    line[10:86, 20:36] = True
    truth[10:86, 20:36] = True
    truth[30:60, 55:80] = True
    return truth, line


def test_the_wand_fills_the_clicked_feature_up_to_its_sem_edges() -> None:
    truth, line = _two_features()
    region = wand_region(_glowing_sem(truth), (28, 48))
    assert _error_beyond_1px(region, line) < 0.02
    assert not region[30:60, 55:80].any()  # the other feature is not touched


def test_the_wand_on_the_substrate_stops_at_every_feature() -> None:
    truth, _ = _two_features()
    region = wand_region(_glowing_sem(truth, seed=1), (5, 5))
    assert _error_beyond_1px(region, ~truth) < 0.02


def test_apply_wand_adds_a_missing_feature_or_erases_a_false_one() -> None:
    truth, line = _two_features()
    sem = _glowing_sem(truth, seed=2)
    missing = truth & ~line
    added = apply_wand(missing, sem, (28, 48), add=True)
    assert _error_beyond_1px(added, truth) < 0.02
    false_blob = truth.copy()
    false_blob[70:85, 60:75] = True  # pattern where the SEM shows substrate
    erased = apply_wand(false_blob, sem, (67, 78), add=False)
    assert not erased[70:85, 60:75].any() and erased[31:59, 56:79].all()


def test_the_wand_follows_simulated_cd_sem_features() -> None:
    pair = make_pair(0, size=256, nm_per_px=4.0, profiles=[PROFILES["clean"]], seed=7)
    count, labels = cv2.connectedComponents(pair.printed_mask.astype(np.uint8), connectivity=4)
    errors = []
    for label in range(1, count):
        feature = labels == label
        if feature.sum() < 2000:
            continue
        # click in the middle of the feature as a user would (the image border is no edge)
        depth = cv2.distanceTransform(np.pad(feature, 1).astype(np.uint8), cv2.DIST_L2, 3)
        y, x = np.unravel_index(np.argmax(depth[1:-1, 1:-1]), feature.shape)
        errors.append(_error_beyond_1px(wand_region(pair.sem_image, (int(x), int(y))), feature))
    assert errors and max(errors) < 0.05


def test_the_wand_outside_the_image_selects_nothing() -> None:
    assert not wand_region(np.zeros((20, 20), np.uint8), (25, 3)).any()
