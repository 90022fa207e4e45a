"""Config, data, train step and fit loop (tiny preset, CPU)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from semgan.checkpoint import has_checkpoint, load_checkpoint
from semgan.config import PRESETS, ConfigError, DataConfig, ExperimentConfig
from semgan.data import (
    ConcatPairedDataset,
    DatasetError,
    PairedDataset,
    iterate_batches,
    split_items,
)
from semgan.device import make_precision
from semgan.model import build_models
from semgan.train.callbacks import Callback
from semgan.train.loop import TrainingError, fit, lr_factor
from semgan.train.step import Networks, build_optimizers, train_step
from tests.support import fixed_batch, tiny_config, write_synth_folder

torch.set_num_threads(1)
TINY = PRESETS["tiny"]


# --- config ------------------------------------------------------------------------------------


def test_config_round_trips_through_json() -> None:
    config = PRESETS["default"].replace("train", steps=123)
    assert ExperimentConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_config_unknown_field_is_named() -> None:
    data = TINY.to_dict()
    data["generator"]["n_layers"] = 3
    with pytest.raises(ConfigError, match=r"generator\.n_layers"):
        ExperimentConfig.from_dict(data)


def test_config_wrong_type_is_named() -> None:
    data = TINY.to_dict()
    data["loss"]["l1"] = "100"
    with pytest.raises(ConfigError, match=r"loss\.l1"):
        ExperimentConfig.from_dict(data)


def test_config_crop_must_be_a_multiple_of_the_downsampling() -> None:
    with pytest.raises(ConfigError, match="crop_size"):
        PRESETS["default"].replace("data", crop_size=100)


def test_default_preset_is_the_seed_model() -> None:
    config = PRESETS["default"]
    assert (config.generator.base_channels, config.generator.n_down, config.generator.max_channels) == (48, 5, 256)
    assert config.generator.attention and config.discriminator.spectral_norm
    assert (config.loss.l1, config.loss.gan, config.loss.cycle, config.loss.feature_matching) == (100, 0.5, 10, 10)
    assert (config.loss.real_label, config.optim.lr, config.optim.beta1) == (0.9, 2e-4, 0.5)


def test_l1only_preset_has_no_adversary_cycle_or_feature_matching() -> None:
    loss = PRESETS["l1only"].loss
    assert (loss.adversarial, loss.gan, loss.cycle, loss.feature_matching, loss.l1) == (False, 0, 0, 0, 100)


# --- data --------------------------------------------------------------------------------------


def test_dataset_returns_scaled_tensors(tmp_path: Path) -> None:
    dataset = PairedDataset(write_synth_folder(tmp_path), crop_size=32, augment=True)
    item = dataset[0]
    assert item["sem_image"].shape == (1, 32, 32) and item["layout_mask"].shape == (1, 32, 32)
    assert set(item["layout_mask"].unique().tolist()) <= {-1.0, 1.0}
    assert item["sem_image"].min() >= -1.0 and item["sem_image"].max() <= 1.0


def test_dataset_augmentation_is_reproducible_per_epoch(tmp_path: Path) -> None:
    dataset = PairedDataset(write_synth_folder(tmp_path), crop_size=32, augment=True, seed=3)
    first = dataset[1]["sem_image"]
    assert torch.equal(first, dataset[1]["sem_image"])
    dataset.set_epoch(1)
    assert not torch.equal(first, dataset[1]["sem_image"])


def test_dataset_refuses_other_pixel_size(tmp_path: Path) -> None:
    folder = write_synth_folder(tmp_path, nm_per_px=2.0)
    with pytest.raises(DatasetError, match=r"2\.0 nm/px"):
        PairedDataset(folder, DataConfig(nm_per_px=4.0))


def test_dataset_refuses_mixed_sizes(tmp_path: Path) -> None:
    folder = write_synth_folder(tmp_path)
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(folder / "sem" / "000002.png")
    with pytest.raises(DatasetError, match=r"000002\.png"):
        PairedDataset(folder)


def test_split_is_deterministic_and_disjoint() -> None:
    items = [{"name": f"{i:06d}"} for i in range(200)]
    train, holdout = split_items(items, 0.25, seed=1)
    assert split_items(items, 0.25, seed=1) == (train, holdout)
    assert len(train) + len(holdout) == 200 and 30 <= len(holdout) <= 70
    assert not {i["name"] for i in train} & {i["name"] for i in holdout}


def test_batches_resume_where_they_left_off(tmp_path: Path) -> None:
    dataset = PairedDataset(write_synth_folder(tmp_path), crop_size=32, augment=True)
    straight = iterate_batches(dataset, 2, seed=0)
    expected = [next(straight)["index"].tolist() for _ in range(5)]
    resumed = iterate_batches(dataset, 2, seed=0, start_step=3)
    assert [next(resumed)["index"].tolist() for _ in range(2)] == expected[3:]


def test_old_and_new_pairs_concatenate(tmp_path: Path) -> None:
    old = PairedDataset(write_synth_folder(tmp_path / "old", count=6), crop_size=32, augment=True)
    new = PairedDataset(write_synth_folder(tmp_path / "new", count=3, seed=1), crop_size=32, augment=True)
    mixed = ConcatPairedDataset([old, new])
    assert len(mixed) == 9
    assert torch.equal(mixed[7]["layout_mask"], new[1]["layout_mask"])


def test_pairs_at_other_pixel_sizes_do_not_mix(tmp_path: Path) -> None:
    old = PairedDataset(write_synth_folder(tmp_path / "old"), crop_size=32)
    new = PairedDataset(write_synth_folder(tmp_path / "new", nm_per_px=2.0), crop_size=32)
    with pytest.raises(DatasetError, match="different pixel sizes"):
        ConcatPairedDataset([old, new])


# --- step --------------------------------------------------------------------------------------


def test_lr_decays_linearly_over_the_second_half() -> None:
    assert [lr_factor(s, 100, 0.5) for s in (0, 50, 75, 100)] == [1.0, 1.0, 0.5, 0.0]


def test_train_step_returns_the_six_losses() -> None:
    models = build_models(TINY)
    losses = train_step(Networks.of(models), build_optimizers(models, TINY.optim), fixed_batch(), TINY.loss,
                        make_precision(torch.device("cpu")))
    assert sorted(losses) == ["d_loss", "g_cycle", "g_fm", "g_gan", "g_l1", "g_loss"]
    assert all(isinstance(v, float) and v > 0 for v in losses.values())


def test_a_few_steps_reduce_l1_on_a_fixed_batch() -> None:
    config = TINY.replace("optim", lr=2e-3)
    models = build_models(config)
    optimizers = build_optimizers(models, config.optim)
    precision = make_precision(torch.device("cpu"))
    batch = fixed_batch()
    history = [train_step(Networks.of(models), optimizers, batch, config.loss, precision)["g_l1"] for _ in range(15)]
    assert history[-1] < 0.7 * history[0]


def test_l1only_step_has_no_adversarial_terms() -> None:
    config = PRESETS["l1only"].replace("generator", base_channels=8, n_down=4, max_channels=32)
    models = build_models(config)
    assert models.layout_critic is None
    losses = train_step(Networks.of(models), build_optimizers(models, config.optim), fixed_batch(), config.loss,
                        make_precision(torch.device("cpu")))
    assert (losses["d_loss"], losses["g_gan"], losses["g_fm"], losses["g_cycle"]) == (0.0, 0.0, 0.0, 0.0)
    assert losses["g_loss"] == pytest.approx(100 * losses["g_l1"], rel=1e-5)


# --- fit ---------------------------------------------------------------------------------------


class StopAt(Callback):
    """Requests a stop (like a cancelled job) at a given step."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step(self, step: int, losses: dict[str, float]) -> None:
        if step == self.step:
            self.request_stop()


