"""Per-tool grey-level calibration: measuring levels, fitting the map, choosing it per image, the
model-folder file, the Predictor and the training data, and the fine-tune that creates it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from loop.finetune import request_finetune
from loop.finetune.calibrate import MIN_PAIRS_PER_TOOL, calibrate_tools
from loop.worker import run_worker
from semgan.calibration import (
    CALIBRATION_FILE,
    CalibrationError,
    fit_tool,
    load_calibration,
    material_levels,
    reference_set,
    save_calibration,
)
from semgan.checkpoint import export_inference, save_checkpoint
from semgan.config import PRESETS
from semgan.data import PairedDataset
from semgan.infer import Predictor
from store import Store
from tests.support import (
    add_pairs,
    calibration_pair,
    calibration_reference,
    install_production,
    inverted_tool,
    lively_model,
    record_dataset_argument,
    write_synth_folder,
)

torch.set_num_threads(1)
TINY = PRESETS["tiny"]


def test_levels_are_measured_on_pattern_and_background_interiors() -> None:
    levels = material_levels([calibration_pair(k, 0.7, 0.25) for k in range(3)])
    assert levels.pattern == pytest.approx(0.7, abs=0.01) and levels.background == pytest.approx(0.25, abs=0.01)


def test_an_inverted_tool_gets_a_negative_gain_that_restores_the_reference_levels() -> None:
    calibration = fit_tool("sim:inverted", inverted_tool(), calibration_reference())
    assert calibration.gain == pytest.approx(-2.0, rel=0.05)
    image, mask = calibration_pair(7, 0.1, 0.3, noise=0.0)
    mapped = calibration.apply(image)
    assert mapped[mask].mean() == pytest.approx(0.6, abs=0.02)
    assert mapped[~mask].mean() == pytest.approx(0.2, abs=0.02)


def test_a_tool_without_material_contrast_is_refused() -> None:
    with pytest.raises(CalibrationError, match="no usable material contrast"):
        fit_tool("sim:flat", [calibration_pair(k, 0.3, 0.3) for k in range(5)], calibration_reference())


def test_pairs_without_background_are_refused() -> None:
    full = (np.full((64, 64), 0.5, np.float32), np.ones((64, 64), bool))
    with pytest.raises(CalibrationError, match="no pattern or no background"):
        material_levels([full])


def test_each_image_gets_the_calibration_of_the_closest_histogram() -> None:
    calibrations = calibration_reference().with_tool(
        fit_tool("sim:inverted", inverted_tool(), calibration_reference()))
    assert calibrations.choose(calibration_pair(50, 0.1, 0.3)[0]).tool == "sim:inverted"
    assert calibrations.choose(calibration_pair(51, 0.6, 0.2)[0]) is None
    image = calibration_pair(52, 0.6, 0.2)[0]
    assert calibrations.apply(image)[1] is None and np.array_equal(calibrations.apply(image)[0], image)


def test_refitting_a_tool_replaces_its_calibration() -> None:
    reference = calibration_reference()
    first = reference.with_tool(fit_tool("sim:inverted", inverted_tool(), reference))
    second = first.with_tool(fit_tool("sim:inverted", inverted_tool()[:3], reference))
    assert [t.pairs for t in second.tools] == [3]


def test_the_file_round_trips_and_a_broken_one_is_named(tmp_path: Path) -> None:
    calibrations = calibration_reference().with_tool(
        fit_tool("sim:inverted", inverted_tool(), calibration_reference()))
    save_calibration(calibrations, tmp_path)
    assert load_calibration(tmp_path) == calibrations
    assert load_calibration(tmp_path / "nowhere") is None
    data = json.loads((tmp_path / CALIBRATION_FILE).read_text())
    data["tools"][0]["gain"] = "steep"
    (tmp_path / CALIBRATION_FILE).write_text(json.dumps(data))
    with pytest.raises(CalibrationError, match=CALIBRATION_FILE):
        load_calibration(tmp_path)
    (tmp_path / CALIBRATION_FILE).write_text("{not json")
    with pytest.raises(CalibrationError, match="unreadable"):
        load_calibration(tmp_path)


def test_predictor_maps_a_calibrated_tool_back_to_the_reference_prediction(tmp_path: Path) -> None:
    reference_image, _ = calibration_pair(60, 0.6, 0.2, size=128, noise=0.0)
    models = lively_model(reference_image)
    calibrations = calibration_reference().with_tool(
        fit_tool("sim:inverted", inverted_tool(), calibration_reference()))
    save_checkpoint(tmp_path / "model", models, None, TINY, {"nm_per_px": 4.0}, None)
    save_calibration(calibrations, tmp_path / "model")
    predictor = Predictor.from_dir(tmp_path / "model", device="cpu")
    inverted = np.where(reference_image > 0.4, 0.1, 0.3).astype(np.float32)  # the same scene on the new tool
    on_tool, on_reference = predictor.predict(inverted), predictor.predict(reference_image)
    assert (on_tool.calibration, on_reference.calibration) == ("sim:inverted", None)
    assert np.abs(on_tool.probability - on_reference.probability).mean() < 0.02
    plain = Predictor(models, TINY, device="cpu")
    assert np.abs(plain.predict(inverted).probability - on_reference.probability).mean() > 0.1


def test_export_carries_the_calibration(tmp_path: Path) -> None:
    models = lively_model(calibration_pair(61, 0.6, 0.2, size=128)[0])
    save_checkpoint(tmp_path / "full", models, None, TINY, {"nm_per_px": 4.0}, None)
    save_calibration(calibration_reference(), tmp_path / "full")
    export_inference(tmp_path / "full", tmp_path / "export")
    assert load_calibration(tmp_path / "export") == calibration_reference()


def test_training_crops_use_the_same_per_image_rule(tmp_path: Path) -> None:
    folder = write_synth_folder(tmp_path)  # bright pattern (170) on dark (60)
    sem, mask = PairedDataset(folder).load_pair(0)
    tool = fit_tool("sim:inverted", [(1 - sem, mask)] * MIN_PAIRS_PER_TOOL, reference_set([(sem, mask)]))
    inverted = reference_set([(sem, mask)]).with_tool(tool)
    item = PairedDataset(folder, calibration=inverted)[0]["sem_image"][0].numpy()
    assert np.abs(item - (sem * 2 - 1)).mean() < 0.05  # left alone: closest to the reference


def _folder_of(pairs: list[tuple[np.ndarray, np.ndarray]], folder: Path, tool: str) -> Path:
    from PIL import Image

    for sub in ("sem", "layout"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    items = []
    for index, (sem, mask) in enumerate(pairs):
        name = f"{index:04d}"
        Image.fromarray(np.rint(sem * 255).astype(np.uint8)).save(folder / "sem" / f"{name}.png")
        Image.fromarray(mask.astype(np.uint8) * 255).save(folder / "layout" / f"{name}.png")
        items.append({"name": name, "sem": f"sem/{name}.png", "layout": f"layout/{name}.png", "profile": tool})
    (folder / "manifest.json").write_text(json.dumps({"version": 1, "nm_per_px": 4.0, "size": 96,
                                                      "items": items}))
    return folder


def test_fine_tune_calibrates_foreign_tools_only(tmp_path: Path) -> None:
    anchors = _folder_of([calibration_pair(k, 0.6, 0.2) for k in range(6)], tmp_path / "anchors", "clean")
    corrected = tmp_path / "corrected"
    pairs = ([(s, m, "tool:inverted") for s, m in inverted_tool()]
             + [(*calibration_pair(200 + k, 0.58, 0.22), "tool:twin") for k in range(6)]
             + [(*calibration_pair(300 + k, 0.9, 0.5), "tool:rare") for k in range(2)])
    _folder_of([(s, m) for s, m, _ in pairs], corrected, "")
    manifest = json.loads((corrected / "manifest.json").read_text())
    for item, (_, _, tool) in zip(manifest["items"], pairs, strict=True):
        item["profile"] = tool
    (corrected / "manifest.json").write_text(json.dumps(manifest))
    lines: list[str] = []
    result = calibrate_tools(tmp_path / "no-model", anchors, corrected, lines.append)
    assert result is not None and [t.tool for t in result.tools] == ["tool:inverted"]
    assert result.tools[0].gain < 0
    text = "\n".join(lines)
    assert "tool:twin: grey levels" in text and "tool:rare: foreign grey levels" in text


def test_fine_tune_job_on_a_drifted_tool_ships_its_calibration(tmp_path: Path) -> None:
    with Store.open(tmp_path / "ws") as store:
        install_production(store)
        add_pairs(store, 10, profile="drifted")
        job = request_finetune(store)
        assert run_worker(store.workspace, once=True) == 1
        candidate = store.get_model(store.get_job(job.id).result["candidate_version"])
        log = store.get_job(job.id)
    calibration = load_calibration(candidate.path)
    assert calibration is not None and [t.tool for t in calibration.tools] == ["tool:sim:drifted"]
    assert calibration.tools[0].gain < 0  # inverted material contrast
    assert candidate.training_summary["pairs_used"]["calibrated_tools"]["tool:sim:drifted"]["gain"] < 0
    assert log.status == "succeeded"


def test_fine_tune_on_the_training_tools_adds_no_calibration(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    seen = record_dataset_argument(monkeypatch, "calibration")
    with Store.open(tmp_path / "ws") as store:
        install_production(store)
        add_pairs(store, 8)
        job = request_finetune(store)
        run_worker(store.workspace, once=True)
        candidate = store.get_model(store.get_job(job.id).result["candidate_version"])
    assert seen and all(value is None for value in seen)
    assert not (Path(candidate.path) / CALIBRATION_FILE).exists()
