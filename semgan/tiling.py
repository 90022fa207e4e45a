"""How a large image is cut into overlapping tiles for the generator, and how they are blended.

The generator is fully convolutional, but a whole 2048² image costs more than its tiles: the
self-attention blocks are quadratic in the positions they see (a 2048² whole-image pass takes
2–3× the time of 256-px tiles in bf16, and the attention matrix alone is 1 GB). Tiles keep
attention at the trained scale. ``bench.bench_tiling`` measured tile sizes 256–512 and overlaps
32–128 on held-out images of every training tool: IoU within ±0.0003 of today's 256/128, ≥ 99.93 %
of mask pixels identical, and no excess disagreement along tile borders. So the plan minimises
work: per axis the tile length from ``tile`` to 9/4·``tile`` that covers the image with the fewest
pixels computed, keeping every overlap ≥ ``overlap``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_TILE_FACTOR = 9 / 4  # longest tile tried, as a multiple of the nominal tile size


@dataclass(frozen=True)
class AxisPlan:
    """Tile length and tile origins along one image axis."""

    tile: int
    starts: tuple[int, ...]

    @property
    def covered(self) -> int:
        """Pixels computed along this axis (overlaps counted twice)."""
        return self.tile * len(self.starts)


def tile_starts(length: int, tile: int, overlap: int, multiple: int) -> list[int]:
    """Tile origins along one axis: as few tiles as keep every overlap ≥ ``overlap``, spread evenly,
    each on a multiple of ``multiple`` (``length`` and ``tile`` are multiples of it).

    Spreading them evenly, instead of stepping by tile − overlap and adding one flush last tile,
    avoids a last tile that is nearly all overlap.
    """
    if length <= tile:
        return [0]
    span = (length - tile) // multiple  # in units of ``multiple``
    max_step = max(1, (tile - overlap) // multiple)
    count = -(-span // max_step)  # gaps between consecutive origins
    return [(gap * span // count) * multiple for gap in range(count + 1)]


def plan_axis(length: int, tile: int, overlap: int, multiple: int, longest: int | None = None) -> AxisPlan:
    """The cheapest tiling of ``length`` px with tiles of ``tile``…``longest`` px (multiples of
    ``multiple``; default 9/4·``tile``); ties go to the shorter tile, the closer to the size the
    model was scored at. ``longest`` = ``tile`` gives fixed tiles."""
    if longest is None:
        longest = int(tile * MAX_TILE_FACTOR) // multiple * multiple
    longest = max(tile, longest)
    if length <= longest:  # one tile covers the axis: no overlap, no extra work
        return AxisPlan(max(length, tile), (0,))
    if tile == longest:
        return AxisPlan(tile, tuple(tile_starts(length, tile, overlap, multiple)))
    plans = [AxisPlan(size, tuple(tile_starts(length, size, overlap, multiple)))
             for size in range(tile, longest + 1, multiple)]
    return min(plans, key=lambda plan: (plan.covered, plan.tile))


def _ramp(length: int, overlap: int) -> np.ndarray:
    ramp = np.ones(length, np.float64)
    if overlap > 0:
        margin = overlap // 4
        fade = overlap - 2 * margin
        rising = np.zeros(overlap)
        rising[margin:overlap - margin] = np.sin(0.5 * np.pi * (np.arange(fade) + 0.5) / fade) ** 2
        rising[overlap - margin:] = 1.0
        ramp[:overlap] = rising
        ramp[-overlap:] = np.minimum(ramp[-overlap:], rising[::-1])
    return np.maximum(ramp, 1e-6)


def blend_window(tile_size: int, overlap: int, tile_width: int | None = None) -> np.ndarray:
    """(T, T) (or (T, tile_width)) tile weights: ~0 on the outer overlap/4 band, a sin² cross-fade,
    1 in the middle.

    A conv net's output near a tile edge is spoiled by zero padding (over about 2**(n_down+1)
    px), so that band is discarded where a neighbour covers it; across the rest of the overlap
    two neighbours' weights sum to 1. The 1e-6 floor keeps image-border pixels, which only one
    tile covers.
    """
    width = tile_size if tile_width is None else tile_width
    return np.outer(_ramp(tile_size, overlap), _ramp(width, overlap)).astype(np.float32)
