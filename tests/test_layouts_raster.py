"""Exact rasterisation of Manhattan polygons and cropping into tiles."""

from __future__ import annotations

import time

import numpy as np
import pytest

from semgan.layouts import (
    EmptyWindowError,
    LayoutError,
    NonManhattanError,
    rasterize,
    rasterize_rects,
    tile_layout,
)


def rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


@pytest.mark.parametrize("offset_nm", [0.0, 0.5, 1.0, 2.0, 2.5, 3.0, 3.99])
def test_100nm_line_is_25px_wide_at_any_subpixel_offset(offset_nm: float) -> None:
    mask = rasterize([rect(40 + offset_nm, -10, 140 + offset_nm, 210)], (0, 0, 200, 200), 4.0)
    assert mask.shape == (50, 50)
    assert set(mask.sum(axis=1).tolist()) == {25}


@pytest.mark.parametrize("offset_nm", [0.0, 1.3, 2.0, 3.7])
def test_100nm_horizontal_line_is_25px_tall_at_any_subpixel_offset(offset_nm: float) -> None:
    mask = rasterize([rect(-10, 30 + offset_nm, 210, 130 + offset_nm)], (0, 0, 200, 200), 4.0)
    assert set(mask.sum(axis=0).tolist()) == {25}


def test_aligned_rectangle_area_is_area_over_pixel_area() -> None:
    # 200 × 120 nm = 24000 nm²: 1500 px at 4 nm/px, 3840 px at 2.5 nm/px.
    assert rasterize([rect(40, 80, 240, 200)], (0, 0, 400, 400), 4.0).sum() == 1500
    assert rasterize([rect(40, 80, 240, 200)], (0, 0, 400, 400), 2.5).sum() == 3840


def test_l_shaped_polygon_area() -> None:
    # 100×40 foot + 40×60 upright = 6400 nm² = 400 px at 4 nm/px.
    l_shape = np.array([[0, 0], [0, 100], [40, 100], [40, 40], [100, 40], [100, 0]], dtype=np.float64)
    mask = rasterize([l_shape], (0, 0, 120, 120), 4.0)
    assert mask.sum() == 400
    assert mask[-1, :25].all() and not mask[-1, 25:].any()  # the foot along the bottom
    assert mask[5:20, :10].all() and not mask[5:20, 10:].any()  # the upright, 40 nm wide
    assert not mask[:5].any()  # above the upright's top at y = 100 nm


def test_row_zero_is_the_top_of_the_window() -> None:
    mask = rasterize([rect(0, 60, 40, 100)], (0, 0, 100, 100), 4.0)  # top-left 40×40 nm
    assert mask[:10, :10].all()
    assert mask.sum() == 100
    assert not mask[10:].any()


def test_window_offset_shifts_the_raster() -> None:
    mask = rasterize([rect(1000, 2000, 1040, 2040)], (1000, 2000, 1100, 2100), 4.0)
    assert mask[15:25, 0:10].all() and mask.sum() == 100


def test_clockwise_and_counterclockwise_polygons_give_the_same_mask() -> None:
    ccw = np.array([[0, 0], [80, 0], [80, 20], [20, 20], [20, 80], [0, 80]], dtype=np.float64)
    a = rasterize([ccw], (0, 0, 100, 100), 4.0)
    b = rasterize([ccw[::-1]], (0, 0, 100, 100), 4.0)
    assert np.array_equal(a, b) and a.sum() == 175


def test_overlapping_polygons_are_unioned() -> None:
    # Two 40×40 squares overlapping by 20×20 (opposite orientations): union 2800 nm² = 175 px.
    mask = rasterize([rect(0, 0, 40, 40), rect(20, 20, 60, 60)[::-1]], (0, 0, 80, 80), 4.0)
    assert mask.sum() == 175


def test_keyhole_polygon_leaves_its_hole_empty() -> None:
    # 80×80 square with a 40×40 hole, drawn as one polygon with a zero-width cut.
    keyhole = np.array([[0, 0], [80, 0], [80, 80], [0, 80], [0, 40], [20, 40], [20, 60],
                        [60, 60], [60, 20], [20, 20], [20, 40], [0, 40]], dtype=np.float64)
    mask = rasterize([keyhole], (0, 0, 80, 80), 4.0)
    assert mask.sum() == 300  # (6400 - 1600) / 16
    assert not mask[5:15, 5:15].any()


def test_matches_brute_force_pixel_centres_for_random_fractional_rectangles() -> None:
    rng = np.random.default_rng(3)
    corners = rng.uniform(-20, 300, size=(40, 2))
    sizes = rng.uniform(3, 90, size=(40, 2))
    rects = np.hstack([corners, corners + sizes])
    window, p = (7.3, -11.0, 287.3, 260.6), 2.8
    mask = rasterize([rect(*r) for r in rects], window, p)
    rows, cols = np.mgrid[0:mask.shape[0], 0:mask.shape[1]]
    cx, cy = window[0] + (cols + 0.5) * p, window[3] - (rows + 0.5) * p
    expected = np.zeros(mask.shape, dtype=bool)
    for x0, y0, x1, y1 in rects:
        expected |= (cx >= x0) & (cx < x1) & (cy >= y0) & (cy < y1)
    assert mask.shape == (97, 100)
    assert np.array_equal(mask, expected)


