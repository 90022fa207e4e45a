"""Tool experts: a calibrated tool's own SEM→layout generator, saved, loaded, exported, routed to
by the Predictor, composed by the fine-tune and checked by the gate."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from loop.finetune import request_finetune
from loop.finetune.blend import compose_candidate
from loop.gate import BrokenModelError, load_predictor
from loop.worker import run_worker
from semgan.calibration import (
    CalibrationError,
    CalibrationSet,
    fit_tool,
    load_calibration,
    save_calibration,
)
from semgan.checkpoint import CheckpointError, export_inference, load_checkpoint, save_checkpoint
from semgan.config import PRESETS
from semgan.experts import expert_file, inference_files, load_experts, save_expert
from semgan.infer import Predictor
from semgan.model import build_models
from store import Store
from tests.support import (
    add_pairs,
    calibration_pair,
    calibration_reference,
    install_production,
    inverted_tool,
    lively_model,
    perturbed_copy,
    save_tiny_model,
)

torch.set_num_threads(1)
TINY = PRESETS["tiny"]
TOOL = "sim:inverted"


def _with_expert(folder: Path) -> tuple[np.ndarray, torch.nn.Module]:
    """A lively model in ``folder`` whose calibrated tool has a different (fresh) generator."""
    reference_image, _ = calibration_pair(60, 0.6, 0.2, size=128, noise=0.0)
    models = lively_model(reference_image)
    save_checkpoint(folder, models, None, TINY, {"nm_per_px": 4.0}, None)
    expert = build_models(TINY, seed=7, critics=False).sem_to_layout.eval()
    save_expert(expert, folder / expert_file(0))
    tool = replace(fit_tool(TOOL, inverted_tool(), calibration_reference()), expert=expert_file(0))
    save_calibration(calibration_reference().with_tool(tool), folder)
    return reference_image, expert


def test_images_of_the_tool_go_to_its_expert_and_others_to_the_shared_generator(tmp_path: Path) -> None:
    reference_image, expert = _with_expert(tmp_path / "model")
    routed = Predictor.from_dir(tmp_path / "model", device="cpu")
    inverted = np.where(reference_image > 0.4, 0.1, 0.3).astype(np.float32)
    only_expert = Predictor(build_models(TINY, critics=False), TINY, device="cpu",
                            calibration=routed.calibration, experts={TOOL: expert})
    shared = Predictor(routed.models, TINY, device="cpu")
    assert np.array_equal(routed.predict(inverted).probability, only_expert.predict(inverted).probability)
    assert (routed.predict(inverted).expert, routed.predict(reference_image).expert) == (True, False)
    assert np.array_equal(routed.predict(reference_image).probability,
                          shared.predict(reference_image).probability)
    assert np.abs(routed.predict(inverted).probability
                  - shared.predict(routed.calibration.apply(inverted)[0]).probability).mean() > 0.01


def test_a_missing_expert_file_is_named(tmp_path: Path) -> None:
    _with_expert(tmp_path / "model")
    (tmp_path / "model" / expert_file(0)).unlink()
    with pytest.raises(CheckpointError, match=expert_file(0)):
        load_experts(tmp_path / "model", load_calibration(tmp_path / "model"), TINY)


def test_an_expert_path_outside_the_model_folder_is_refused(tmp_path: Path) -> None:
    tool = replace(fit_tool(TOOL, inverted_tool(), calibration_reference()),
                   expert="../elsewhere.safetensors")
    data = calibration_reference().with_tool(tool).to_dict()
    with pytest.raises(CalibrationError, match="file name"):
        CalibrationSet.from_dict(data)


def test_export_carries_experts_in_the_export_dtype(tmp_path: Path) -> None:
    _with_expert(tmp_path / "full")
    export_inference(tmp_path / "full", tmp_path / "export")
    assert load_checkpoint(tmp_path / "export").card.export["dtype"] == "float16"
    from semgan.checkpoint import read_safetensors

    tensors, _ = read_safetensors(tmp_path / "export" / expert_file(0))
    assert {t.dtype for t in tensors.values() if t.is_floating_point()} == {torch.float16}
    exported = Predictor.from_dir(tmp_path / "export", device="cpu")
    assert list(exported.experts) == [TOOL]


def test_gate_refuses_an_expert_holding_nan(tmp_path: Path) -> None:
    _with_expert(tmp_path / "model")
    broken = build_models(TINY, critics=False).sem_to_layout
    with torch.no_grad():
        next(broken.parameters()).fill_(float("nan"))
    save_expert(broken, tmp_path / "model" / expert_file(0))
    with pytest.raises(BrokenModelError, match="expert of"):
        load_predictor(tmp_path / "model", device="cpu")


def test_pairs_only_from_the_expert_tool_leave_the_shared_generator_as_production(tmp_path: Path) -> None:
    production = save_tiny_model(tmp_path / "production")
    candidate = perturbed_copy(production, tmp_path / "candidate", 0.5)
    tuned = load_checkpoint(candidate).models.sem_to_layout.state_dict()
    calibration = calibration_reference().with_tool(
        fit_tool(TOOL, inverted_tool(), calibration_reference()))
    lines: list[str] = []
    saved, summary = compose_candidate(candidate, production, calibration, {TOOL: 6}, 0.5, True, 1.0,
                                       lines.append)
    assert summary == {"blend": 0.0, "experts": [TOOL], "shared_pairs": 0}
    assert saved is not None and saved.tools[0].expert == expert_file(0)
    shared = load_checkpoint(candidate).models.sem_to_layout.state_dict()
    start = load_checkpoint(production).models.sem_to_layout.state_dict()
    assert all(torch.equal(shared[k], start[k]) for k in start if start[k].is_floating_point())
    expert = load_experts(candidate, saved, TINY)[TOOL].state_dict()
    assert all(torch.equal(expert[k], tuned[k]) for k in tuned)


def test_pairs_of_training_tools_blend_the_shared_generator(tmp_path: Path) -> None:
    production = save_tiny_model(tmp_path / "production")
    candidate = perturbed_copy(production, tmp_path / "candidate", 0.5)
    calibration = calibration_reference().with_tool(
        fit_tool(TOOL, inverted_tool(), calibration_reference()))
    _, summary = compose_candidate(candidate, production, calibration, {TOOL: 6, "tool:clean": 4},
                                   0.5, True, 1.0, lambda line: None)
    assert summary == {"blend": 0.5, "experts": [TOOL], "shared_pairs": 4}
    name, start = next(iter(load_checkpoint(production).models.sem_to_layout.state_dict().items()))
    assert torch.allclose(load_checkpoint(candidate).models.sem_to_layout.state_dict()[name],
                          start + 0.25, atol=1e-6)


def test_fine_tune_on_a_drifted_tool_ships_an_expert_and_keeps_the_shared_weights(tmp_path: Path) -> None:
    with Store.open(tmp_path / "ws") as store:
        production = install_production(store)
        add_pairs(store, 10, profile="drifted")
        job = request_finetune(store)
        assert run_worker(store.workspace, once=True) == 1
        candidate = store.get_model(store.get_job(job.id).result["candidate_version"])
    calibration = load_calibration(candidate.path)
    assert calibration is not None and calibration.tools[0].expert == expert_file(0)
    assert (Path(candidate.path) / expert_file(0)).is_file()
    assert candidate.training_summary["experts"] == ["tool:sim:drifted"]
    shared = load_checkpoint(candidate.path).models.sem_to_layout.state_dict()
    start = load_checkpoint(production.path).models.sem_to_layout.state_dict()
    # BatchNorm's integer batch counters keep counting; they do not enter predictions.
    assert all(torch.equal(shared[k], start[k]) for k in start if start[k].is_floating_point())
    assert json.loads((Path(candidate.path) / "card.json").read_text())["fine_tune"]["blend"] == 0.0


def test_inference_files_name_calibration_and_experts(tmp_path: Path) -> None:
    _with_expert(tmp_path / "model")
    assert inference_files(tmp_path / "model") == ["weights.safetensors", "config.json", "card.json",
                                                   "calibration.json", expert_file(0)]


def test_downloaded_model_zip_predicts_with_its_expert(tmp_path: Path) -> None:
    import zipfile

    from annotate.models_tab import package_model
    from store import ModelVersion

    _with_expert(tmp_path / "model")
    model = ModelVersion(**{**{f: None for f in ModelVersion.__dataclass_fields__},
                            "version": 3, "path": str(tmp_path / "model")})
    with zipfile.ZipFile(package_model(model)) as archive:
        archive.extractall(tmp_path / "unzipped")
    assert list(Predictor.from_dir(tmp_path / "unzipped" / "v3", device="cpu").experts) == [TOOL]


def test_a_tool_without_pairs_this_time_keeps_productions_expert(tmp_path: Path) -> None:
    _with_expert(tmp_path / "production")  # production carries an expert for TOOL
    production = tmp_path / "production"
    candidate = perturbed_copy(save_tiny_model(tmp_path / "full"), tmp_path / "candidate", 0.5)
    saved, summary = compose_candidate(candidate, production, load_calibration(production),
                                       {"tool:clean": 4}, 0.5, True, 1.0, lambda line: None)
    assert summary["experts"] == [TOOL] and summary["blend"] == 0.5
    assert (candidate / expert_file(0)).read_bytes() == (production / expert_file(0)).read_bytes()
    assert saved is not None and saved.tools[0].expert == expert_file(0)
