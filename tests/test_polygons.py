"""Mask → polygons → GDS round trips (semgan.polygons), and the Manhattan clean-up and
vectorisation of masks and probabilities (semgan.manhattan)."""

import gdstk
import numpy as np
import pytest
from scipy import ndimage

from semgan.manhattan import clean_manhattan
from semgan.polygons import (
    PolygonError,
    mask_to_polygons,
    write_gds,
    write_gds_cells,
)


def rasterize(polygons, shape, nm_per_px, origin_nm=(0.0, 0.0)) -> np.ndarray:
    """Centre sampling, even-odd per polygon, OR over polygons (independent of semgan.layouts)."""
    height, width = shape
    x0, y0 = origin_nm
    xc = x0 + (np.arange(width) + 0.5) * nm_per_px
    yc = y0 + height * nm_per_px - (np.arange(height) + 0.5) * nm_per_px  # row 0 at the top
    out = np.zeros(shape, bool)
    for points in polygons:
        inside = np.zeros(shape, bool)
        for (xa, ya), (xb, yb) in zip(points, np.roll(points, -1, axis=0), strict=True):
            if xa != xb:
                continue  # Manhattan: only vertical edges cross a horizontal scan line
            rows = (np.minimum(ya, yb) < yc) & (yc < np.maximum(ya, yb))
            inside ^= rows[:, None] & (xa < xc)[None, :]
        out |= inside
    return out


def read_gds(path, cell=None):
    library = gdstk.read_gds(str(path), unit=1e-9)
    cells = {c.name: c for c in library.cells}
    chosen = cells[cell] if cell else library.cells[0]
    return chosen.polygons


def tricky_mask() -> np.ndarray:
    mask = np.zeros((40, 48), bool)
    mask[4:30, 4:30] = True
    mask[10:24, 10:24] = False  # a hole
    mask[14:20, 14:20] = True  # an island inside the hole
    for step in range(10):  # a diagonal staircase
        mask[30 - 2 * step : 32 - 2 * step, 32 + step : 40 + step] = True
    mask[34, 0:5] = True  # touches the left border
    mask[36, 10], mask[37, 11] = True, True  # diagonal neighbours
    mask[39, 47] = True  # bottom-right corner pixel
    return mask


def test_rectangle_outline_in_nm_with_y_up():
    mask = np.zeros((10, 20), bool)
    mask[2:5, 3:8] = True
    (polygon,) = mask_to_polygons(mask, 2.0, origin_nm=(100.0, 50.0))
    assert {tuple(p) for p in polygon.tolist()} == {(106.0, 60.0), (116.0, 60.0), (116.0, 66.0), (106.0, 66.0)}


def test_collinear_vertices_are_removed():
    mask = np.zeros((30, 30), bool)
    mask[2:28, 5:9] = True
    mask[2:6, 5:25] = True  # an L: 6 corners, none on a straight run
    (polygon,) = mask_to_polygons(mask, 1.0)
    assert len(polygon) == 6


def test_empty_mask_has_no_polygons():
    assert mask_to_polygons(np.zeros((8, 8), bool), 4.0) == []


def test_gds_round_trip_of_tricky_mask(tmp_path):
    mask = tricky_mask()
    write_gds(mask, tmp_path / "m.gds", nm_per_px=4.0)
    assert np.array_equal(rasterize([p.points for p in read_gds(tmp_path / "m.gds")], mask.shape, 4.0), mask)


def test_gds_round_trip_with_origin_and_fractional_pixel_size(tmp_path):
    mask = tricky_mask()
    write_gds(mask, tmp_path / "m.gds", nm_per_px=2.5, origin_nm=(-1000.0, 333.0))
    polygons = [p.points for p in read_gds(tmp_path / "m.gds")]
    assert np.array_equal(rasterize(polygons, mask.shape, 2.5, (-1000.0, 333.0)), mask)


def test_gds_round_trip_of_random_mask(tmp_path):
    mask = np.random.default_rng(3).random((32, 32)) > 0.6
    write_gds(mask, tmp_path / "r.gds", nm_per_px=4.0)
    assert np.array_equal(rasterize([p.points for p in read_gds(tmp_path / "r.gds")], mask.shape, 4.0), mask)


