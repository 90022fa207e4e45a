"""Checkpoints: safetensors + JSON only, bit-identical round trips, named errors."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

from semgan.checkpoint import (
    CheckpointError,
    TrainState,
    export_inference,
    load_checkpoint,
    load_optimizer_state,
    save_checkpoint,
)
from semgan.config import PRESETS
from semgan.device import make_precision
from semgan.model import build_models
from semgan.train.step import Networks, build_optimizers, train_step
from tests.support import fixed_batch

torch.set_num_threads(1)
TINY = PRESETS["tiny"]
CARD = {"nm_per_px": 4.0, "steps": 2, "metrics": {}}


def _trained_checkpoint(folder: Path) -> Path:
    """Two real train steps (so Adam has moments), then a save."""
    models = build_models(TINY)
    optimizers = build_optimizers(models, TINY.optim)
    for _ in range(2):
        train_step(Networks.of(models), optimizers, fixed_batch(), TINY.loss, make_precision(torch.device("cpu")))
    return save_checkpoint(folder, models, optimizers, TINY, CARD, TrainState(step=2, wall_seconds=1.5))


def _resave(checkpoint, folder: Path) -> Path:
    optimizers = build_optimizers(checkpoint.models, checkpoint.config.optim)
    load_optimizer_state(optimizers.generator, checkpoint.optimizer_states["generator"], "test")
    load_optimizer_state(optimizers.discriminator, checkpoint.optimizer_states["discriminator"], "test")
    return save_checkpoint(folder, checkpoint.models, optimizers, checkpoint.config, checkpoint.card,
                           TrainState(step=checkpoint.state.step, wall_seconds=checkpoint.state.wall_seconds))


def test_round_trip_is_bit_identical(tmp_path: Path) -> None:
    first = _trained_checkpoint(tmp_path / "a")
    second = _resave(load_checkpoint(first), tmp_path / "b")
    for name in ("weights.safetensors", "optimizer.safetensors", "config.json", "card.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_round_trip_gives_equal_outputs(tmp_path: Path) -> None:
    folder = _trained_checkpoint(tmp_path / "a")
    reference = load_checkpoint(folder).models.eval()
    again = load_checkpoint(_resave(load_checkpoint(folder), tmp_path / "b")).models.eval()
    x = torch.rand(1, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.equal(reference.sem_to_layout(x), again.sem_to_layout(x))


def test_train_state_and_adam_moments_survive(tmp_path: Path) -> None:
    checkpoint = load_checkpoint(_trained_checkpoint(tmp_path / "a"))
    assert (checkpoint.state.step, checkpoint.state.wall_seconds) == (2, 1.5)
    state = checkpoint.optimizer_states["generator"]["state"][0]
    assert state["step"].item() == 2.0 and state["exp_avg"].abs().sum() > 0


def test_loading_never_unpickles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _trained_checkpoint(tmp_path / "a")

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("unpickling attempted")

    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    assert load_checkpoint(folder).state.step == 2


def test_a_torch_save_file_is_refused(tmp_path: Path) -> None:
    folder = _trained_checkpoint(tmp_path / "a")
    torch.save(build_models(TINY).state_dict(), folder / "weights.safetensors")
    with pytest.raises(CheckpointError, match=r"weights\.safetensors: looks like a pickle"):
        load_checkpoint(folder)


def test_a_raw_pickle_is_refused(tmp_path: Path) -> None:
    folder = _trained_checkpoint(tmp_path / "a")
    (folder / "weights.safetensors").write_bytes(pickle.dumps({"weight": [1, 2, 3]}))
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(folder)


def test_a_truncated_weights_file_is_named(tmp_path: Path) -> None:
    folder = _trained_checkpoint(tmp_path / "a")
    data = (folder / "weights.safetensors").read_bytes()
    (folder / "weights.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"weights\.safetensors: not a valid safetensors file"):
        load_checkpoint(folder)


def test_a_missing_config_is_named(tmp_path: Path) -> None:
    folder = _trained_checkpoint(tmp_path / "a")
    (folder / "config.json").unlink()
    with pytest.raises(CheckpointError, match=r"config\.json: missing"):
        load_checkpoint(folder)


def test_a_corrupt_card_is_named(tmp_path: Path) -> None:
    folder = _trained_checkpoint(tmp_path / "a")
    (folder / "card.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"card\.json: not valid JSON"):
        load_checkpoint(folder)


def test_a_config_that_does_not_match_the_weights_names_the_key(tmp_path: Path) -> None:
    folder = _trained_checkpoint(tmp_path / "a")
    config = json.loads((folder / "config.json").read_text())
    config["generator"]["base_channels"] = 16
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"sem_to_layout\.encoder\.0\.conv\.weight has shape \(8, 1, 4, 4\)"):
        load_checkpoint(folder)


def test_weights_changed_after_the_save_are_detected(tmp_path: Path) -> None:
    folder = _trained_checkpoint(tmp_path / "a")
    other = tmp_path / "b"
    save_checkpoint(other, build_models(TINY, seed=9), None, TINY, CARD, None)
    (folder / "weights.safetensors").write_bytes((other / "weights.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match=r"does not match train_state\.json"):
        load_checkpoint(folder)


def test_inference_export_holds_fp16_generators_only(tmp_path: Path) -> None:
    from safetensors import safe_open

    exported = export_inference(_trained_checkpoint(tmp_path / "a"), tmp_path / "export")
    with safe_open(exported / "weights.safetensors", framework="pt") as handle:
        keys = list(handle.keys())
        dtypes = {handle.get_tensor(k).dtype for k in keys if "num_batches" not in k}
    assert {k.split(".")[0] for k in keys} == {"sem_to_layout", "layout_to_sem"}
    assert dtypes == {torch.float16}
    assert sorted(p.name for p in exported.iterdir()) == ["card.json", "config.json", "weights.safetensors"]


def test_export_with_critics_carries_trained_discriminators_but_no_optimizer(tmp_path: Path) -> None:
    folder = _trained_checkpoint(tmp_path / "a")
    plain = export_inference(folder, tmp_path / "plain")
    with_critics = export_inference(folder, tmp_path / "critics", critics=True)
    loaded = load_checkpoint(with_critics)
    assert loaded.models.layout_critic is not None and loaded.state is None and not loaded.is_full
    full = load_checkpoint(folder)
    for name in ("layout_critic", "sem_critic"):
        trained = getattr(full.models, name).state_dict()
        for key, value in getattr(loaded.models, name).state_dict().items():
            assert torch.allclose(value.float(), trained[key].float(), atol=1e-2), key
    assert load_checkpoint(with_critics, generators_only=True).models.layout_critic is None
    assert load_checkpoint(plain).models.layout_critic is None
    assert (with_critics / "weights.safetensors").stat().st_size > (plain / "weights.safetensors").stat().st_size
    assert json.loads((with_critics / "card.json").read_text())["export"]["critics"] is True


def test_exporting_critics_of_a_model_without_them_is_refused(tmp_path: Path) -> None:
    plain = export_inference(_trained_checkpoint(tmp_path / "a"), tmp_path / "plain")
    with pytest.raises(CheckpointError, match="no critics to export"):
        export_inference(plain, tmp_path / "again", critics=True)


def test_inference_export_predicts_like_the_checkpoint(tmp_path: Path) -> None:
    folder = _trained_checkpoint(tmp_path / "a")
    full = load_checkpoint(folder).models.eval()
    export = load_checkpoint(export_inference(folder, tmp_path / "export"))
    assert export.state is None and export.models.layout_critic is None
    x = torch.rand(1, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        difference = (full.sem_to_layout(x) - export.models.eval().sem_to_layout(x)).abs().max().item()
    assert difference < 1e-2