def _dataset(folder: Path) -> PairedDataset:
    return PairedDataset(folder, DataConfig(crop_size=64), augment=True)


def test_fit_writes_checkpoint_log_and_samples(tmp_path: Path) -> None:
    result = fit(tiny_config(3), _dataset(write_synth_folder(tmp_path / "data")), tmp_path / "model")
    assert (result.step, result.stop_reason) == (3, "completed")
    assert has_checkpoint(tmp_path / "model")
    log = [json.loads(line) for line in (tmp_path / "model" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3]
    assert sorted(p.name for p in (tmp_path / "model" / "samples").iterdir()) == ["step_0000002.png"]
    assert json.loads((tmp_path / "model" / "card.json").read_text())["steps"] == 3


def test_stopped_and_resumed_run_equals_an_uninterrupted_one(tmp_path: Path) -> None:
    dataset = _dataset(write_synth_folder(tmp_path / "data"))
    fit(tiny_config(4), dataset, tmp_path / "straight")
    first = fit(tiny_config(4), dataset, tmp_path / "resumed", [StopAt(2)])
    assert (first.step, first.stop_reason) == (2, "stopped")
    second = fit(tiny_config(4), dataset, tmp_path / "resumed")
    assert (second.start_step, second.step) == (2, 4)
    straight = load_checkpoint(tmp_path / "straight").models.state_dict()
    resumed = load_checkpoint(tmp_path / "resumed").models.state_dict()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


def test_sigint_saves_a_checkpoint_and_returns(tmp_path: Path) -> None:
    class Interrupt(Callback):
        def on_step(self, step: int, losses: dict[str, float]) -> None:
            if step == 2:
                os.kill(os.getpid(), signal.SIGINT)

    result = fit(tiny_config(5), _dataset(write_synth_folder(tmp_path / "data")), tmp_path / "model", [Interrupt()])
    assert (result.step, result.stop_reason) == (2, "interrupted")
    assert load_checkpoint(tmp_path / "model").state.step == 2


def test_fine_tune_starts_from_weights_and_adam_state_at_a_tenth_of_the_lr(tmp_path: Path) -> None:
    dataset = _dataset(write_synth_folder(tmp_path / "data"))
    fit(tiny_config(2), dataset, tmp_path / "production")
    production = load_checkpoint(tmp_path / "production")

    class Capture(Callback):
        def on_start(self, run) -> None:
            self.lr = run.optimizers.generator.param_groups[0]["lr"]
            self.exp_avg = run.optimizers.generator.state_dict()["state"][0]["exp_avg"].clone()
            self.weight = run.models.sem_to_layout.encoder[0].conv.weight.detach().clone()

    capture = Capture()
    fit(tiny_config(1), dataset, tmp_path / "candidate", [capture], init_from=tmp_path / "production", lr_scale=0.1)
    assert capture.lr == pytest.approx(2e-5)
    assert torch.equal(capture.exp_avg, production.optimizer_states["generator"]["state"][0]["exp_avg"])
    assert torch.equal(capture.weight, production.models.sem_to_layout.encoder[0].conv.weight)


def test_resume_with_another_model_config_is_refused(tmp_path: Path) -> None:
    dataset = _dataset(write_synth_folder(tmp_path / "data"))
    fit(tiny_config(1), dataset, tmp_path / "model")
    other = tiny_config(2).replace("generator", base_channels=16)
    with pytest.raises(TrainingError, match=r"generator\.base_channels"):
        fit(other, dataset, tmp_path / "model")


def test_a_data_config_becomes_dataset_options_in_one_place(tmp_path: Path) -> None:
    folder = write_synth_folder(tmp_path, count=12)
    data = DataConfig(crop_size=32, flip_vertical=False, holdout_fraction=0.25, standardize=True,
                      row_drift_augment=0.2)
    train = PairedDataset.for_training(folder, data, seed=3, split="train")
    assert (train.crop_size, train.augment, train.flip_horizontal, train.flip_vertical, train.row_drift) == \
        (32, True, True, False, 0.2)
    assert train.standardize == data.sem_standardization() and train.nm_per_px == data.nm_per_px
    holdout = PairedDataset.for_training(folder, data, seed=3, split="holdout", crop_size=16)
    assert holdout.crop_size == 16
    assert not {i["name"] for i in train.items} & {i["name"] for i in holdout.items}
