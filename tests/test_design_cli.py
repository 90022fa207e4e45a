"""``python -m semgan overlay``: a simulated SEM of a GDS site, registered and measured."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from semgan.__main__ import main
from semgan.design.simulated import make_case, procedural_layout
from semgan.imageio import save_png
from semgan.polygons import write_gds


@pytest.fixture
def site(tmp_path: Path):
    """A routing layout as GDS, its simulated SEM, and the case (true offset)."""
    layout = procedural_layout("routing", 480, 4.0, seed=5)
    write_gds(layout.polygons, tmp_path / "design.gds", cell="TOP", layer=(34, 0))
    case = make_case(layout, "routing", profile="clean", seed=9, size_px=192)
    save_png(tmp_path / "sem.png", case.sem_image)
    return tmp_path, case


def _args(folder: Path, case, *extra: str) -> list[str]:
    cx, cy = case.believed_center_nm
    return ["overlay", "--sem", str(folder / "sem.png"), "--design", str(folder / "design.gds"),
            "--cell", "TOP", "--layer", "34/0", "--nm-per-px", "4", "--center-nm", f"{cx},{cy}",
            "--search-nm", "200", "--out", str(folder / "out"), *extra]


def test_overlay_with_the_default_model_writes_every_file(site):
    folder, case = site
    assert main(_args(folder, case, "--compare-model", "default")) == 0
    out = folder / "out"
    registration = json.loads((out / "registration.json").read_text())
    assert abs(registration["dx_nm"] - case.offset_nm[0]) <= 4.0
    assert abs(registration["dy_nm"] - case.offset_nm[1]) <= 4.0
    assert {"rotation_deg", "scale", "score"} <= set(registration)
    epe = json.loads((out / "epe.json").read_text())
    assert epe["summary"]["segments"] > 100
    assert epe["summary"]["mean_abs_nm"] < 8.0
    assert (out / "markers.lyrdb").read_text().lstrip().startswith("<?xml")
    assert (out / "contours.gds").stat().st_size > 0 and (out / "contours.oas").is_file()


def test_overlay_without_a_model_registers_on_sem_edges(site):
    folder, case = site
    assert main(_args(folder, case, "--no-model")) == 0
    registration = json.loads((folder / "out" / "registration.json").read_text())
    assert registration["signal"] == "edges"
    assert abs(registration["dx_nm"] - case.offset_nm[0]) <= 8.0


def test_bad_layer_exits_with_status_2(site, capsys):
    folder, case = site
    assert main([*_args(folder, case, "--no-model"), "--layer", "x/y"]) == 2
    assert "layer" in capsys.readouterr().err
