"""Rectangle builders for the procedural patterns, in integer pixels of a canvas (y up).

Each builder draws in a canonical frame whose main direction is vertical (lines run along y)
and returns (N, 4) int64 rows [x0, y0, x1, y1]; ``procedural`` turns them into clips. Shapes
may stick out of the canvas, as in a crop of a real layout. Coordinates are whole pixels so
that every width and space is an exact number of pixels after rasterisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PixelRules:
    """Design rules in whole pixels: minimum width, minimum space, and the pitch if regular."""

    width: int
    space: int
    pitch: int | None = None


def _rects(rows: list) -> np.ndarray:
    return np.array(rows, dtype=np.int64).reshape(-1, 4)


def _stripes(rng: np.random.Generator, rules: PixelRules, span: int, regular: bool) -> list[tuple[int, int]]:
    """(left, right) px of parallel lines across ``span``: constant pitch, or varying widths/spaces."""
    pitch = rules.width + rules.space
    x = -int(rng.integers(0, 2 * pitch))
    stripes = []
    while x < span:
        if regular:
            width, space = rules.width, rules.space
        else:
            width = round(rules.width * rng.choice([1.0, 1.0, 1.0, 1.5, 2.0, 3.0]))
            space = round(rules.space * rng.choice([1.0, 1.0, 1.3, 2.0, 3.0]))
        stripes.append((x, x + width))
        x += width + space
    return stripes


def lines(rng: np.random.Generator, rules: PixelRules, width: int, height: int) -> tuple[np.ndarray, dict]:
    """Line/space array along y: regular pitch, or lines and spaces of varying width."""
    regular = rules.pitch is not None
    stripes = _stripes(rng, rules, width, regular)
    return _rects([(a, -rules.space, b, height + rules.space) for a, b in stripes]), {
        "regular": regular, "lines": len(stripes)}


def isolated_lines(rng: np.random.Generator, rules: PixelRules, width: int,
                   height: int) -> tuple[np.ndarray, dict]:
    """A few lines far apart (wide spaces), the first at least half in view."""
    regular = rules.pitch is not None
    x = int(rng.integers(-(rules.width // 2), max(1, min(rules.width + rules.space, width - rules.width))))
    stripes = []
    while x < width:
        line = rules.width if regular else round(rules.width * rng.choice([1.0, 1.0, 1.5, 2.0, 3.0]))
        stripes.append((x, x + line))
        x += line + (rules.space if regular else round(rules.space * rng.choice([1.0, 1.3, 2.0])))
    return _rects([(a, -rules.space, b, height + rules.space) for a, b in stripes]), {
        "regular": regular, "lines": len(stripes)}


def line_ends(rng: np.random.Generator, rules: PixelRules, width: int, height: int) -> tuple[np.ndarray, dict]:
    """Lines broken into segments with tip-to-tip gaps (aligned like a cut array, or random)."""
    regular = rules.pitch is not None
    stripes = _stripes(rng, rules, width, regular)
    tip = int(rng.integers(rules.space, int(2.5 * rules.space) + 1))  # tip-to-tip gap, >= min space
    shortest = 2 * rules.width + 1
    longest = max(shortest + 1, int(height * rng.uniform(0.25, 0.8)))
    aligned = bool(rng.random() < 0.3)
    shared_cuts = _cuts(rng, height, shortest, longest, tip)
    rows = []
    for a, b in stripes:
        cuts = shared_cuts if aligned else _cuts(rng, height, shortest, longest, tip)
        rows.extend((a, y0, b, y1) for y0, y1 in cuts)
    return _rects(rows), {"aligned_ends": aligned, "tip_gap_px": tip, "lines": len(stripes)}


def _cuts(rng: np.random.Generator, height: int, shortest: int, longest: int, tip: int) -> list[tuple[int, int]]:
    y = -int(rng.integers(0, longest))
    segments = []
    while y < height:
        length = int(rng.integers(shortest, longest))
        segments.append((y, y + length))
        y += length + int(rng.integers(tip, tip + tip // 2 + 1))
    return segments


def contacts(rng: np.random.Generator, rules: PixelRules, width: int, height: int,
             staggered: bool = False, size: tuple[int, int] | None = None,
             gaps: tuple[int, int] | None = None) -> tuple[np.ndarray, dict]:
    """A regular (or row-staggered) array of contacts/vias, some sites possibly left empty."""
    size_x, size_y = size or (rules.width, rules.width)
    gap_x, gap_y = gaps or (rules.space, rules.space)
    pitch_x, pitch_y = size_x + gap_x, size_y + gap_y
    empty = float(rng.choice([0.0, 0.0, rng.uniform(0.05, 0.35)]))
    x_origin = -int(rng.integers(0, pitch_x))
    y_origin = -int(rng.integers(0, pitch_y))
    rows = []
    for j in range(height // pitch_y + 3):
        shift = pitch_x // 2 if staggered and j % 2 else 0
        y = y_origin + j * pitch_y
        for i in range(-1, width // pitch_x + 2):
            if rng.random() >= empty:
                x = x_origin + i * pitch_x + shift
                rows.append((x, y, x + size_x, y + size_y))
    return _rects(rows), {"staggered": staggered, "empty_fraction": round(empty, 3),
                          "pitch_px": [pitch_x, pitch_y]}


def staggered_contacts(rng: np.random.Generator, rules: PixelRules, width: int, height: int,
                       size: tuple[int, int] | None = None,
                       gaps: tuple[int, int] | None = None) -> tuple[np.ndarray, dict]:
    """Contact array whose odd rows are shifted by half a pitch."""
    return contacts(rng, rules, width, height, staggered=True, size=size, gaps=gaps)


class _NodeGrid:
    """A routing grid: wires and shapes are boxes of grid nodes, each node a width×width square.

    Adjacent nodes are one pitch apart and a wire is at most ``pitch - space`` wide, so any two
    shapes that do not share a node are at least ``space`` apart: the rules hold by construction.
    """

    def __init__(self, rng: np.random.Generator, pitch: tuple[int, int], width: int, height: int,
                 margin: int = 2):
        self.pitch = pitch
        # Nodes (x, y) reach ``margin`` nodes beyond each side, so shapes run off the canvas.
        self.shape = (width // pitch[0] + 2 * margin, height // pitch[1] + 2 * margin)
        self.origin = (-margin * pitch[0] + int(rng.integers(0, pitch[0])),
                       -margin * pitch[1] + int(rng.integers(0, pitch[1])))
        self.used = np.zeros(self.shape, dtype=bool)

    def rect(self, box: tuple[int, int, int, int], wire: int) -> tuple[int, int, int, int]:
        """Pixel rectangle covering the nodes i0..i1 × j0..j1 with a wire of width ``wire``."""
        i0, j0, i1, j1 = min(box[0], box[2]), min(box[1], box[3]), max(box[0], box[2]), max(box[1], box[3])
        x0 = self.origin[0] + i0 * self.pitch[0] - wire // 2
        y0 = self.origin[1] + j0 * self.pitch[1] - wire // 2
        return (x0, y0, x0 + (i1 - i0) * self.pitch[0] + wire, y0 + (j1 - j0) * self.pitch[1] + wire)

    def free(self, boxes: list[tuple[int, int, int, int]], clearance: int) -> bool:
        """True when every box lies on the grid and no used node is within ``clearance`` nodes."""
        for i0, j0, i1, j1 in boxes:
            if i0 < 0 or j0 < 0 or i1 >= self.shape[0] or j1 >= self.shape[1]:
                return False
            if self.used[max(i0 - clearance, 0):i1 + clearance + 1, max(j0 - clearance, 0):j1 + clearance + 1].any():
                return False
        return True

    def take(self, boxes: list[tuple[int, int, int, int]]) -> None:
        """Mark the nodes of the boxes as used."""
        for i0, j0, i1, j1 in boxes:
            self.used[i0:i1 + 1, j0:j1 + 1] = True


# Shape kinds for the "shapes" pattern, repeated to weight the common ones.
_SHAPE_KINDS = ("L", "L", "T", "U", "U", "H", "jog", "jog", "cross", "bar", "pad")


def _template(rng: np.random.Generator, longest: int) -> tuple[str, list[tuple[int, int, int, int]]]:
    """A random L/T/U/H/jog/cross/bar/pad shape as node boxes (i0, j0, i1, j1) near the origin."""
    a, b, c = (int(v) for v in rng.integers(1, longest + 1, size=3))
    kind = _SHAPE_KINDS[int(rng.integers(len(_SHAPE_KINDS)))]
    boxes = {
        "L": [(0, 0, a + 1, 0), (0, 0, 0, b + 1)],
        "T": [(-a, 0, a, 0), (0, -b - 1, 0, 0)],
        "U": [(0, 0, a, 0), (0, 0, 0, b + 1), (a, 0, a, b + 1)],
        "H": [(0, 0, 0, b + 2), (a, 0, a, b + 2), (0, (b + 2) // 2, a, (b + 2) // 2)],
        "jog": [(0, 0, a + 1, 0), (a + 1, 0, a + 1, min(b, 3)), (a + 1, min(b, 3), a + c + 2, min(b, 3))],
        "cross": [(-a, 0, a, 0), (0, -b, 0, b)],
        "bar": [(0, 0, a + c + 1, 0)],
        "pad": [(0, 0, min(a, 3), min(b, 3))],
    }[kind]
    swap, flip_x, flip_y = rng.random(3) < 0.5  # one of the 8 symmetries of the square
    out = []
    for i0, j0, i1, j1 in boxes:
        if swap:
            i0, j0, i1, j1 = j0, i0, j1, i1
        if flip_x:
            i0, i1 = -i1, -i0
        if flip_y:
            j0, j1 = -j1, -j0
        out.append((i0, j0, i1, j1))
    return kind, out


def shapes(rng: np.random.Generator, rules: PixelRules, width: int, height: int) -> tuple[np.ndarray, dict]:
    """Scattered L/T/U/H shapes, jogs, crosses, bars and pads of varying width on a placement grid."""
    pitch = rules.width + rules.space + int(rng.integers(0, rules.width + 1))
    grid = _NodeGrid(rng, (pitch, pitch), width, height, margin=6)
    clearance = int(rng.integers(0, 2))
    longest = int(np.clip(min(width, height) // pitch // 3, 1, 5))  # arm length in nodes, fits the clip
    rows, kinds = [], []
    # Anchors within 2 nodes of the canvas: shapes further out would not be seen.
    low, high = 4, (grid.shape[0] - 4, grid.shape[1] - 4)
    for _ in range(2 * (high[0] - low) * (high[1] - low)):
        kind, boxes = _template(rng, longest)
        i, j = int(rng.integers(low, high[0])), int(rng.integers(low, high[1]))
        boxes = [(i0 + i, j0 + j, i1 + i, j1 + j) for i0, j0, i1, j1 in boxes]
        if not grid.free(boxes, clearance):
            continue
        grid.take(boxes)
        wire = int(rng.integers(rules.width, pitch - rules.space + 1))
        rows.extend(grid.rect(box, wire) for box in boxes)
        kinds.append(kind)
    return _rects(rows), {"shapes": len(kinds), "placement_pitch_px": pitch}


def routing(rng: np.random.Generator, rules: PixelRules, width: int, height: int,
            density: tuple[float, float] = (0.55, 0.9)) -> tuple[np.ndarray, dict]:
    """Gridded Manhattan routing: wires along y with jogs, optional power rails, min width/space held.

    ``density`` is the range the fraction of used grid nodes is drawn from (dense by default).
    """
    track_pitch = rules.width + rules.space + int(rng.integers(0, rules.width // 2 + 1))
    step_pitch = rules.width + rules.space + int(rng.integers(0, rules.width + 1))
    grid = _NodeGrid(rng, (track_pitch, step_pitch), width, height)
    rows = []
    rails = 0
    if rng.random() < 0.35:  # wide power rails across the wires, as in standard-cell rows
        for _ in range(int(rng.integers(1, 3))):
            i = int(rng.integers(0, grid.shape[0] - 1))
            box = (i, 0, min(i + int(rng.integers(0, 2)), grid.shape[0] - 1), grid.shape[1] - 1)
            if grid.free([box], 1):
                grid.take([box])
                rows.append(grid.rect(box, rules.width))
                rails += 1
    target = rng.uniform(*density) * grid.used.size
    wires = 0
    for _ in range(3 * grid.used.size):
        if grid.used.sum() >= target:
            break
        path = _wire_path(rng, grid)
        if len(path) < 2:
            continue
        grid.take([(i, j, i, j) for i, j in path])
        rows.extend(grid.rect(run, rules.width) for run in _runs(path))
        wires += 1
    return _rects(rows), {"wires": wires, "rails": rails, "track_pitch_px": track_pitch}


def _wire_path(rng: np.random.Generator, grid: _NodeGrid) -> list[tuple[int, int]]:
    free = np.flatnonzero(~grid.used)
    if len(free) == 0:
        return []
    i, j = np.unravel_index(int(free[rng.integers(len(free))]), grid.shape)
    path = [(int(i), int(j))]
    along = True  # the preferred (vertical) direction first
    sign = 2 * int(rng.integers(2)) - 1
    for _ in range(int(rng.integers(1, 5))):
        length = int(rng.integers(2, 14)) if along else int(rng.integers(1, 4))
        step = (0, sign) if along else (2 * int(rng.integers(2)) - 1, 0)
        for _ in range(length):
            ni, nj = path[-1][0] + step[0], path[-1][1] + step[1]
            if not (0 <= ni < grid.shape[0] and 0 <= nj < grid.shape[1]) or grid.used[ni, nj] \
                    or (ni, nj) in path:
                break
            path.append((ni, nj))
        along = not along
    return path


def _runs(path: list[tuple[int, int]]) -> list[tuple[int, int, int, int]]:
    """Split a node path into straight runs (node boxes)."""
    runs = []
    start = 0
    for k in range(1, len(path) - 1):
        turn = (path[k][0] - path[k - 1][0], path[k][1] - path[k - 1][1]) != \
               (path[k + 1][0] - path[k][0], path[k + 1][1] - path[k][1])
        if turn:
            runs.append((*path[start], *path[k]))
            start = k
    runs.append((*path[start], *path[-1]))
    return runs
