"""The Review tab's Design overlay handlers: attach, register, show, nudge, CD, export, start mask."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from annotate import overlay
from annotate import overlay_view as ov
from annotate.studio import Studio
from semgan.design.simulated import make_case, procedural_layout
from semgan.polygons import write_gds
from store import Store
from tests.support import register_dummy_production


@pytest.fixture
def site(tmp_path: Path):
    """A studio with one sample (a simulated routing site) predicted as its printed contour."""
    layout = procedural_layout("routing", 480, 4.0, seed=5)
    write_gds(layout.polygons, tmp_path / "design.gds", cell="TOP", layer=(34, 0))
    case = make_case(layout, "routing", profile="clean", seed=9, size_px=160)
    cx, cy = case.believed_center_nm
    with Store.open(tmp_path / "ws") as store:
        model = register_dummy_production(store)
        sample = store.add_sample(case.sem_image, 4.0, "upload", name=f"site_x{cx:.0f}_y{cy:.0f}.png")
        store.add_prediction(sample.id, model.version, case.printed_mask, {}, 0.0)
        yield Studio(store, author="tester"), sample.id, case, tmp_path / "design.gds"


def test_attach_registers_from_the_sample_name_and_shows_epe(site):
    studio, sample_id, case, gds = site
    message = ov.attach(studio, sample_id, str(gds), "TOP", "34/0", "", 200.0)
    assert "from the sample's name" in message
    shown = ov.show(studio, sample_id, message)
    note, summary, rows = shown.note, shown.summary, shown.rows
    registration = studio.store.sample_design(sample_id).registration
    # The name carries the centre rounded to 1 nm: the offset found is from that centre.
    named = (round(case.believed_center_nm[0]), round(case.believed_center_nm[1]))
    true = case.true_center_nm
    assert abs(registration["dx_nm"] - (true[0] - named[0])) <= 6.0
    assert abs(registration["dy_nm"] - (true[1] - named[1])) <= 6.0
    assert "Offset" in note and all((shown.over_sem, shown.over_pred, shown.epe_map))
    assert "mean |EPE|" in summary
    assert len(rows) == ov.WORST_SHOWN and rows[0][0] == 1


def test_nudge_moves_the_saved_offset(site):
    studio, sample_id, _, gds = site
    ov.attach(studio, sample_id, str(gds), "TOP", "34/0", "", 200.0)
    before = studio.store.sample_design(sample_id).registration
    overlay.nudge(studio, sample_id, 4.0, -8.0)
    after = studio.store.sample_design(sample_id).registration
    assert after["dx_nm"] == pytest.approx(before["dx_nm"] + 4.0)
    assert after["dy_nm"] == pytest.approx(before["dy_nm"] - 8.0)
    assert (after["nudge_x_nm"], after["nudge_y_nm"]) == (4.0, -8.0)


def test_export_writes_contours_and_markers_into_the_workspace(site):
    studio, sample_id, _, gds = site
    ov.attach(studio, sample_id, str(gds), "TOP", "34/0", "", 200.0)
    note = overlay.export(studio, sample_id)
    folder = studio.exports_dir / f"design_sample_{sample_id}"
    assert str(folder) in note
    for name in ("registration.json", "epe.json", "markers.lyrdb", "contours.gds", "contours.oas"):
        assert (folder / name).is_file(), name


def test_start_mask_is_the_registered_design_and_cd_rows_come_back(site):
    studio, sample_id, case, gds = site
    assert overlay.start_mask(studio, sample_id) is None
    ov.attach(studio, sample_id, str(gds), "TOP", "34/0", "", 200.0)
    start = overlay.start_mask(studio, sample_id)
    assert start.shape == case.design_mask.shape
    assert np.mean(start == case.design_mask) > 0.97
    crossings = np.abs(np.diff(start.astype(int), axis=0)).sum(axis=0)  # per column
    rows = overlay._cd_rows(studio, sample_id, "col", int(np.argmax(crossings)))
    assert rows and all(len(r) == len(ov.CD_HEADERS) for r in rows)


def test_no_design_says_so(site):
    studio, sample_id, _, _ = site
    assert ov.show(studio, sample_id).note.startswith("No design attached")
