"""``python -m semgan train`` and ``predict`` end to end on a tiny folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from semgan.__main__ import main
from tests.support import write_synth_folder

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model trained for 3 steps through the CLI."""
    root = tmp_path_factory.mktemp("cli")
    data = write_synth_folder(root / "data")
    code = main(["train", "--data", str(data), "--out", str(root / "model"), "--preset", "tiny",
                 "--steps", "3", "--device", "cpu", "--crop", "32", "--batch", "2", "--seed", "1"])
    assert code == 0
    return root / "model"


def test_train_writes_the_exact_command_into_the_card(trained: Path) -> None:
    card = json.loads((trained / "card.json").read_text())
    assert card["command"] == (f"python -m semgan train --data {trained.parent / 'data'} --out {trained} "
                               "--preset tiny --steps 3 --device cpu --crop 32 --batch 2 --seed 1 --precision auto --no-standardize")
    assert (card["steps"], card["nm_per_px"], card["data_recipe"]["items"]) == (3, 4.0, 6)


def test_train_resumes_to_a_larger_step_count(trained: Path, tmp_path: Path) -> None:
    import shutil

    model = shutil.copytree(trained, tmp_path / "model")
    code = main(["train", "--data", str(trained.parent / "data"), "--out", str(model), "--steps", "4"])
    assert code == 0
    assert json.loads((model / "card.json").read_text())["steps"] == 4
    assert json.loads((model / "config.json").read_text())["data"]["crop_size"] == 32  # kept from the checkpoint


def test_fine_tune_from_the_cli_records_its_origin(trained: Path, tmp_path: Path) -> None:
    code = main(["train", "--data", str(trained.parent / "data"), "--out", str(tmp_path / "candidate"),
                 "--init-from", str(trained), "--steps", "1"])
    assert code == 0
    card = json.loads((tmp_path / "candidate" / "card.json").read_text())
    assert (card["fine_tuned_from"], card["lr_scale"], card["steps"]) == (str(trained.resolve()), 0.1, 1)
    assert card["command"].endswith(f"--no-standardize --init-from {trained} --lr-scale 0.1")


def test_fine_tune_can_switch_on_input_standardisation(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "standardised"
    code = main(["train", "--data", str(trained.parent / "data"), "--out", str(out),
                 "--init-from", str(trained), "--steps", "1", "--standardize"])
    assert code == 0
    assert json.loads((out / "config.json").read_text())["data"]["standardize"] is True
    assert json.loads((trained / "config.json").read_text())["data"]["standardize"] is False
    assert "--standardize --init-from" in json.loads((out / "card.json").read_text())["command"]


def test_predict_writes_a_binary_png_at_the_input_size(trained: Path, tmp_path: Path) -> None:
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (70, 90), dtype=np.uint8)).save(tmp_path / "a.png")
    code = main(["predict", "--model", str(trained), "--input", str(tmp_path / "a.png"), "--out",
                 str(tmp_path / "out"), "--nm-per-px", "3", "--device", "cpu"])
    assert code == 0
    layout = np.asarray(Image.open(tmp_path / "out" / "a.png"))
    assert layout.shape == (70, 90)
    assert set(np.unique(layout)) <= {0, 255}


def test_predict_layout_to_sem_over_a_folder(trained: Path, tmp_path: Path) -> None:
    folder = tmp_path / "layouts"
    folder.mkdir()
    for name in ("x", "y"):
        Image.fromarray(np.kron(np.eye(4, dtype=np.uint8) * 255, np.ones((16, 16), np.uint8))).save(folder / f"{name}.png")
    code = main(["predict", "--model", str(trained), "--input", str(folder), "--out", str(tmp_path / "out"),
                 "--direction", "layout2sem", "--device", "cpu"])
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x.png", "y.png"]
    assert np.asarray(Image.open(tmp_path / "out" / "x.png")).shape == (64, 64)


def test_predict_without_pixel_size_warns_and_uses_the_model_s(trained: Path, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "a.png")
    main(["predict", "--model", str(trained), "--input", str(tmp_path / "a.png"), "--out", str(tmp_path / "o"),
          "--device", "cpu"])
    assert "assuming the model's 4.0 nm/px" in capsys.readouterr().err


def test_predict_with_a_missing_model_exits_2_with_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "a.png")
    code = main(["predict", "--model", str(tmp_path / "nope"), "--input", str(tmp_path / "a.png"),
                 "--out", str(tmp_path / "o")])
    assert code == 2
    assert "not a model folder" in capsys.readouterr().err


