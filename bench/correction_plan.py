"""The correction bench's operator: which Correct-tab tool to use next, chosen by what it gains.

The browser bench (``bench/correction_browser.py``) plays an engineer who knows the design the
image shows (the demo's true layout) and uses only the Correct tab's tools. This module decides
each step and keeps a shadow copy of the mask, applying every step with the same functions the
app runs (``annotate.correct_clicks.apply_tool`` and Clean up's ``clean_manhattan``), so that a
plan can be judged without a browser and the browser's saved mask can be checked against it.

The rule, fixed before any image was scored: at each step, every candidate below is applied to
the shadow mask and the one with the largest IoU gain per action is taken, until IoU ≥ the goal
or no candidate gains ``MIN_GAIN``, or the action budget is spent. Actions are counted as an
engineer makes them: a key to change tool, each click on the image, each button, a typed field.

Candidates: threshold the whole image (the G, ⇧G keys: one action each); Clean up (its fields at 400 or 1,600 nm² and
2 or 4 px); for each of the largest missing and
extra pieces (truth XOR mask): a threshold box around it (T), a box over it (R / ⇧R), the magic wand inside it (W / ⇧W),
delete the region (D); move one region's edges (M) or all edges (⇧M) by ±1 px; and, for the
small features of the true layout that repeat (contacts, vias), copy one to its matches (A),
after making that example right where needed (⇧R to clear its box, R to draw it): the
sequence is judged as one candidate, by its gain over all its actions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from annotate import correct_tools as tools
from annotate.correct_clicks import apply_tool, threshold_whole
from semgan.manhattan import clean_manhattan
from semgan.metrics import iou

CLEANUP = "Clean up (Manhattan)"  # the button, with its two fields
CLEANUP_SETTINGS = ((400.0, 2), (400.0, 4), (1600.0, 2), (1600.0, 4))  # (nm², px) tried; first = the tab's
FIRST_TOOL = tools.BOX_ADD  # selected when the tab opens
BUTTONS = (CLEANUP, tools.WHOLE, tools.WHOLE_INVERT)  # steps that leave the selected tool as it is
GOAL_IOU = 0.95
MAX_ACTIONS = 40
MIN_GAIN = 1e-4
PIECES = 24  # largest missing and extra pieces considered per step
MIN_PIECE_PX = 3
BOX_PAD_PX = 6  # a threshold box drawn around a wrong piece, with some margin for the levels
SMALL_SHARE = 1 / 64  # a true feature this small (share of the image) may be an array's member
EXAMPLES = 4  # examples tried per repeated size


@dataclass(frozen=True)
class Step:
    """One use of a tool: the clicks on the result image (x, y) and its cost in actions."""

    tool: str  # a correct_tools label, or CLEANUP
    points: tuple[tuple[int, int], ...] = ()
    shift_nm: float | None = None  # Move region edges: the value the field must hold
    cleanup: tuple[float, int] | None = None  # Clean up: (min area nm², straighten px) fields
    cost: int = 0
    iou_after: float = 0.0


@dataclass
class OperatorState:
    """The shadow of the Correct tab: its mask, selected tool and edge-shift field."""

    mask: np.ndarray
    tool: str = FIRST_TOOL
    shift_nm: float = 4.0  # the field's default
    cleanup: tuple[float, int] = CLEANUP_SETTINGS[0]
    steps: list[Step] = field(default_factory=list)

    @property
    def actions(self) -> int:
        """Actions spent so far."""
        return sum(step.cost for step in self.steps)


def apply_step(step: Step, mask: np.ndarray, sem_image: np.ndarray, nm_per_px: float) -> np.ndarray:
    """The mask after ``step``, as the app computes it."""
    if step.tool == CLEANUP:
        area, snap = step.cleanup or CLEANUP_SETTINGS[0]
        return clean_manhattan(mask, nm_per_px, area, snap_tolerance_px=snap)
    if step.tool in (tools.WHOLE, tools.WHOLE_INVERT):
        return threshold_whole(mask, sem_image, invert=step.tool == tools.WHOLE_INVERT)
    corner = step.points[0] if len(step.points) == 2 else None
    shift = step.shift_nm if step.shift_nm is not None else 0.0
    return apply_tool(step.tool, mask, sem_image, step.points[-1], corner, shift, nm_per_px)


def _cost(state: OperatorState, tool: str, clicks: int, shift_nm: float | None = None,
          cleanup: tuple[float, int] | None = None) -> int:
    switch = 0 if tool in (*BUTTONS, state.tool) else 1
    typed = 1 if shift_nm is not None and shift_nm != state.shift_nm else 0
    if cleanup is not None:
        typed += sum(a != b for a, b in zip(cleanup, state.cleanup, strict=True))
    return switch + typed + clicks + (1 if tool in BUTTONS else 0)


def _deepest(piece: np.ndarray) -> tuple[int, int]:
    """(x, y) of the pixel farthest inside a piece (a click there stays inside it)."""
    depth = cv2.distanceTransform(np.pad(piece, 1).astype(np.uint8), cv2.DIST_L2, 3)[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return int(x), int(y)


def _pieces(wrong: np.ndarray) -> list[np.ndarray]:
    """The largest connected pieces of a wrong-pixel mask, largest first."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(wrong.astype(np.uint8), connectivity=4)
    order = sorted(range(1, count), key=lambda i: -stats[i, cv2.CC_STAT_AREA])
    return [labels == i for i in order[:PIECES] if stats[i, cv2.CC_STAT_AREA] >= MIN_PIECE_PX]


