"""Registration: known offsets recovered on simulated SEMs of real and repetitive layouts."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from semgan.design.clip import rasterize_clip
from semgan.design.errors import RegistrationError
from semgan.design.placement import Registration
from semgan.design.register import RegistrationConfig, register
from semgan.design.simulated import (
    case_family,
    make_case,
    noisy_prediction,
    outcome,
    procedural_layout,
    rates,
)
from semgan.layouts import rasterize

SHARED_LAYOUTS = Path(__file__).resolve().parents[1].parent / "shared" / "layouts"
GF180 = SHARED_LAYOUTS / "gf180mcu"
TRANSLATION_ONLY = {"rotations_deg": (0.0,), "scales": (1.0,)}


@pytest.fixture(scope="module")
def family():
    """≥ 40 cases: real gf180 cells (when present) and procedural line/space, contacts, …."""
    if GF180.is_dir():
        cases = case_family(GF180, real_count=8, per_layout=4, procedural_seeds=4)
    else:  # procedural only: as many cases from more seeds
        cases = case_family(None, procedural_seeds=8)
    assert len(cases) >= 40
    return cases


def _run(cases, signal: str) -> list:
    config = RegistrationConfig(signal=signal, **TRANSLATION_ONLY)
    results = []
    for index, case in enumerate(cases):
        clip = rasterize_clip(case.layout, case.believed_center_nm, case.sem_image.shape,
                              case.nm_per_px, 200.0)
        reg = register(clip, noisy_prediction(case.printed_mask, index), case.sem_image, config)
        results.append(outcome(case, reg.dx_nm, reg.dy_nm, reg.ambiguous))
    return results


def test_prediction_registration_recovers_offsets(family):
    figures = rates(_run(family, "prediction"))
    print(json.dumps(figures, indent=1))
    assert figures["all"]["passed"] >= 0.95
    assert figures["repetitive"]["silently_wrong"] == 0
    if "real" in figures:
        assert figures["real"]["recovered"] >= 0.95


def test_sem_edge_fallback_is_never_silently_wrong_on_repetitive_patterns(family):
    figures = rates(_run(family, "edges"))
    print(json.dumps(figures, indent=1))
    assert figures["repetitive"]["silently_wrong"] == 0
    assert figures["all"]["passed"] >= 0.8


def test_line_space_is_reported_ambiguous():
    layout = procedural_layout("lines", 480, 4.0, seed=0)
    case = make_case(layout, "lines", profile="clean", seed=1)
    clip = rasterize_clip(layout, case.believed_center_nm, case.sem_image.shape, 4.0, 200.0)
    reg = register(clip, case.printed_mask, None, RegistrationConfig(**TRANSLATION_ONLY))
    assert reg.ambiguous
    assert reg.confidence < 0.2


def test_rotation_is_found_and_not_invented():
    layout = procedural_layout("routing", 480, 4.0, seed=2)
    case = make_case(layout, "routing", profile="clean", seed=3)
    clip = rasterize_clip(layout, case.believed_center_nm, case.sem_image.shape, 4.0, 200.0)
    straight = register(clip, case.printed_mask)
    assert (straight.rotation_deg, straight.scale) == (0.0, 1.0)
    height, width = case.printed_mask.shape
    matrix = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), 1.0, 1.0)  # CCW 1°
    turned = cv2.warpAffine(case.printed_mask.astype(np.float32), matrix, (width, height)) > 0.5
    rotated = register(clip, turned)
    assert rotated.rotation_deg == 1.0
    assert abs(rotated.dx_nm - case.offset_nm[0]) <= 6.0
    assert abs(rotated.dy_nm - case.offset_nm[1]) <= 6.0


def test_registration_round_trips_and_nudges():
    reg = Registration((10.0, 20.0), 4.0, 8.0, -4.0, 0.0, 1.0, 0.9, 0.2, 0.78, False, "prediction",
                       200.0, ((40.0, 0.0, 0.85),))
    again = Registration.from_dict(json.loads(json.dumps(reg.to_dict())))
    assert again == reg
    moved = reg.nudged(2.0, -1.0)
    assert moved.true_center_nm == (20.0, 15.0)
    assert (moved.nudge_x_nm, moved.nudge_y_nm) == (2.0, -1.0)


def test_flat_prediction_is_refused():
    layout = procedural_layout("routing", 480, 4.0, seed=2)
    clip = rasterize_clip(layout, (960.0, 960.0), (64, 64), 4.0, 40.0)
    with pytest.raises(RegistrationError):
        register(clip, np.zeros((64, 64), bool))


def test_unknown_signal_is_refused():
    with pytest.raises(RegistrationError):
        RegistrationConfig(signal="phase")


def test_auto_falls_back_on_sem_edges_when_the_prediction_fits_nowhere():
    layout = procedural_layout("routing", 480, 4.0, seed=2)
    case = make_case(layout, "routing", profile="clean", seed=3)
    clip = rasterize_clip(layout, case.believed_center_nm, case.sem_image.shape, 4.0, 200.0)
    lost = procedural_layout("routing", 256, 4.0, seed=11)  # a model's output of another site
    wrong = rasterize(lost.polygons, (0, 0, 1024, 1024), 4.0)
    reg = register(clip, wrong, case.sem_image, RegistrationConfig(**TRANSLATION_ONLY))
    assert reg.signal == "edges"
    assert abs(reg.dx_nm - case.offset_nm[0]) <= 8.0 and abs(reg.dy_nm - case.offset_nm[1]) <= 8.0