def test_gds_keeps_cell_name_and_layer(tmp_path):
    write_gds(tricky_mask(), tmp_path / "m.gds", nm_per_px=4.0, cell="FIXED", layer=(36, 2))
    polygons = read_gds(tmp_path / "m.gds", "FIXED")
    assert {(p.layer, p.datatype) for p in polygons} == {(36, 2)}


def test_gds_from_polygon_list(tmp_path):
    square = np.array([[0.0, 0.0], [40.0, 0.0], [40.0, 40.0], [0.0, 40.0]])
    write_gds([square], tmp_path / "p.gds")
    (polygon,) = read_gds(tmp_path / "p.gds")
    assert polygon.area() == pytest.approx(1600.0)


def test_gds_cells_round_trip(tmp_path):
    first, second = tricky_mask(), np.random.default_rng(1).random((40, 48)) > 0.5
    write_gds_cells({"A": first, "B": second}, tmp_path / "c.gds", nm_per_px=4.0)
    got_first = rasterize([p.points for p in read_gds(tmp_path / "c.gds", "A")], first.shape, 4.0)
    got_second = rasterize([p.points for p in read_gds(tmp_path / "c.gds", "B")], second.shape, 4.0)
    assert (np.array_equal(got_first, first), np.array_equal(got_second, second)) == (True, True)


def test_writing_a_mask_without_pixel_size_raises(tmp_path):
    with pytest.raises(PolygonError):
        write_gds(tricky_mask(), tmp_path / "m.gds")


def test_malformed_polygon_raises(tmp_path):
    with pytest.raises(PolygonError):
        write_gds([np.array([[0.0, 0.0], [1.0, 1.0]])], tmp_path / "p.gds")


# --- clean_manhattan ------------------------------------------------------------------------


