"""The correction bench's operator: steps chosen by gain per action, applied as the app does."""

from __future__ import annotations

import cv2
import numpy as np

from annotate import correct_tools as tools
from annotate.correct_clicks import apply_tool
from annotate.editing import move_all_edges
from bench.correction_plan import (
    CLEANUP,
    MAX_ACTIONS,
    OperatorState,
    Step,
    apply_step,
    candidates,
    plan,
)
from semgan.manhattan import clean_manhattan
from semgan.metrics import iou


def _truth() -> np.ndarray:
    mask = np.zeros((64, 64), bool)
    mask[8:56, 10:18] = True
    mask[8:56, 30:38] = True
    mask[20:28, 44:60] = True
    return mask


def _sem(truth: np.ndarray, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(60 + 120 * truth + rng.normal(0, 6, truth.shape), 0, 255).astype(np.uint8)


def test_a_missing_line_is_boxed_back_in_two_clicks():
    truth = _truth()
    start = truth.copy()
    start[8:56, 30:38] = False
    blank = _sem(np.zeros_like(truth))  # nothing to threshold: the line must be drawn
    state = plan(start, truth, blank, 4.0)
    assert iou(state.mask, truth) == 1.0
    assert [s.tool for s in state.steps] == [tools.BOX_ADD]  # the tab opens on this tool
    assert state.actions == 2 and state.steps[0].points == ((30, 8), (37, 55))


def test_an_empty_prediction_is_redrawn_from_the_sem_by_threshold():
    truth = _truth()
    state = plan(np.zeros_like(truth), truth, _sem(truth), 4.0)
    assert iou(state.mask, truth) >= 0.95
    assert state.steps[0].tool in (tools.WHOLE, tools.WHOLE_INVERT)
    assert state.actions <= 2  # G (or ⇧G), and perhaps one fix


def test_costs_count_tool_keys_clicks_buttons_and_typed_fields():
    truth = _truth()
    state = OperatorState(truth.copy())
    found = {(s.tool, s.shift_nm, s.cleanup): s.cost for s in candidates(state, truth, 4.0)}
    assert found[(tools.WHOLE, None, None)] == 1  # G: one key, the selected tool unchanged
    assert found[(tools.WHOLE_INVERT, None, None)] == 1
    assert found[(CLEANUP, None, (400.0, 2))] == 1  # the button, fields as they are
    assert found[(CLEANUP, None, (1600.0, 4))] == 3  # two fields typed, then the button
    assert found[(tools.MOVE_ALL, 4.0, None)] == 2  # key + a click; the field already says 4 nm
    assert found[(tools.MOVE_ALL, -4.0, None)] == 3  # ... and -4 must be typed first


def test_apply_step_is_what_the_app_computes():
    truth = _truth()
    sem = _sem(truth)
    noisy = truth.copy()
    noisy[40:42, 50:52] = True
    box = Step(tools.OTSU_INVERT, ((0, 0), (63, 63)))
    assert np.array_equal(apply_step(box, noisy, sem, 4.0),
                          apply_tool(tools.OTSU_INVERT, noisy, sem, (63, 63), (0, 0), 0, 4.0))
    # G / ⇧G: the same thresholds over the whole image, in one action
    assert np.array_equal(apply_step(Step(tools.WHOLE_INVERT), noisy, sem, 4.0),
                          apply_step(box, noisy, sem, 4.0))
    assert np.array_equal(apply_step(Step(tools.WHOLE), noisy, sem, 4.0),
                          apply_tool(tools.OTSU, noisy, sem, (63, 63), (0, 0), 0, 4.0))
    assert np.array_equal(apply_step(Step(CLEANUP, cleanup=(400.0, 2)), noisy, sem, 4.0),
                          clean_manhattan(noisy, 4.0, 400.0, snap_tolerance_px=2))


def test_a_plan_stops_without_gain_and_within_the_budget():
    truth = _truth()
    flat = np.full(truth.shape, 100, np.uint8)  # nothing in the SEM to threshold
    start = truth.copy()
    start[8:56, 10:18] = False
    state = plan(start, truth, flat, 4.0, goal=1.01)
    assert state.actions <= MAX_ACTIONS
    assert iou(state.mask, truth) == 1.0  # a box gets there, then nothing gains
    assert [s.tool for s in state.steps] == [tools.BOX_ADD]  # no threshold of a flat image


def test_move_all_edges_shifts_every_region_and_the_tool_key():
    truth = _truth()
    grown = move_all_edges(truth, 4.0, 4.0)
    assert grown.sum() == 50 * 10 * 2 + 10 * 18  # each piece 1 px wider on every side
    assert np.array_equal(move_all_edges(grown, -4.0, 4.0), truth)
    assert np.array_equal(apply_tool(tools.MOVE_ALL, truth, _sem(truth), (0, 0), None, 4.0, 4.0),
                          grown)
    assert tools.TOOL_KEYS["M"] == tools.MOVE_ALL and tools.TOOL_KEYS["T"] == tools.OTSU_INVERT


def test_an_array_of_misprinted_contacts_is_fixed_by_copying_one():
    truth = np.zeros((96, 96), bool)
    for y in range(8, 88, 20):
        for x in range(8, 88, 20):
            truth[y:y + 8, x:x + 8] = True
    start = np.zeros_like(truth)
    for index, (y, x) in enumerate((y, x) for y in range(8, 88, 20) for x in range(8, 88, 20)):
        grow = 1 if index % 2 else -1  # printed alternately too large and too small
        start[y - grow:y + 8 + grow, x - grow:x + 8 + grow] = True
    rng = np.random.default_rng(0)  # a wide beam: a threshold draws the contacts round
    sem = cv2.GaussianBlur(np.where(truth, 180.0, 60.0).astype(np.float32), (0, 0), 2.5)
    sem = np.clip(sem + rng.normal(0, 6, truth.shape), 0, 255).astype(np.uint8)
    state = plan(start, truth, sem, 4.0, goal=0.99)
    assert tools.STAMP in [s.tool for s in state.steps]
    assert iou(state.mask, truth) >= 0.99
    # G first (one key, 0.61 → 0.71: the best gain per action), then ⇧R, R and A: the greedy
    # operator pays 10 actions where R + A alone would take 6
    assert state.actions <= 10
