"""Copy box to matches: one corrected contact repeated wherever the SEM shows one."""

from __future__ import annotations

import numpy as np
import pytest

from annotate import correct_tools as tools
from annotate.correct_clicks import apply_tool
from annotate.stamp import StampError, copy_to_matches
from semgan.metrics import iou

SIZE, PITCH, CONTACT = 128, 24, 10


def _contacts(origin: tuple[int, int] = (8, 8), rows: int = 4, cols: int = 4) -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), bool)
    for row in range(rows):
        for col in range(cols):
            y, x = origin[1] + row * PITCH, origin[0] + col * PITCH
            mask[y:y + CONTACT, x:x + CONTACT] = True
    return mask


def _sem(layout: np.ndarray, noise: float = 25.0, seed: int = 0, shift_x: int = 0) -> np.ndarray:
    """Dark features on a bright substrate, blurred and noisy; ``shift_x`` moves the SEM's
    features off the layout (a scan lag)."""
    import cv2

    rng = np.random.default_rng(seed)
    image = np.where(np.roll(layout, shift_x, axis=1), 70.0, 170.0).astype(np.float32)
    image = cv2.GaussianBlur(image, (0, 0), 1.2) + rng.normal(0, noise, layout.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def _printed(truth: np.ndarray, seed: int = 1) -> np.ndarray:
    """What a threshold draws: each contact rounder and smaller, with a speck beside some."""
    rng = np.random.default_rng(seed)
    mask = truth.copy()
    for y in range(8, 8 + 4 * PITCH, PITCH):
        for x in range(8, 8 + 4 * PITCH, PITCH):
            if not truth[y + 1, x + 1]:
                continue
            mask[y, x:x + CONTACT] = mask[y + CONTACT - 1, x:x + CONTACT] = False
            mask[y:y + CONTACT, x] = False
            if rng.random() < 0.5:
                mask[y - 3:y - 1, x + 3:x + 5] = True
    return mask


def _fixed_example(mask: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, tuple, tuple]:
    """The first contact made right, and a box around it with 4 px of substrate."""
    fixed = mask.copy()
    fixed[4:22, 4:22] = truth[4:22, 4:22]
    return fixed, (4, 4), (21, 21)


def test_one_fixed_contact_is_copied_onto_the_whole_array():
    truth = _contacts()
    sem = _sem(truth)
    start, a, b = _fixed_example(_printed(truth), truth)
    assert iou(start, truth) < 0.85
    result = copy_to_matches(start, sem, a, b)
    assert len(result.places) == 16  # the example and its 15 matches
    assert np.array_equal(result.mask, truth)  # rounded prints and specks replaced


def test_the_copies_keep_the_example_s_offset_from_a_scan_lag():
    truth = _contacts()
    sem = _sem(truth, shift_x=2)  # the SEM shows every contact 2 px right of the layout
    start, a, b = _fixed_example(_printed(truth), truth)
    assert np.array_equal(copy_to_matches(start, sem, a, b).mask, truth)


def test_a_line_passing_by_is_kept_and_never_matched():
    truth = _contacts(rows=3)
    truth[84:92, 2:126] = True  # a long line below the array, 6 px under the last row's boxes
    sem = _sem(truth)
    start, a, b = _fixed_example(_printed(truth), truth)
    start[84:92, 2:126] = truth[84:92, 2:126]
    result = copy_to_matches(start, sem, a, b)
    assert np.array_equal(result.mask[84:92], truth[84:92])
    assert len(result.places) == 12
    assert iou(result.mask, truth) == 1.0


def test_noise_alone_gives_no_matches():
    truth = np.zeros((SIZE, SIZE), bool)
    truth[8:18, 8:18] = True  # one contact; the rest of the image is substrate
    sem = _sem(truth, noise=30.0, seed=3)
    result = copy_to_matches(truth, sem, (4, 4), (21, 21))
    assert result.places == ((4, 4),)
    assert np.array_equal(result.mask, truth)


def test_a_contact_cut_by_the_border_gets_its_visible_part():
    truth = _contacts(origin=(8, -4))  # the top row is cut by the image's top edge
    sem = _sem(truth)
    start = _printed(truth)
    start[:30, :] = truth[:30, :] & False  # the top two rows are missing altogether
    start[16:34, 4:22] = truth[16:34, 4:22]  # the second row's first contact is right
    result = copy_to_matches(start, sem, (4, 16), (21, 33))
    assert np.array_equal(result.mask[:6], truth[:6])  # 6 visible rows of each top contact
    assert iou(result.mask, truth) > 0.97


@pytest.mark.parametrize(("a", "b", "why"), [
    ((10, 10), (11, 11), "whole feature"),  # 2 × 2 px
    ((0, 0), (60, 60), "too large"),  # half the image
    ((20, 20), (29, 29), "both pattern and substrate"),  # substrate only
])
def test_a_box_that_cannot_be_an_example_says_why(a, b, why):
    truth = _contacts()
    with pytest.raises(StampError, match=why):
        copy_to_matches(truth, _sem(truth), a, b)


def test_the_tab_tool_is_the_same_operation_and_keeps_the_mask_on_a_bad_box():
    truth = _contacts()
    sem = _sem(truth)
    start, a, b = _fixed_example(_printed(truth), truth)
    assert np.array_equal(apply_tool(tools.STAMP, start, sem, b, a, 0.0, 4.0),
                          copy_to_matches(start, sem, a, b).mask)
    assert np.array_equal(apply_tool(tools.STAMP, start, sem, (29, 29), (20, 20), 0.0, 4.0), start)
    assert tools.TOOL_KEYS["a"] == tools.STAMP and tools.STAMP in tools.BOX_TOOLS
