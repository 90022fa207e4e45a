"""Exports: the KLayout marker database and the contour GDS/OASIS at design coordinates."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from semgan.design.clip import DesignLayout, DesignSource, image_window, registered_mask
from semgan.design.contours import write_contours
from semgan.design.epe import edge_placement
from semgan.design.errors import MarkerError
from semgan.design.lyrdb import CATEGORIES, Marker, epe_markers, region_markers, write_lyrdb
from semgan.design.placement import Registration
from semgan.layouts import rasterize, read_gds

NM = 4.0
SHAPE = (64, 80)
CENTER = (1234.0, -567.0)


def _registration(dx=6.0, dy=-2.0) -> Registration:
    return Registration(CENTER, NM, dx, dy, 0.0, 1.0, 0.9, 0.1, 0.9, False, "prediction", 200.0)


def _layout() -> DesignLayout:
    x, y = CENTER
    polygons = [np.array([[x - 40, y - 300], [x + 40, y - 300], [x + 40, y + 300], [x - 40, y + 300]])]
    return DesignLayout(DesignSource("d.gds", None, (34, 0)), polygons, "TOP")


def _markers(reg: Registration) -> list[Marker]:
    layout = _layout()
    design = registered_mask(layout, reg.true_center_nm, SHAPE, NM)
    report = edge_placement(layout, reg, np.roll(design, 2, axis=1))
    confidence = np.ones(SHAPE)
    confidence[10:20, 10:30] = 0.1
    other = design.copy()
    other[40:50, 5:15] = True
    return (epe_markers(report, "sample 7", 5)
            + region_markers(confidence < 0.3, reg, "low_confidence", "sample 7", confidence)
            + region_markers(other ^ design, reg, "model_disagreement", "sample 7"))


def test_lyrdb_has_the_documented_structure(tmp_path):
    path = write_lyrdb(tmp_path / "m.lyrdb", _markers(_registration()), "TOP", "d.gds")
    root = ET.parse(path).getroot()
    assert root.tag == "report-database"
    for tag in ("description", "original-file", "generator", "top-cell", "tags", "categories",
                "cells", "items"):
        assert root.find(tag) is not None, tag
    assert [c.findtext("name") for c in root.find("categories")] == list(CATEGORIES)
    assert root.find("cells/cell/name").text == "TOP"
    items = root.findall("items/item")
    assert len(items) == 7  # 5 EPE segments, 1 low-confidence box, 1 disagreement box
    first = [v.text for v in items[0].find("values")]
    assert first[0].startswith("edge: (") and first[1].startswith("text: 'sample 7: EPE")
    # Design edges at x = −46 and +34 nm in the image rasterise 2 nm inwards; the 8 nm roll → ±6.
    assert abs(float(first[2].split(":")[1])) == pytest.approx(6.0)
    assert items[0].findtext("category") == "'epe_worst'"
    assert items[5].findtext("values/value").startswith("box: (")


def test_lyrdb_loads_in_klayout(tmp_path):
    rdb = pytest.importorskip("klayout.rdb")
    pytest.importorskip("klayout.db")  # binds the DBox values return
    reg = _registration()
    path = write_lyrdb(tmp_path / "m.lyrdb", _markers(reg), "TOP", "d.gds")
    database = rdb.ReportDatabase("check")
    database.load(str(path))
    assert database.top_cell_name == "TOP"
    assert database.num_items() == 7
    counts = {c.name(): c.num_items() for c in database.each_category()}
    assert counts == {"epe_worst": 5, "low_confidence": 1, "model_disagreement": 1}
    box = next(v.box() for item in database.each_item() for v in item.each_value() if v.is_box())
    # The low-confidence box: rows 10–19, cols 10–29 of the image, in µm at the design's place.
    x0, _, _, y1 = image_window(reg.true_center_nm, SHAPE, NM)
    assert box.left == pytest.approx((x0 + 10 * NM) / 1000)
    assert box.top == pytest.approx((y1 - 10 * NM) / 1000)
    assert box.right == pytest.approx((x0 + 30 * NM) / 1000)


def test_unknown_category_is_refused(tmp_path):
    with pytest.raises(MarkerError):
        write_lyrdb(tmp_path / "m.lyrdb", [Marker("other", "box", (0, 0, 1, 1), 1.0, "x")], "TOP")


def test_contours_reimport_onto_the_same_pixels(tmp_path):
    reg = _registration(dx=6.5, dy=-2.25)  # off the nm grid: written on a 1 pm grid
    rng = np.random.default_rng(0)
    mask = np.zeros(SHAPE, bool)
    for _ in range(12):
        r, c = rng.integers(0, 56), rng.integers(0, 72)
        mask[r:r + rng.integers(2, 9), c:c + rng.integers(2, 9)] = True
    gds, oas = write_contours(tmp_path, {"prediction": mask}, reg, "TOP_SEMGAN", 34)
    window = image_window(reg.true_center_nm, SHAPE, NM)
    for path in (gds, oas):
        polygons = read_gds(path, "TOP_SEMGAN", (34, 100))
        assert np.array_equal(rasterize(polygons, window, NM), mask)
