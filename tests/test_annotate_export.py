"""Export: GDS polygons that re-import to the same mask; PNG pairs with a manifest."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import gdstk
import numpy as np
import pytest

from annotate.export_tab import ExportError, cell_name, export_gds, export_png_zip, parse_layer
from store import Store

NM_PER_PX = 2.5


def _mask() -> np.ndarray:
    """Manhattan shapes with a hole, an L and a one-pixel feature."""
    mask = np.zeros((40, 56), bool)
    mask[4:20, 5:30] = True
    mask[9:14, 12:20] = False  # hole → keyhole polygon in GDS
    mask[24:36, 8:12] = True
    mask[32:36, 8:40] = True  # L shape
    mask[2, 50] = True  # single pixel
    return mask


def rasterise_pixel_centres(polygons: list, shape: tuple[int, int], nm_per_px: float) \
        -> np.ndarray:
    """Pixel (r, c) is set when its centre (x=(c+½)p, y=(H−r−½)p) lies inside a polygon."""
    height, width = shape
    rows, cols = np.mgrid[0:height, 0:width]
    points = np.column_stack([((cols + 0.5) * nm_per_px).ravel(),
                              ((height - rows - 0.5) * nm_per_px).ravel()])
    return np.array(gdstk.inside(points, polygons)).reshape(shape)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """A workspace with one corrected sample."""
    with Store.open(tmp_path / "ws") as opened:
        sample = opened.add_sample(np.full((40, 56), 90, np.uint8), NM_PER_PX, "upload")
        opened.save_correction(sample.id, _mask(), "tester")
        yield opened


def test_gds_export_reimports_to_the_same_mask(store: Store, tmp_path: Path) -> None:
    [path] = export_gds(store, tmp_path / "gds", layer=(34, 0))
    library = gdstk.read_gds(str(path), unit=1e-9)  # coordinates back in nm
    [cell] = [c for c in library.cells if c.name == cell_name(1)]
    polygons = [p for p in cell.polygons if (p.layer, p.datatype) == (34, 0)]
    assert np.array_equal(rasterise_pixel_centres(polygons, (40, 56), NM_PER_PX), _mask())


def test_gds_files_are_split_by_pixel_size(store: Store, tmp_path: Path) -> None:
    other = store.add_sample(np.full((8, 8), 5, np.uint8), 4.0, "upload")
    store.save_correction(other.id, np.eye(8, dtype=bool), "tester")
    paths = export_gds(store, tmp_path / "gds")
    assert [p.name for p in paths] == ["corrected_2.5nm-per-px.gds", "corrected_4nm-per-px.gds"]


def test_png_export_zips_pairs_with_a_manifest(store: Store, tmp_path: Path) -> None:
    folder, archive, count = export_png_zip(store, tmp_path / "exports", None)
    with zipfile.ZipFile(archive) as zipped:
        names = set(zipped.namelist())
        manifest = json.loads(zipped.read("manifest.json"))
    assert count == 1 and folder.parent == tmp_path / "exports"
    assert {"sem/000001.png", "layout/000001.png", "manifest.csv"} <= names
    assert manifest["pairs"][0]["nm_per_px"] == NM_PER_PX


def test_a_gds_layer_without_datatype_means_datatype_zero() -> None:
    assert parse_layer(" 34 ") == (34, 0)


@pytest.mark.parametrize("text", ["34/0/1", "x/0", "70000/0"])
def test_a_malformed_gds_layer_is_refused(text: str) -> None:
    with pytest.raises(ExportError, match="34/0"):
        parse_layer(text)