def test_rasterize_rects_equals_rasterize_polygons() -> None:
    rects = np.array([[0, 0, 100, 40], [30, 30, 70, 200], [150.5, 10, 190, 90.2]])
    window = (0, 0, 200, 200)
    assert np.array_equal(rasterize_rects(rects, window, 4.0), rasterize([rect(*r) for r in rects], window, 4.0))


def test_non_manhattan_polygon_raises_naming_polygon_and_vertex() -> None:
    triangle = np.array([[0, 0], [100, 0], [100, 100]], dtype=np.float64)
    with pytest.raises(NonManhattanError, match=r"polygon 1: edge from vertex 2 \[100.0, 100.0\]"):
        rasterize([rect(0, 0, 10, 10), triangle], (0, 0, 200, 200), 4.0)


def test_window_smaller_than_a_pixel_raises() -> None:
    with pytest.raises(LayoutError, match="smaller than one"):
        rasterize([rect(0, 0, 10, 10)], (0, 0, 100, 1), 4.0)


def test_no_polygons_gives_an_empty_mask_of_window_shape() -> None:
    mask = rasterize([], (0, 0, 400, 200), 4.0)
    assert mask.shape == (50, 100) and mask.dtype == bool and not mask.any()


def test_thousands_of_rectangles_in_2048_window_well_under_a_second() -> None:
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 8192, size=(5000, 2))
    polygons = [rect(x, y, x + w, y + h) for (x, y), (w, h) in zip(corners, rng.uniform(40, 200, (5000, 2)), strict=True)]
    start = time.perf_counter()
    mask = rasterize(polygons, (0, 0, 8192, 8192), 4.0)
    assert mask.shape == (2048, 2048)
    assert time.perf_counter() - start < 1.0


def grating(width_nm: float = 2048, height_nm: float = 1024) -> list[np.ndarray]:
    """Vertical 100 nm lines at 200 nm pitch filling width × height."""
    return [rect(x, 0, x + 100, height_nm) for x in np.arange(0, width_nm, 200)]


def test_tiles_have_requested_size_and_record_windows() -> None:
    tiles = tile_layout(grating(), 4.0, 128, source={"kind": "test"}, window_nm=(0, 0, 2048, 1024))
    assert [t.source["window_nm"] for t in tiles] == [
        [0.0, 0.0, 512.0, 512.0], [512.0, 0.0, 1024.0, 512.0], [1024.0, 0.0, 1536.0, 512.0],
        [1536.0, 0.0, 2048.0, 512.0], [0.0, 512.0, 512.0, 1024.0], [512.0, 512.0, 1024.0, 1024.0],
        [1024.0, 512.0, 1536.0, 1024.0], [1536.0, 512.0, 2048.0, 1024.0]]
    assert all(t.mask.shape == (128, 128) and t.nm_per_px == 4.0 for t in tiles)
    assert all(t.source["kind"] == "test" and t.rules is None for t in tiles)
    assert tiles[0].mask.sum() == 128 * 25 * 3  # 100 nm lines at 0, 200, 400 nm: 25 px each


def test_tiles_with_stride_overlap_and_end_flush() -> None:
    tiles = tile_layout(grating(1200, 512), 4.0, 128, stride_px=64)
    assert [t.source["window_nm"][0] for t in tiles] == [0.0, 256.0, 512.0, 588.0]


def test_layout_smaller_than_a_tile_gives_one_centred_tile() -> None:
    tiles = tile_layout([rect(100, 100, 300, 200)], 4.0, 128, min_fill=0.0)
    assert len(tiles) == 1
    assert tiles[0].source["window_nm"] == [-56.0, -104.0, 456.0, 408.0]
    assert tiles[0].mask.sum() == 50 * 25


def test_tiles_drop_nearly_empty_ones() -> None:
    polygons = [rect(0, 0, 512, 512), rect(1500, 0, 1504, 4)]  # a full tile, then two almost empty
    tiles = tile_layout(polygons, 4.0, 128, max_fill=1.0)
    assert [t.source["window_nm"] for t in tiles] == [[0.0, 0.0, 512.0, 512.0]]


def test_window_without_polygons_raises_empty_window() -> None:
    with pytest.raises(EmptyWindowError, match="intersects the window"):
        tile_layout(grating(), 4.0, 64, window_nm=(5000, 5000, 6000, 6000))


def test_tiling_nothing_raises_empty_window() -> None:
    with pytest.raises(EmptyWindowError, match=r"no polygons to tile in a\.glp"):
        tile_layout([], 4.0, 64, source={"file": "a.glp"})


def test_all_tiles_filtered_out_raises_empty_window() -> None:
    with pytest.raises(EmptyWindowError, match="nearly empty or full"):
        tile_layout([rect(0, 0, 4, 4)], 4.0, 64)
