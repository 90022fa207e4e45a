"""Per-segment signed EPE and CD at cut lines against a registered design."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from semgan.design.clip import DesignLayout, DesignSource, registered_mask
from semgan.design.epe import cd_along_cut, edge_placement
from semgan.design.errors import DesignError
from semgan.design.placement import Registration

NM = 4.0
SHAPE = (64, 64)


def _layout(*rects) -> DesignLayout:
    polygons = [np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float) for x0, y0, x1, y1 in rects]
    return DesignLayout(DesignSource("test.gds", None, (34, 0)), polygons, "TOP")


def _registration(center=(0.0, 0.0)) -> Registration:
    return Registration(center, NM, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, False, "prediction", 0.0)


def test_grown_prediction_has_positive_epe_of_the_growth():
    layout = _layout((-40, -200, 40, 200))  # an 80 nm vertical line through the image
    design = registered_mask(layout, (0.0, 0.0), SHAPE, NM)
    grown = ndimage.binary_dilation(design, iterations=2)  # +2 px = +8 nm on each side
    summary = edge_placement(layout, _registration(), grown).summary()
    assert summary["mean_nm"] == pytest.approx(8.0)
    assert summary["missing"] == 0


def test_shrunk_prediction_has_negative_epe():
    layout = _layout((-40, -200, 40, 200))
    design = registered_mask(layout, (0.0, 0.0), SHAPE, NM)
    shrunk = ndimage.binary_erosion(design, iterations=1)
    report = edge_placement(layout, _registration(), shrunk)
    assert report.summary()["mean_nm"] == pytest.approx(-4.0)


def test_segments_are_about_the_step_long_and_touching_polygons_share_no_edge():
    # Two rectangles touching at x = 0: the shared edge is not an edge of the union.
    layout = _layout((-40, -200, 0, 200), (0, -200, 40, 200))
    design = registered_mask(layout, (0.0, 0.0), SHAPE, NM)
    report = edge_placement(layout, _registration(), design, step_nm=4.0)
    assert all(abs(s.x1_nm) == 40 for s in report.segments if s.x1_nm == s.x2_nm)
    lengths = [math.hypot(s.x2_nm - s.x1_nm, s.y2_nm - s.y1_nm) for s in report.segments]
    assert max(lengths) == pytest.approx(4.0)


def test_missing_feature_is_reported_as_missing_and_worst():
    layout = _layout((-40, -200, 40, 200), (80, -40, 100, 40))
    design = registered_mask(layout, (0.0, 0.0), SHAPE, NM)
    without_contact = registered_mask(_layout((-40, -200, 40, 200)), (0.0, 0.0), SHAPE, NM)
    report = edge_placement(layout, _registration(), without_contact, reach_nm=12.0)
    assert report.summary()["missing"] > 0
    assert not np.isfinite(report.worst(1)[0].epe_nm)
    assert edge_placement(layout, _registration(), design).summary()["missing"] == 0


def test_cd_along_a_cut_line():
    layout = _layout((-40, -200, 40, 200))
    design = registered_mask(layout, (0.0, 0.0), SHAPE, NM)
    grown = ndimage.binary_dilation(design, iterations=1)
    (cut,) = cd_along_cut(layout, _registration(), grown, "row", 32)
    assert cut.design_cd_nm == pytest.approx(80.0)
    assert cut.predicted_cd_nm == pytest.approx(88.0)
    assert cut.error_nm == pytest.approx(8.0)


def test_cut_outside_the_image_is_refused():
    layout = _layout((-40, -200, 40, 200))
    with pytest.raises(DesignError):
        cd_along_cut(layout, _registration(), np.zeros(SHAPE), "row", 80)
