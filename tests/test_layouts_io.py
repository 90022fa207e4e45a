"""Import of real layouts: GLP clip text, GDSII and OASIS, and tiles of files and folders."""

from __future__ import annotations

from pathlib import Path

import gdstk
import numpy as np
import pytest

from semgan.layouts import (
    CellNotFoundError,
    GlpSyntaxError,
    LayerNotFoundError,
    LayoutFileError,
    load_layout_tiles,
    rasterize,
    read_gds,
    read_glp,
    read_layout,
)

SHARED_LAYOUTS = Path(__file__).resolve().parents[1].parent / "shared" / "layouts"
needs_stdmetal = pytest.mark.skipif(not (SHARED_LAYOUTS / "stdmetal").is_dir(),
                                    reason="../shared/layouts/stdmetal absent")
needs_gf180 = pytest.mark.skipif(not (SHARED_LAYOUTS / "gf180mcu").is_dir(),
                                 reason="../shared/layouts/gf180mcu absent")
AND2_1 = "gf180mcu_fd_sc_mcu7t5v0__and2_1"


def shoelace_area(polygons: list[np.ndarray]) -> float:
    return float(sum(abs(np.dot(p[:, 0], np.roll(p[:, 1], -1)) - np.dot(p[:, 1], np.roll(p[:, 0], -1))) / 2
                     for p in polygons))


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


GLP_TEXT = """BEGIN     /* a comment */
EQUIV  1  1000  MICRON  +X,+Y
CNAME Temp_Top
LEVEL M1

CELL Temp_Top PRIME
   RECT N M1  100 200 300 40
   # a line comment
   PGON N M1  0 0 0 100 40 100 40 40 100 40 100 0
ENDMSG
"""


def test_glp_rect_and_pgon_lines(tmp_path: Path) -> None:
    polygons = read_glp(write(tmp_path / "clip.glp", GLP_TEXT))
    assert len(polygons) == 2
    assert polygons[0].tolist() == [[100, 200], [400, 200], [400, 240], [100, 240]]
    assert polygons[1].tolist() == [[0, 0], [0, 100], [40, 100], [40, 40], [100, 40], [100, 0]]
    assert polygons[1].dtype == np.float64


def test_glp_closed_ring_drops_the_repeated_vertex(tmp_path: Path) -> None:
    polygons = read_glp(write(tmp_path / "ring.glp", "PGON N M1 0 0 10 0 10 10 0 10 0 0\n"))
    assert polygons[0].shape == (4, 2)


@pytest.mark.parametrize(("line", "message"), [
    ("RECT N M1 0 0 10", r"bad\.glp:8: .*RECT needs"),
    ("RECT N M1 0 0 10 -5", r"bad\.glp:8: .*positive"),
    ("PGON N M1 0 0 10 0 10", r"bad\.glp:8: .*PGON needs"),
    ("PGON N M1 0 0 1O 0 10 10", r"bad\.glp:8: expected numbers in 'PGON N M1 0 0 1O 0 10 10'"),
    ("BOX N M1 0 0 10 10", r"bad\.glp:8: unknown GLP keyword 'BOX'"),
])
def test_malformed_glp_line_raises_with_file_line_and_text(tmp_path: Path, line: str, message: str) -> None:
    path = write(tmp_path / "bad.glp", GLP_TEXT.replace("   # a line comment", line))
    with pytest.raises(GlpSyntaxError, match=message):
        read_glp(path)


def test_binary_file_named_glp_raises(tmp_path: Path) -> None:
    path = tmp_path / "binary.glp"
    path.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(GlpSyntaxError, match="not a text file"):
        read_glp(path)


@needs_stdmetal
def test_glp_stdmetal_clip_polygon_count_and_area() -> None:
    # OAI221_X1__0_0.glp: 8 PGON lines; shoelace areas summed with awk: 433550 nm², no overlaps,
    # all vertices on a 5 nm grid, so 17342 px at 5 nm/px.
    polygons = read_glp(SHARED_LAYOUTS / "stdmetal" / "OAI221_X1__0_0.glp")
    assert len(polygons) == 8
    assert shoelace_area(polygons) == 433550
    assert rasterize(polygons, (0, 0, 1140, 785), 5.0).sum() == 17342


@needs_gf180
def test_gds_gf180_cell_metal1_polygon_count_and_area() -> None:
    # Computed once with gdstk directly: 6 Metal1 polygons, 9.50095 µm², bbox (0, -300)–(4480, 4220) nm.
    polygons = read_gds(SHARED_LAYOUTS / "gf180mcu" / f"{AND2_1}.gds")
    assert len(polygons) == 6
    assert shoelace_area(polygons) == 9_500_950
    assert np.concatenate(polygons).min(axis=0).tolist() == [0, -300]
    assert np.concatenate(polygons).max(axis=0).tolist() == [4480, 4220]
    assert rasterize(polygons, (0, -300, 4480, 4220), 5.0).sum() == 380_038


@needs_gf180
def test_gds_missing_layer_lists_the_layers_present() -> None:
    with pytest.raises(LayerNotFoundError, match=r"no polygons on layer 99/0; layers present: .*30/0.*34/0"):
        read_gds(SHARED_LAYOUTS / "gf180mcu" / f"{AND2_1}.gds", layer=(99, 0))


