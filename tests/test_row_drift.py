"""Row-drift augmentation: the transform, the dataset switch, the config field and every path that
trains (the train CLI and the background fine-tune)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from semgan.__main__ import main
from semgan.config import PRESETS, ConfigError, DataConfig, ExperimentConfig
from semgan.data import DatasetError, PairedDataset, add_row_drift
from tests.support import finetune_once, record_dataset_argument, write_synth_folder

torch.set_num_threads(1)
DRIFTING_TINY = PRESETS["tiny"].replace("data", row_drift_augment=0.2)


def _texture(height: int = 256, width: int = 64) -> np.ndarray:
    return np.random.default_rng(0).uniform(0.2, 0.6, (height, width)).astype(np.float32)


def test_each_row_is_scaled_by_one_factor() -> None:
    image = _texture()
    drifted = add_row_drift(image, 0.1, np.random.default_rng(1))
    ratio = drifted / image  # (H, W)
    assert drifted.dtype == np.float32 and drifted.shape == image.shape
    assert np.abs(ratio - ratio[:, :1]).max() < 1e-5
    assert ratio[:, 0].std() == pytest.approx(0.1, rel=0.5)


def test_the_drift_is_slow_from_row_to_row() -> None:
    factors = (add_row_drift(_texture(), 0.1, np.random.default_rng(2)) / _texture())[:, 0]
    assert np.abs(np.diff(factors)).max() < 0.2 * (factors.max() - factors.min())


def test_zero_amplitude_leaves_the_image_unchanged_and_output_stays_in_range() -> None:
    image = _texture()
    assert np.array_equal(add_row_drift(image, 0.0, np.random.default_rng(3)), image)
    bright = np.full((64, 8), 0.98, np.float32)
    out = add_row_drift(bright, 0.5, np.random.default_rng(3))
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_dataset_without_drift_keeps_its_crops_and_drift_changes_only_the_sem(tmp_path: Path) -> None:
    folder = write_synth_folder(tmp_path, count=8)
    plain = PairedDataset(folder, crop_size=32, augment=True, seed=5)
    off = PairedDataset(folder, DataConfig(crop_size=32, row_drift_augment=0.0), augment=True, seed=5)
    on = PairedDataset(folder, DataConfig(crop_size=32, row_drift_augment=0.3), augment=True, seed=5)
    changed = 0
    for index in range(8):
        base, same, drifted = plain[index], off[index], on[index]
        assert torch.equal(base["sem_image"], same["sem_image"])
        assert torch.equal(base["layout_mask"], drifted["layout_mask"])  # same crop and flips
        changed += not torch.equal(base["sem_image"], drifted["sem_image"])
    assert 1 <= changed <= 7  # about half the images drift


def test_evaluation_crops_never_drift(tmp_path: Path) -> None:
    folder = write_synth_folder(tmp_path)
    plain = PairedDataset(folder, crop_size=32)
    drifting = PairedDataset(folder, DataConfig(crop_size=32, row_drift_augment=0.3))
    assert all(torch.equal(plain[i]["sem_image"], drifting[i]["sem_image"]) for i in range(6))


def test_dataset_rejects_an_impossible_amplitude(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="row_drift"):
        PairedDataset(write_synth_folder(tmp_path), DataConfig(crop_size=32, row_drift_augment=0.8))


def test_config_rejects_an_impossible_amplitude_and_old_configs_load_with_it_off() -> None:
    with pytest.raises(ConfigError, match=r"data\.row_drift_augment"):
        PRESETS["tiny"].replace("data", row_drift_augment=-0.1)
    data = PRESETS["tiny"].to_dict()
    del data["data"]["row_drift_augment"]
    assert ExperimentConfig.from_dict(data).data.row_drift_augment == 0.0


def test_train_cli_records_the_drift_in_config_and_command(tmp_path: Path) -> None:
    data = write_synth_folder(tmp_path / "data")
    out = tmp_path / "model"
    code = main(["train", "--data", str(data), "--out", str(out), "--preset", "tiny", "--steps", "1",
                 "--device", "cpu", "--crop", "32", "--batch", "2", "--row-drift-augment", "0.15"])
    assert code == 0
    assert json.loads((out / "config.json").read_text())["data"]["row_drift_augment"] == 0.15
    assert "--no-standardize --row-drift-augment 0.15" in json.loads((out / "card.json").read_text())["command"]


def test_fine_tune_drifts_its_pairs_when_production_was_trained_with_drift(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = record_dataset_argument(monkeypatch, "row_drift")
    candidate = finetune_once(tmp_path / "ws", DRIFTING_TINY)
    assert json.loads((Path(candidate.path) / "config.json").read_text())["data"]["row_drift_augment"] == 0.2
    assert seen and all(value == 0.2 for value in seen)