def test_train_refuses_data_at_another_pixel_size_when_resuming(trained: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    model = shutil.copytree(trained, tmp_path / "model")
    other = write_synth_folder(tmp_path / "data2", nm_per_px=2.0)
    assert main(["train", "--data", str(other), "--out", str(model), "--steps", "4"]) == 2
    assert "2.0 nm/px" in capsys.readouterr().err


def test_evaluate_prints_model_and_baseline_and_writes_json(trained: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "eval.json"
    code = main(["evaluate", "--model", str(trained), "--data", str(trained.parent / "data"),
                 "--json", str(out), "--device", "cpu"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "model " in printed and "otsu-baseline " in printed
    result = json.loads(out.read_text())
    assert set(result["methods"]) == {"model", "otsu-baseline"}
    assert result["methods"]["model"]["overall"]["count"] == 6
    assert 0.0 <= result["methods"]["model"]["overall"]["iou"] <= 1.0


def test_evaluate_edge_check_both_scores_each_model_with_and_without(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    code = main(["evaluate", "--model", str(trained), "--data", str(trained.parent / "data"),
                 "--json", str(out), "--device", "cpu", "--edge-check", "both", "--no-baseline"])
    assert code == 0
    result = json.loads(out.read_text())
    methods = result["methods"]
    assert set(methods) == {"model", "model (no edge check)"}
    assert result["edge_check"]["min_support"] == 0.2 and result["edge_check"]["enabled"] is True
    # a tiny model's speckled masks are exactly what the check changes
    assert methods["model"]["overall"]["iou"] != methods["model (no edge check)"]["overall"]["iou"]


def test_predict_no_edge_check_keeps_the_generators_raw_mask(trained: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(1)
    sem = np.full((64, 64), 60.0)
    sem[8:56, 10:20] = sem[8:30, 30:54] = 180.0  # strong edges, so the check judges the image
    Image.fromarray(np.clip(sem + rng.normal(0, 8, sem.shape), 0, 255).astype(np.uint8)).save(tmp_path / "a.png")
    common = ["predict", "--model", str(trained), "--input", str(tmp_path / "a.png"), "--device", "cpu",
              "--nm-per-px", "4"]
    assert main([*common, "--out", str(tmp_path / "checked")]) == 0
    assert "edge check flipped" in capsys.readouterr().out
    assert main([*common, "--out", str(tmp_path / "raw"), "--no-edge-check"]) == 0
    assert "edge check" not in capsys.readouterr().out
    checked = np.asarray(Image.open(tmp_path / "checked" / "a.png"))
    raw = np.asarray(Image.open(tmp_path / "raw" / "a.png"))
    assert checked.shape == raw.shape and not np.array_equal(checked, raw)


def test_evaluate_refuses_an_unknown_example_item_before_evaluating(trained: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["evaluate", "--model", str(trained), "--data", str(trained.parent / "data"),
                 "--examples", str(tmp_path / "x.png"), "--examples-items", "nope", "--device", "cpu"])
    assert code == 2
    assert "no items named nope" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_evaluate_unknown_model_exits_2(tmp_path: Path) -> None:
    code = main(["evaluate", "--model", str(tmp_path / "nothing"), "--data", str(tmp_path)])
    assert code == 2


def test_export_writes_fp16_generators_with_drift_reference_and_evaluation(trained: Path, tmp_path: Path) -> None:
    from safetensors import safe_open

    from semgan.infer import Predictor

    evaluation = tmp_path / "eval.json"
    assert main(["evaluate", "--model", str(trained), "--data", str(trained.parent / "data"),
                 "--json", str(evaluation), "--device", "cpu"]) == 0
    out = tmp_path / "shipped"
    assert main(["export", "--model", str(trained), "--out", str(out),
                 "--reference-data", str(trained.parent / "data"), "--evaluation", str(evaluation)]) == 0
    card = json.loads((out / "card.json").read_text())
    assert card["drift_reference"]["n_images"] == 6
    assert card["metrics"]["heldout"]["count"] == 6  # the model's own row of the evaluation
    assert card["evaluations"][0]["edge_check"]["pixel_ratio"] == 0.25  # the settings scored with
    assert set(card["evaluations"][0]["methods"]) == {"model", "otsu-baseline"}
    assert card["export"]["command"].startswith(f"python -m semgan export --model {trained} --out {out}")
    with safe_open(str(out / "weights.safetensors"), "pt") as weights:
        names = list(weights.keys())
        assert all(not name.startswith(("layout_critic", "sem_critic")) for name in names)
        dtypes = {str(weights.get_tensor(name).dtype) for name in names}
    assert "torch.float16" in dtypes and "torch.float32" not in dtypes
    assert Predictor.from_dir(out, device="cpu").predict(np.zeros((40, 40), np.uint8), 4.0).mask.shape == (40, 40)


def test_export_of_a_fine_tuned_model_lists_the_runs_it_grew_from(trained: Path, tmp_path: Path) -> None:
    data = str(trained.parent / "data")
    first, second = tmp_path / "first", tmp_path / "second"
    assert main(["train", "--data", data, "--out", str(first), "--init-from", str(trained), "--steps", "1"]) == 0
    assert main(["train", "--data", data, "--out", str(second), "--init-from", str(first), "--steps", "1"]) == 0
    assert main(["export", "--model", str(second), "--out", str(tmp_path / "shipped")]) == 0
    chain = json.loads((tmp_path / "shipped" / "card.json").read_text())["lineage"]
    assert [link["model"] for link in chain] == [str(first.resolve()), str(trained.resolve())]
    assert chain[1]["command"].startswith("python -m semgan train") and chain[1]["steps"] == 3
    assert chain[0]["command"].endswith(f"--init-from {trained} --lr-scale 0.1")


def test_lineage_names_an_ancestor_that_is_gone(tmp_path: Path) -> None:
    from semgan.commands.export import lineage

    assert lineage({"fine_tuned_from": str(tmp_path / "gone")}) == [
        {"model": str(tmp_path / "gone"), "missing": True}]


def test_evaluate_with_two_models_prints_and_saves_their_paired_comparison(
        trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--model", str(trained), "--model", str(trained), "--data",
                 str(trained.parent / "data"), "--json", str(out), "--device", "cpu", "--no-baseline"]) == 0
    assert "[paired: model vs model']" in capsys.readouterr().out
    comparison = json.loads(out.read_text())["comparisons"][0]
    assert (comparison["first"], comparison["second"]) == ("model", "model'")
    overall_iou = comparison["differences"][0]
    assert (overall_iou["group"], overall_iou["mean"], overall_iou["better"], overall_iou["worse"]) == (
        "overall", 0.0, 0, 0)  # the same model twice: no difference on any image
    assert main(["export", "--model", str(trained), "--out", str(tmp_path / "shipped"), "--evaluation", str(out)]) == 0
    card = json.loads((tmp_path / "shipped" / "card.json").read_text())
    assert card["evaluations"][0]["comparisons"][0]["second"] == "model'"


def test_train_on_two_folders_records_both(trained: Path, tmp_path: Path) -> None:
    other = write_synth_folder(tmp_path / "other", seed=5)
    out = tmp_path / "two"
    code = main(["train", "--data", str(trained.parent / "data"), "--data", str(other), "--out", str(out),
                 "--init-from", str(trained), "--steps", "1"])
    assert code == 0
    card = json.loads((out / "card.json").read_text())
    assert card["data_recipe"]["items"] == 12
    assert [part["items"] for part in card["data_recipe"]["parts"]] == [6, 6]
    assert f"--data {trained.parent / 'data'} --data {other} --out {out}" in card["command"]


def test_fine_tune_from_an_export_needs_its_critics(trained: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    data = str(trained.parent / "data")
    with_critics, without = tmp_path / "with", tmp_path / "without"
    assert main(["export", "--model", str(trained), "--out", str(with_critics), "--critics"]) == 0
    assert main(["export", "--model", str(trained), "--out", str(without)]) == 0
    # From an export with critics (as the shipped default is): fresh Adam moments, trained weights.
    assert main(["train", "--data", data, "--out", str(tmp_path / "a"), "--init-from", str(with_critics),
                 "--steps", "1"]) == 0
    assert json.loads((tmp_path / "a" / "card.json").read_text())["fine_tuned_from"] == str(with_critics.resolve())
    assert main(["train", "--data", data, "--out", str(tmp_path / "b"), "--init-from", str(without),
                 "--steps", "1"]) == 2
    assert "export made with --critics" in capsys.readouterr().err