def _box(piece: np.ndarray) -> tuple[tuple[int, int], tuple[int, int]]:
    rows, cols = np.nonzero(piece)
    return (int(cols.min()), int(rows.min())), (int(cols.max()), int(rows.max()))


def _padded(box, shape: tuple[int, int], pad: int = BOX_PAD_PX):
    """The box grown by ``pad`` on each side, clipped to the image."""
    (x0, y0), (x1, y1) = box
    return ((max(x0 - pad, 0), max(y0 - pad, 0)),
            (min(x1 + pad, shape[1] - 1), min(y1 + pad, shape[0] - 1)))


def candidates(state: OperatorState, truth: np.ndarray, nm_per_px: float) -> list[Step]:
    """Every step worth trying from this state (costs filled in, gains not yet)."""
    mask = state.mask
    found = [Step(tools.WHOLE, cost=_cost(state, tools.WHOLE, 0)),
             Step(tools.WHOLE_INVERT, cost=_cost(state, tools.WHOLE_INVERT, 0)),
             *(Step(CLEANUP, cleanup=c, cost=_cost(state, CLEANUP, 0, cleanup=c))
               for c in CLEANUP_SETTINGS)]
    for piece in [*_pieces(truth & ~mask), *_pieces(mask & ~truth)]:  # redo it from the SEM
        found.append(Step(tools.OTSU, _padded(_box(piece), mask.shape),
                          cost=_cost(state, tools.OTSU, 2)))
    for piece in _pieces(truth & ~mask):  # missing pattern
        inside = _deepest(piece)
        found += [Step(tools.BOX_ADD, _box(piece), cost=_cost(state, tools.BOX_ADD, 2)),
                  Step(tools.WAND_ADD, (inside,), cost=_cost(state, tools.WAND_ADD, 1))]
    for piece in _pieces(mask & ~truth):  # extra pattern
        inside = _deepest(piece)
        found += [Step(tools.BOX_REMOVE, _box(piece), cost=_cost(state, tools.BOX_REMOVE, 2)),
                  Step(tools.WAND_REMOVE, (inside,), cost=_cost(state, tools.WAND_REMOVE, 1)),
                  Step(tools.FLIP, (inside,), cost=_cost(state, tools.FLIP, 1))]
    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=4)
    sizes = np.bincount(labels.ravel())
    for px in (1, -1):
        shift = px * nm_per_px
        found.append(Step(tools.MOVE_ALL, ((0, 0),), shift, cost=_cost(state, tools.MOVE_ALL, 1, shift)))
    for region in sorted(range(1, count), key=lambda i: -sizes[i])[:PIECES]:
        inside = _deepest(labels == region)
        for px in (1, -1):
            shift = px * nm_per_px
            found.append(Step(tools.MOVE, (inside,), shift, cost=_cost(state, tools.MOVE, 1, shift)))
    return found


