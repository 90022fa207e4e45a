"""Per-image SEM intensity standardisation: the transform, the config switch, and every path that
feeds the generator (training crops, sample grids, fine-tune data, the Predictor)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from semgan.config import PRESETS, ConfigError, DataConfig, ExperimentConfig
from semgan.data import PairedDataset, standardize_sem
from semgan.infer import Predictor
from tests.support import (
    finetune_once,
    lively_model,
    record_dataset_argument,
    rectangles,
    write_synth_folder,
)

torch.set_num_threads(1)
STANDARDISED_TINY = PRESETS["tiny"].replace("data", standardize=True)


def test_output_has_the_target_mean_and_std() -> None:
    image = rectangles(128, 128)
    out = standardize_sem(image, 0.4, 0.15)
    assert out.dtype == np.float32 and out.shape == image.shape
    assert out.mean() == pytest.approx(0.4, abs=2e-3) and out.std() == pytest.approx(0.15, abs=2e-3)


def test_brightness_and_contrast_drift_cancel_out() -> None:
    image = rectangles(128, 128)
    drifted = 0.3 * image + 0.05  # a darker tool with a third of the contrast
    assert np.abs(standardize_sem(drifted, 0.4, 0.15) - standardize_sem(image, 0.4, 0.15)).max() < 1e-5


def test_contrast_polarity_is_kept() -> None:
    image = rectangles(128, 128)
    inverted = standardize_sem(1 - image, 0.4, 0.15)
    assert np.corrcoef(inverted.ravel(), standardize_sem(image, 0.4, 0.15).ravel())[0, 1] < -0.99


def test_flat_and_extreme_images_stay_in_range() -> None:
    flat = np.full((32, 32), 0.9, np.float32)
    assert np.abs(standardize_sem(flat, 0.4, 0.15) - 0.4).max() < 1e-6
    spiky = np.zeros((32, 32), np.float32)
    spiky[0, 0] = 1.0
    out = standardize_sem(spiky, 0.4, 0.15)
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_configs_saved_before_the_switch_load_with_it_off() -> None:
    data = PRESETS["tiny"].to_dict()
    for key in ("standardize", "standardize_mean", "standardize_std"):
        del data["data"][key]
    config = ExperimentConfig.from_dict(data)
    assert config.data.standardize is False and config.data.sem_standardization() is None


def test_presets_leave_standardisation_off_with_the_training_reference_ready() -> None:
    for name in ("default", "l1only", "tiny"):
        assert PRESETS[name].data.sem_standardization() is None
    assert STANDARDISED_TINY.data.sem_standardization() == (0.373, 0.153)


@pytest.mark.parametrize(("field", "value"), [("standardize_mean", 0.0), ("standardize_std", 0.0),
                                              ("standardize_std", 0.9)])
def test_impossible_reference_values_are_named(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=f"data.{field}"):
        STANDARDISED_TINY.replace("data", **{field: value})


def test_dataset_standardises_the_whole_image_before_cropping(tmp_path: Path) -> None:
    folder = write_synth_folder(tmp_path)
    plain = PairedDataset(folder, crop_size=32)
    standardised = PairedDataset(folder, DataConfig(crop_size=32, standardize=True, standardize_mean=0.4,
                                                   standardize_std=0.15))
    full, _ = plain.load_pair(2)
    expected = standardize_sem(full, 0.4, 0.15)[16:48, 16:48] * 2 - 1  # the centre crop
    assert torch.allclose(standardised[2]["sem_image"][0], torch.from_numpy(expected), atol=1e-6)
    assert not torch.allclose(plain[2]["sem_image"], standardised[2]["sem_image"])


def test_predictor_is_blind_to_brightness_and_contrast_when_standardising() -> None:
    image = rectangles(256, 256)
    models = lively_model(image)
    drifted = 0.5 * image + 0.3
    on = Predictor(models, STANDARDISED_TINY, device="cpu", tile_size=None)
    off = Predictor(models, PRESETS["tiny"], device="cpu", tile_size=None)
    assert np.abs(on.predict(drifted).probability - on.predict(image).probability).max() < 1e-3
    assert np.abs(off.predict(drifted).probability - off.predict(image).probability).max() > 0.1


def test_standardised_tiles_match_a_whole_image_pass() -> None:
    image = rectangles(384, 512)
    models = lively_model(image)
    tiled = Predictor(models, STANDARDISED_TINY, device="cpu", tile_size=256, overlap=128).predict(image)
    whole = Predictor(models, STANDARDISED_TINY, device="cpu", tile_size=None).predict(image)
    assert np.abs(tiled.probability - whole.probability)[32:-32, 32:-32].max() < 1e-4


def test_fine_tune_feeds_standardised_pairs_when_production_standardises(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = record_dataset_argument(monkeypatch, "standardize")
    candidate = finetune_once(tmp_path / "ws", STANDARDISED_TINY)
    assert seen and all(value == (0.373, 0.153) for value in seen)
    assert json.loads((Path(candidate.path) / "config.json").read_text())["data"]["standardize"] is True