def wobbly_rectangle(seed: int) -> np.ndarray:
    """A 40×60 px rectangle drawn by hand: every edge jittered by ±1 px, then anti-aliased."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:80, 0:120]
    top, bottom = 20 + rng.integers(-1, 2, 120), 60 + rng.integers(-1, 2, 120)
    left, right = 30 + rng.integers(-1, 2, 80), 90 + rng.integers(-1, 2, 80)
    mask = (rows >= top[cols]) & (rows < bottom[cols]) & (cols >= left[rows[:, :1]]) & (cols < right[rows[:, :1]])
    return np.clip(ndimage.gaussian_filter(mask.astype(float), 0.6), 0.0, 1.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wobbly_rectangle_becomes_one_exact_rectangle(seed):
    cleaned = clean_manhattan(wobbly_rectangle(seed), nm_per_px=4.0, min_area_nm2=100.0)
    rows, cols = np.nonzero(cleaned)
    box = np.zeros_like(cleaned)
    box[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] = True
    assert np.array_equal(cleaned, box)


def test_wobbly_rectangle_snaps_to_the_intended_edges():
    cleaned = clean_manhattan(wobbly_rectangle(0), nm_per_px=4.0, min_area_nm2=100.0)
    rows, cols = np.nonzero(cleaned)
    assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == (20, 60, 30, 90)


def test_wobbly_rectangle_keeps_its_area_within_five_percent():
    cleaned = clean_manhattan(wobbly_rectangle(0), nm_per_px=4.0, min_area_nm2=100.0)
    assert abs(int(cleaned.sum()) - 40 * 60) / (40 * 60) < 0.05


def test_specks_below_min_area_vanish():
    mask = np.zeros((40, 40), bool)
    mask[5:25, 5:25] = True
    mask[30:32, 30:32] = True  # 4 px = 64 nm² at 4 nm/px
    expected = np.zeros_like(mask)
    expected[5:25, 5:25] = True
    assert np.array_equal(clean_manhattan(mask, nm_per_px=4.0, min_area_nm2=100.0), expected)


def test_pinholes_below_min_area_are_filled():
    mask = np.zeros((40, 40), bool)
    mask[5:25, 5:25] = True
    mask[10, 10] = False
    assert clean_manhattan(mask, nm_per_px=4.0, min_area_nm2=100.0)[10, 10]


def test_clean_manhattan_mask_is_unchanged():
    mask = np.zeros((60, 60), bool)
    mask[5:50, 5:12] = True
    mask[5:12, 5:40] = True  # an L
    mask[20:50, 20:50] = True
    mask[28:40, 28:42] = False  # with a hole
    mask[55:60, 0:60] = True  # touching the border
    assert np.array_equal(clean_manhattan(mask, nm_per_px=4.0, min_area_nm2=100.0), mask)


def test_narrow_line_end_is_not_snapped_away():
    mask = np.zeros((40, 40), bool)
    mask[5:35, 10:12] = True  # 2 px wide: its ends are U-turns, not wobble
    assert np.array_equal(clean_manhattan(mask, nm_per_px=4.0, min_area_nm2=16.0), mask)


def test_clean_manhattan_rejects_3d_input():
    with pytest.raises(PolygonError):
        clean_manhattan(np.zeros((4, 4, 3)), nm_per_px=4.0, min_area_nm2=10.0)


# --- manhattan_vectorize -------------------------------------------------------------------------


def ramp_rectangle(left: float, right: float, top: float, bottom: float, shape=(48, 64)) -> np.ndarray:
    """A probability that crosses 0.5 exactly at the given (sub-pixel) edges, linearly over ±1 px."""
    rows, cols = np.arange(shape[0]) + 0.5, np.arange(shape[1]) + 0.5
    across = np.minimum(np.clip(0.5 + (cols - left) / 2, 0, 1), np.clip(0.5 + (right - cols) / 2, 0, 1))
    down = np.minimum(np.clip(0.5 + (rows - top) / 2, 0, 1), np.clip(0.5 + (bottom - rows) / 2, 0, 1))
    return np.minimum(down[:, None], across[None, :])


def test_vectorize_places_edges_at_the_sub_pixel_crossing() -> None:
    from semgan.manhattan import manhattan_vectorize

    [(positions, vertical)] = manhattan_vectorize(ramp_rectangle(10.3, 40.6, 8.2, 30.75), 4.0, 100.0)
    edges = sorted(zip(vertical.tolist(), positions.tolist(), strict=True))
    assert [v for v, _ in edges] == [False, False, True, True]
    assert [p for _, p in edges] == pytest.approx([8.2, 30.75, 10.3, 40.6], abs=1e-6)


def test_vectorize_straightens_a_wobbly_edge_to_its_median() -> None:
    from semgan.manhattan import manhattan_vectorize, vector_raster

    probability = ramp_rectangle(10.0, 40.0, 8.0, 32.0)
    probability[12, 38:41] = [1.0, 1.0, 1.0]  # one row bulges a pixel out of the right edge
    probability[20, 39] = 0.0  # and one notches in
    rings = manhattan_vectorize(probability, 4.0, 100.0)
    expected = np.zeros_like(probability, bool)
    expected[8:32, 10:40] = True
    assert np.array_equal(vector_raster(rings, probability.shape), expected)


def test_vectorize_snaps_to_a_design_grid_and_gives_nm_polygons() -> None:
    from semgan.manhattan import manhattan_vectorize, vector_polygons

    rings = manhattan_vectorize(ramp_rectangle(10.3, 40.6, 8.2, 30.75), 4.0, 100.0, grid_nm=10.0)
    [polygon] = vector_polygons(rings, 48, 4.0)
    xs, ys = sorted(set(polygon[:, 0].round(6))), sorted(set(polygon[:, 1].round(6)))
    assert xs == [40.0, 160.0]  # 10.3 px = 41.2 nm → 40; 40.6 px = 162.4 nm → 160
    assert ys == [70.0, 160.0]  # y up from 192 nm: bottom (48 - 30.75)·4 = 69 → 70, top 159.2 → 160
    with pytest.raises(PolygonError, match="grid_nm"):
        manhattan_vectorize(ramp_rectangle(10, 40, 8, 30), 4.0, 100.0, grid_nm=0.0)


def test_vectorize_drops_specks_and_keeps_an_empty_map_empty() -> None:
    from semgan.manhattan import manhattan_vectorize

    speck = np.zeros((32, 32))
    speck[5:7, 5:7] = 1.0
    assert manhattan_vectorize(speck, 4.0, 100.0) == []
    assert manhattan_vectorize(np.zeros((16, 16)), 4.0, 100.0) == []