def _examples(truth: np.ndarray) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Bounding boxes ((x0, y0), (x1, y1)) of small true features whose size repeats, up to
    ``EXAMPLES`` of each of the two most common sizes."""
    count, _, stats, _ = cv2.connectedComponentsWithStats(truth.astype(np.uint8), connectivity=4)
    small = [i for i in range(1, count)
             if stats[i, cv2.CC_STAT_AREA] <= SMALL_SHARE * truth.size]
    by_size: dict[tuple[int, int], list[int]] = {}
    for i in small:
        by_size.setdefault((int(stats[i, 2]), int(stats[i, 3])), []).append(i)
    common = sorted(by_size.values(), key=len, reverse=True)[:2]
    return [((int(stats[i, 0]), int(stats[i, 1])),
             (int(stats[i, 0] + stats[i, 2] - 1), int(stats[i, 1] + stats[i, 3] - 1)))
            for group in common if len(group) >= 3 for i in group[:EXAMPLES]]


def macros(state: OperatorState, truth: np.ndarray) -> list[tuple[Step, ...]]:
    """Copy to matches, from an example as it is, drawn with R, or cleared with ⇧R and drawn."""
    found = []
    for box in _examples(truth):
        (x0, y0), (x1, y1) = box
        pad = max(2, (max(x1 - x0, y1 - y0) + 1) // 2)
        around = _padded(box, truth.shape, pad)
        for prefix in ((), ((tools.BOX_ADD, box),), ((tools.BOX_REMOVE, around), (tools.BOX_ADD, box))):
            sequence, tool = [], state.tool
            for name, points in (*prefix, (tools.STAMP, around)):
                cost = (name != tool) + 2
                sequence.append(Step(name, points, cost=cost))
                tool = name
            found.append(tuple(sequence))
    return found


def next_step(state: OperatorState, truth: np.ndarray, sem_image: np.ndarray,
              nm_per_px: float) -> tuple[tuple[Step, ...], np.ndarray] | None:
    """The candidate (one step or a sequence) with the largest IoU gain per action, with the
    mask after it, or None."""
    now = iou(state.mask, truth)
    best, best_rate, best_mask = None, MIN_GAIN, None
    for sequence in [(step,) for step in candidates(state, truth, nm_per_px)] + \
            macros(state, truth):
        cost = sum(step.cost for step in sequence)
        if state.actions + cost > MAX_ACTIONS:
            continue
        after, done = state.mask, []
        for step in sequence:
            after = apply_step(step, after, sem_image, nm_per_px)
            done.append(Step(step.tool, step.points, step.shift_nm, step.cleanup, step.cost,
                             iou(after, truth)))
        rate = (done[-1].iou_after - now) / max(cost, 1)
        if rate > best_rate:
            best, best_rate, best_mask = tuple(done), rate, after
    return None if best is None else (best, best_mask)


def take(state: OperatorState, steps: tuple[Step, ...], mask: np.ndarray) -> None:
    """Record ``steps`` as done: the shadow's mask, tool and field follow them."""
    state.mask = mask
    for step in steps:
        if step.tool not in BUTTONS:
            state.tool = step.tool
        if step.shift_nm is not None:
            state.shift_nm = step.shift_nm
        if step.cleanup is not None:
            state.cleanup = step.cleanup
        state.steps.append(step)


def plan(start: np.ndarray, truth: np.ndarray, sem_image: np.ndarray, nm_per_px: float,
         goal: float = GOAL_IOU) -> OperatorState:
    """The whole correction from ``start`` (the prediction) without a browser."""
    state = OperatorState(start.copy())
    while iou(state.mask, truth) < goal:
        chosen = next_step(state, truth, sem_image, nm_per_px)
        if chosen is None:
            break
        take(state, *chosen)
    return state
