"""Adaptation per tool: a corrected tool gets its own generator, used for its images only;
every other tool keeps production's bit for bit; the gate judges tool by tool."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from loop.finetune import PrintReporter, run_finetune, set_finetune_config
from loop.finetune.expert import ExpertRecipe, train_expert
from loop.finetune.recipe import FinetuneConfig
from loop.gate import GateConfig
from loop.jobs import FinetuneRequest, FinetuneResult
from loop.toolgate import judge_tool, paired_bootstrap, run_tool_gate, untouched_tools
from loop.worker import run_worker
from semgan.calibration import load_calibration, tool_key
from semgan.config import PRESETS
from semgan.experts import save_expert
from semgan.infer import Predictor
from semgan.model import build_models
from semgan.semsim import PROFILES
from semgan.synth import make_pair
from store import Store
from tests.support import NM_PER_PX, SIZE, TINY_TOOLS, add_pairs, install_production

torch.set_num_threads(1)
TINY = PRESETS["tiny"]


@pytest.fixture
def store(tmp_path: Path):
    with Store.open(tmp_path / "ws") as opened:
        install_production(opened)
        set_finetune_config(opened, TINY_TOOLS)
        yield opened


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _image(profile: str, seed: int = 77) -> np.ndarray:
    return make_pair(0, size=SIZE, nm_per_px=NM_PER_PX, profiles=[PROFILES[profile]],
                     seed=seed).sem_image


def _candidate(store: Store, config: FinetuneConfig = TINY_TOOLS):
    request = FinetuneRequest("manual", "test", config.to_dict(), 1, 0.0)
    return run_finetune(store, request.to_params(), PrintReporter(), job_id=None)


def test_each_corrected_tool_gets_an_adaptation_and_the_shared_generator_is_unchanged(
        store: Store) -> None:
    add_pairs(store, 6, seed=5, profile="drifted")
    add_pairs(store, 6, seed=6, profile="noisy")
    outcome = _candidate(store)
    folder, production = Path(outcome.candidate.path), Path(store.production_model().path)
    assert _sha(folder / "weights.safetensors") == _sha(production / "weights.safetensors")
    calibration = load_calibration(folder)
    assert {t.tool for t in calibration.tools} == {"tool:sim:drifted", "tool:sim:noisy"}
    assert all((folder / t.expert).is_file() for t in calibration.tools)
    assert outcome.summary.strategy == "tools"
    assert set(outcome.summary.tools) == {"tool:sim:drifted", "tool:sim:noisy"}
    assert untouched_tools(folder, production, {"tool:sim:drifted", "tool:sim:noisy"}) == []


def test_a_tools_expert_is_used_only_for_images_tagged_with_it(store: Store) -> None:
    add_pairs(store, 6, seed=5, profile="drifted")
    outcome = _candidate(store)
    adapted = Predictor.from_dir(outcome.candidate.path, device="cpu")
    production = Predictor.from_dir(store.production_model().path, device="cpu")
    image = _image("drifted")
    tagged = adapted.predict(image, tool="sim:drifted")
    assert (tagged.expert, tagged.routing, tagged.calibration) == (True, "tag", "tool:sim:drifted")
    assert not np.array_equal(tagged.probability, production.predict(image).probability)
    for other in ("sim:clean", "cdsem-7", "unknown"):  # tagged, but not with an adapted tool
        result = adapted.predict(image, tool=other)
        assert (result.expert, result.routing) == (False, "none")
        assert np.array_equal(result.probability, production.predict(image, tool=other).probability)


def test_untagged_images_fall_back_to_the_nearest_histogram(store: Store) -> None:
    add_pairs(store, 6, seed=5, profile="drifted")
    adapted = Predictor.from_dir(_candidate(store).candidate.path, device="cpu")
    drifted, clean = adapted.predict(_image("drifted")), adapted.predict(_image("clean"))
    assert (drifted.routing, drifted.calibration) == ("histogram", "tool:sim:drifted")
    assert adapted.calibration.reference_examples and adapted.calibration.get("sim:drifted").examples
    chosen = adapted.calibration.choose(_image("clean").astype(np.float32) / 255)
    assert (clean.routing == "histogram") == (chosen is not None) == clean.expert


def test_routing_by_example_histograms_keeps_training_tool_images_on_the_shared_generator() -> None:
    from loop.finetune.tools import examples_of
    from semgan.calibration import ToolCalibration, reference_set

    def pairs(profile: str, seed: int, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
        made = (make_pair(i, size=SIZE, nm_per_px=NM_PER_PX, profiles=[PROFILES[profile]],
                          seed=seed) for i in range(count))
        return [(p.sem_image.astype(np.float32) / 255, p.layout_mask) for p in made]

    def images(profile: str, seed: int, count: int) -> list[np.ndarray]:
        return [sem for sem, _ in pairs(profile, seed, count)]

    training = [pair for p in ("clean", "noisy", "aged") for pair in pairs(p, 11, 8)]
    reference = replace(reference_set(training),
                        reference_examples=examples_of([sem for sem, _ in training]))
    drifted = images("drifted", 12, 8)
    tool = ToolCalibration("tool:sim:drifted", 1.0, 0.0, reference.reference_histogram, 8,
                           reference.reference_levels, examples=examples_of(drifted))
    routed = reference.with_tool(tool)
    assert all(routed.choose(im) is None for p in ("clean", "noisy", "aged") for im in images(p, 13, 6))
    assert all(routed.choose(im).tool == "tool:sim:drifted" for im in images("drifted", 14, 6))


def test_without_example_histograms_the_nearest_mean_histogram_routes(store: Store) -> None:
    add_pairs(store, 6, seed=5, profile="drifted")
    adapted = Predictor.from_dir(_candidate(store).candidate.path, device="cpu")
    old_style = replace(adapted.calibration, reference_examples=())  # a file from before examples
    image = _image("drifted").astype(np.float32) / 255
    assert old_style.choose(image).tool == "tool:sim:drifted"
    from semgan.calibration import CalibrationSet

    assert CalibrationSet.from_dict(old_style.to_dict()) == old_style


def test_untouched_tools_predict_bit_identically_after_a_fine_tune_of_another(store: Store) -> None:
    add_pairs(store, 6, seed=5, profile="drifted")
    first = _candidate(store)
    store.promote(first.candidate.version, "test", actor="test")
    before = Predictor.from_dir(first.candidate.path, device="cpu")
    add_pairs(store, 6, seed=6, profile="noisy")
    second = _candidate(store)
    after = Predictor.from_dir(second.candidate.path, device="cpu")
    image = _image("clean")
    for tool in ("sim:clean", "cdsem-7"):  # tools without an adaptation
        assert np.array_equal(before.predict(image, tool=tool).probability,
                              after.predict(image, tool=tool).probability)
    assert second.summary.tools["tool:sim:drifted"].started_from == "its previous expert"


def test_paired_bootstrap_says_how_sure_a_gain_is() -> None:
    mean, win, low = paired_bootstrap([0.2, 0.25, 0.3, 0.22])
    assert mean == pytest.approx(0.2425) and win == 1.0 and low > 0.19
    mean, win, _ = paired_bootstrap([0.4, -0.3, -0.2, 0.15])
    assert 0.2 < win < 0.8


def _rows(ious: list[float], epe: float = 2.0) -> list[dict]:
    return [{"iou": v, "epe_mean_nm": epe, "ssim": 0.5} for v in ious]


def test_judge_tool_passes_a_sure_gain_and_fails_a_regression_or_a_lucky_one() -> None:
    config = GateConfig()
    assert judge_tool("tool:a", _rows([0.9, 0.92, 0.88]), _rows([0.6, 0.62, 0.5]), config).passed
    assert not judge_tool("tool:a", _rows([0.5, 0.52]), _rows([0.6, 0.62]), config).passed
    lucky = judge_tool("tool:a", _rows([0.95, 0.3, 0.4]), _rows([0.5, 0.35, 0.45]), config)
    assert not lucky.passed and "bootstrap over 3 image(s)" in lucky.limit
    worse_edges = judge_tool("tool:a", _rows([0.9, 0.9], epe=9.0), _rows([0.6, 0.6], epe=2.0), config)
    assert not worse_edges.passed
    assert not judge_tool("tool:a", [], [], config).passed  # no held-out pairs: never blind


def _blank_expert(path: Path) -> None:
    generator = build_models(TINY, critics=False).sem_to_layout
    with torch.no_grad():
        generator.final.weight.zero_()
        generator.final.bias.fill_(-10.0)  # P(feature) = 0 everywhere: IoU 0 on any pattern
    save_expert(generator, path)


def test_the_gate_rejects_a_candidate_that_regresses_its_tool(store: Store, tmp_path: Path) -> None:
    add_pairs(store, 10, seed=6, profile="clean")  # every one of these layouts has pattern
    outcome = _candidate(store)
    tool = "tool:sim:clean"
    entry = load_calibration(outcome.candidate.path).get(tool)
    _blank_expert(Path(outcome.candidate.path) / entry.expert)
    result = run_tool_gate(store, store.get_model(outcome.candidate.version),
                           store.production_model(), [tool], SIZE, GateConfig(), "cpu",
                           tmp_path / "gate", print, lambda: None)
    assert result.decision == "reject", result.checks
    check = next(c for c in result.checks if c.name.startswith(tool))
    assert not check.passed and check.candidate == 0.0


def test_a_rejected_tool_gets_productions_adaptation_back_when_another_wins(
        store: Store, tmp_path: Path, monkeypatch) -> None:
    add_pairs(store, 8, seed=5, profile="drifted")
    first = _candidate(store)
    store.promote(first.candidate.version, "test", actor="test")
    add_pairs(store, 8, seed=6, profile="noisy")
    second = _candidate(store)
    folder, production = Path(second.candidate.path), Path(store.production_model().path)
    drifted = "tool:sim:drifted"
    kept = _sha(production / load_calibration(production).get(drifted).expert)
    verdicts = {drifted: False, "tool:sim:noisy": True}

    def fake_judge(tool, new, old, config):
        return replace(judge_tool(tool, _rows([0.9]), _rows([0.5]), config), passed=verdicts[tool])

    monkeypatch.setattr("loop.toolgate.judge_tool", fake_judge)
    result = run_tool_gate(store, store.get_model(second.candidate.version),
                           store.get_model(first.candidate.version), list(verdicts), SIZE,
                           GateConfig(), "cpu", tmp_path / "gate", print, lambda: None)
    assert result.decision == "promote"
    after = load_calibration(folder)
    assert _sha(folder / after.get(drifted).expert) == kept  # production's drifted expert back
    assert after.get("tool:sim:noisy").expert


def test_a_tools_fine_tune_runs_through_the_worker_and_the_gate_lists_each_tool(
        store: Store) -> None:
    add_pairs(store, 8, seed=5, profile="drifted")
    from loop.finetune import request_finetune

    job = request_finetune(store)
    assert run_worker(store.workspace, once=True) == 1
    done = store.get_job(job.id)
    assert done.status == "succeeded", done.error
    names = [c.name for c in FinetuneResult.of(done).gate.checks]
    assert any(n.startswith("tool:sim:drifted") for n in names)
    assert "every other tool bit-identical to production" in names


def test_the_expert_trainer_keeps_its_best_held_out_weights() -> None:
    pairs = [(make_pair(i, size=SIZE, nm_per_px=NM_PER_PX, profiles=[PROFILES["clean"]],
                        seed=3).sem_image.astype(np.float32) / 255,
              make_pair(i, size=SIZE, nm_per_px=NM_PER_PX, profiles=[PROFILES["clean"]],
                        seed=3).layout_mask) for i in range(4)]
    generator = build_models(TINY, critics=False).sem_to_layout
    result = train_expert(generator, pairs[1:], pairs[:1],
                          ExpertRecipe(crop=32, batch=2, max_steps=12, eval_every=4, min_steps=4),
                          multiple=2 ** TINY.generator.n_down)
    scores = [h["holdout_iou"] for h in result.history]
    assert result.best_iou == max(scores) and result.start_iou == scores[0]
    assert result.best_step in [h["step"] for h in result.history]


def test_tool_keys_are_one_spelling() -> None:
    assert tool_key("cdsem-2") == tool_key("tool:cdsem-2") == "tool:cdsem-2"
    assert tool_key(None) == tool_key("  ") == "tool:unknown"


def _adapted_workspace(store: Store) -> Path:
    """Production with an adaptation for tool sim:drifted (promoted by hand)."""
    add_pairs(store, 6, seed=5, profile="drifted")
    outcome = _candidate(store)
    store.promote(outcome.candidate.version, "test", actor="test")
    return Path(store.production_model().path)


def test_semgan_predict_takes_the_tool_tag(store: Store, tmp_path: Path) -> None:
    from semgan.__main__ import main as semgan_main
    from semgan.imageio import load_image, save_png

    folder = _adapted_workspace(store)
    image = _image("drifted")
    (tmp_path / "in").mkdir()
    save_png(tmp_path / "in" / "scan.png", image)
    predictor = Predictor.from_dir(folder, device="cpu")
    for tool, out in (("sim:drifted", "tagged"), ("cdsem-7", "other")):
        assert semgan_main(["predict", "--workspace", str(store.workspace), "--model", "production",
                            "--tool", tool, "--input", str(tmp_path / "in"), "--out",
                            str(tmp_path / out), "--device", "cpu"]) == 0
        expected = predictor.predict(image.astype(np.float32) / 255, tool=tool).mask
        assert np.array_equal(load_image(tmp_path / out / "scan.png").pixels > 0.5, expected)


def test_loop_ingest_tags_samples_and_predicts_them_with_their_tools_adaptation(
        store: Store, tmp_path: Path) -> None:
    from loop.__main__ import main as loop_main
    from semgan.imageio import save_png

    _adapted_workspace(store)
    (tmp_path / "lot").mkdir()
    save_png(tmp_path / "lot" / "a.png", _image("drifted", seed=91))
    assert loop_main(["ingest", "--workspace", str(store.workspace), str(tmp_path / "lot"),
                      "--nm-per-px", "4", "--tool", "sim:drifted", "--no-spawn"]) == 0
    sample = next(s for s in store.list_samples(tool="sim:drifted") if s.name == "a.png")
    summary = store.get_prediction(sample.id, store.production_model().version).confidence_summary
    assert (summary["tool_routing"], summary["tool_calibration"], summary["tool_expert"]) == \
        ("tag", "tool:sim:drifted", True)


def test_a_tiff_naming_its_instrument_is_tagged_with_it(tmp_path: Path) -> None:
    import tifffile

    from semgan.imageio import load_image

    path = tmp_path / "scan.tif"
    tifffile.imwrite(path, np.zeros((32, 32), np.uint8),
                     extratags=[(271, "s", 0, "Hitachi", True), (272, "s", 0, "CG6300", True)])
    assert load_image(path).tool == "Hitachi CG6300"
    save = tmp_path / "plain.tif"
    tifffile.imwrite(save, np.zeros((32, 32), np.uint8))
    assert load_image(save).tool is None