@needs_gf180
def test_gds_unknown_cell_lists_the_cells() -> None:
    with pytest.raises(CellNotFoundError, match=f"no cell 'NAND9'; cells in this file: {AND2_1}"):
        read_gds(SHARED_LAYOUTS / "gf180mcu" / f"{AND2_1}.gds", cell="NAND9")


def library_with_hierarchy() -> gdstk.Library:
    """µm user units, 1 nm grid: a 100×200 nm via cell placed twice, a 2000×100 nm path, a rect."""
    library = gdstk.Library(unit=1e-6, precision=1e-9)
    via = library.new_cell("VIA")
    via.add(gdstk.rectangle((0, 0), (0.1, 0.2), layer=34, datatype=0))
    top = library.new_cell("TOP")
    top.add(gdstk.Reference(via, (1.0, 1.0), columns=2, rows=1, spacing=(0.5, 0)))
    top.add(gdstk.FlexPath([(0, 3), (2, 3)], 0.1, layer=34, datatype=0))
    top.add(gdstk.rectangle((0, 0), (0.3, 0.3), layer=34, datatype=0))
    top.add(gdstk.rectangle((0, 0), (1, 1), layer=30, datatype=0))
    return library


def test_gds_flattens_references_converts_paths_and_units(tmp_path: Path) -> None:
    path = tmp_path / "hier.gds"
    library_with_hierarchy().write_gds(path)
    polygons = read_gds(path)
    assert len(polygons) == 4
    assert shoelace_area(polygons) == 2 * 20_000 + 200_000 + 90_000
    mask = rasterize(polygons, (0, 0, 2000, 3100), 10.0)
    assert mask.sum() == (2 * 20_000 + 200_000 + 90_000) // 100
    assert mask[5:15].all() and mask[:5].sum() == 0  # the path: y 2950–3050 nm, rows 5–14 of 310
    assert sorted(tuple(p.min(axis=0)) for p in polygons)[-2:] == [(1000.0, 1000.0), (1500.0, 1000.0)]


def test_gds_several_top_cells_need_a_name(tmp_path: Path) -> None:
    library = gdstk.Library()
    for name in ("A", "B"):
        library.new_cell(name).add(gdstk.rectangle((0, 0), (1, 1), layer=34))
    path = tmp_path / "two.gds"
    library.write_gds(path)
    with pytest.raises(CellNotFoundError, match=r"2 top cells \(A, B\)"):
        read_gds(path)
    assert len(read_gds(path, cell="B")) == 1


def test_oasis_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "hier.oas"
    library_with_hierarchy().write_oas(path)
    polygons = read_layout(path)
    assert len(polygons) == 4
    assert shoelace_area(polygons) == 330_000
    assert read_layout(path, layer=(30, 0))[0].tolist() == [[0, 0], [1000, 0], [1000, 1000], [0, 1000]]


def test_corrupt_gds_raises_layout_file_error(tmp_path: Path) -> None:
    path = write(tmp_path / "junk.gds", "this is not a stream file")
    with pytest.raises(LayoutFileError, match=r"junk\.gds: cannot read as GDSII"):
        read_gds(path)


def test_unsupported_suffix_and_missing_file_raise(tmp_path: Path) -> None:
    with pytest.raises(LayoutFileError, match=r"unsupported layout file type '\.dxf'"):
        read_layout(write(tmp_path / "a.dxf", "0\nSECTION\n"))
    with pytest.raises(LayoutFileError, match="not found"):
        read_layout(tmp_path / "absent.glp")


def test_tiles_of_a_folder_of_mixed_formats(tmp_path: Path) -> None:
    write(tmp_path / "clip.glp", GLP_TEXT)
    library_with_hierarchy().write_gds(tmp_path / "hier.gds")
    tiles = load_layout_tiles(tmp_path, 10.0, 32, layer=(34, 0))
    kinds = [t.source["kind"] for t in tiles]
    assert kinds.count("glp") == 2 and kinds.count("gds") >= 1
    # The GLP clip spans x 0–400, y 0–240 nm: two 320 nm tiles across, centred in y.
    assert [t.source for t in tiles if t.source["kind"] == "glp"] == [
        {"kind": "glp", "file": "clip.glp", "cell": None, "layer": None, "window_nm": [0.0, -40.0, 320.0, 280.0]},
        {"kind": "glp", "file": "clip.glp", "cell": None, "layer": None, "window_nm": [80.0, -40.0, 400.0, 280.0]},
    ]
    gds_sources = [t.source for t in tiles if t.source["kind"] == "gds"]
    assert all(s["cell"] == "TOP" and s["layer"] == "34/0" for s in gds_sources)
    assert all(t.mask.shape == (32, 32) and t.rules is None for t in tiles)


@needs_stdmetal
def test_tiles_of_a_shared_glp_clip() -> None:
    # AND2_X4__0_0 spans x 60–760, y 505–880 nm: two 512 nm tiles across, one centred in y.
    tiles = load_layout_tiles(SHARED_LAYOUTS / "stdmetal" / "AND2_X4__0_0.glp", 4.0, 128)
    assert [t.source["window_nm"] for t in tiles] == [[60.0, 436.0, 572.0, 948.0], [248.0, 436.0, 760.0, 948.0]]
    assert all(t.source["kind"] == "glp" and t.mask.shape == (128, 128) for t in tiles)
