"""Standard-cell Metal1 on a routing grid: power rails at every row boundary, pins and straps between.

Cells sit in rows between shared power rails (rails along x in the canonical frame, the way
``patterns`` draws lines along y and ``procedural`` turns clips). Inside a row each cell, a
few grid columns wide and one empty column from its neighbour, holds vertical pins (some tied
to a rail), L-shaped pins and short horizontal straps. Shapes live on ``patterns._NodeGrid``,
so min width and space hold by construction; how many grid columns hold a shape (``density``)
makes a clip dense or sparse.
"""

from __future__ import annotations

import numpy as np

from semgan.layouts.patterns import PixelRules, _NodeGrid

# Shapes inside a cell, repeated to weight the common ones.
_CELL_SHAPES = ("pin", "pin", "power", "power", "L", "strap")


def _rails(rng: np.random.Generator, grid: _NodeGrid, rules: PixelRules, row: int,
           thick: int) -> tuple[list, list[int]]:
    """Rails across the grid every ``row`` node rows: their rects, and the first node row of each."""
    nx, ny = grid.shape
    first = int(rng.integers(0, row))
    rects, starts = [], []
    for j in range(first - row, ny, row):
        starts.append(j)  # a rail off the grid still bounds the row of cells next to it
        j0, j1 = max(j, 0), min(j + thick, ny - 1)
        if j0 <= j1:
            grid.take([(0, j0, nx - 1, j1)])
            rects.append(grid.rect((0, j0, nx - 1, j1), rules.width))
    return rects, starts


def _shape(rng: np.random.Generator, kind: str, i: int, low: int, high: int,
           cell_end: int) -> tuple[list[tuple[int, int, int, int]], int]:
    """Node boxes of one in-cell shape in column ``i`` of the row's free node rows low..high.

    Returns the boxes to check and take, and how far (in node rows, 0 if not) a power pin
    reaches past ``low`` or ``high`` into a rail (-1: down, +1: up).
    """
    a = int(rng.integers(low, high + 1))
    b = int(rng.integers(low, high + 1))
    j0, j1 = min(a, b), max(a, b)
    if kind == "power":  # a pin tied to the rail below or above
        if rng.random() < 0.5:
            return [(i, low, i, j1)], -1
        return [(i, j0, i, high)], 1
    if kind == "L":
        end = min(i + int(rng.integers(1, 4)), cell_end)
        corner = j1 if rng.random() < 0.5 else j0
        return [(i, j0, i, j1), (i, corner, end, corner)], 0
    if kind == "strap":
        end = min(i + int(rng.integers(1, 5)), cell_end)
        return [(i, a, end, a)], 0
    return [(i, j0, i, max(j1, j0 + 1))], 0


def cell_metal(rng: np.random.Generator, rules: PixelRules, width: int,
               height: int) -> tuple[np.ndarray, dict]:
    """Rows of standard cells: wide power rails, pins (some tied to a rail), L pins and straps."""
    pitch_x = rules.width + rules.space + int(rng.integers(0, rules.width // 2 + 1))
    pitch_y = rules.width + rules.space + int(rng.integers(0, rules.width // 2 + 1))
    grid = _NodeGrid(rng, (pitch_x, pitch_y), width, height)
    row = int(rng.integers(6, 12))  # node rows from one rail to the next
    thick = int(rng.integers(0, 2))  # rails one or two nodes thick
    density = float(rng.uniform(0.2, 0.9))
    rects, rails = _rails(rng, grid, rules, row, thick)
    nx, ny = grid.shape
    shapes = 0
    for rail in rails:
        # One free node row next to each rail; rows cut by the grid's edge keep their part on it.
        low, high = max(rail + thick + 2, 0), min(rail + row - 2, ny - 1)
        ties = (low == rail + thick + 2, high == rail + row - 2)  # which rails a pin can reach
        if high - low < 1:
            continue
        i = int(rng.integers(0, 3))
        while i < nx:
            cell_end = min(i + int(rng.integers(2, 9)), nx - 1)  # the last column of this cell
            for column in range(i, cell_end + 1):
                if rng.random() >= density:
                    continue
                kind = _CELL_SHAPES[int(rng.integers(len(_CELL_SHAPES)))]
                boxes, reach = _shape(rng, kind, column, low, high, cell_end)
                reach = reach if ties[reach > 0] else 0
                if not grid.free(boxes, 0):
                    continue
                grid.take(boxes)
                wire = int(rng.integers(rules.width, min(pitch_x, pitch_y) - rules.space + 1))
                for box in boxes:
                    if reach:  # extend into the rail: the union ties the pin to power
                        box = (box[0], box[1] - 2 if reach < 0 else box[1], box[2],
                               box[3] + 2 if reach > 0 else box[3])
                    rects.append(grid.rect(box, wire if box[0] == box[2] else rules.width))
                shapes += 1
            i = cell_end + 2  # one empty column between abutting cells
    return np.array(rects, dtype=np.int64).reshape(-1, 4), {
        "row_nodes": row, "rail_nodes": thick + 1, "shapes": shapes, "density": round(density, 3),
        "pitch_px": [pitch_x, pitch_y]}
