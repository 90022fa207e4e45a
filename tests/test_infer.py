"""Predictor: tiling without seams, resampling between pixel sizes, determinism, model lookup."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import semgan.infer as infer
from semgan.checkpoint import export_inference, save_checkpoint
from semgan.config import PRESETS
from semgan.infer import (
    LayoutPrediction,
    ModelNotFoundError,
    PredictionError,
    Predictor,
    blend_window,
    resolve_model,
)
from semgan.model import build_models
from tests.support import lively_model, rectangles

torch.set_num_threads(1)
TINY = PRESETS["tiny"]


def test_tiled_prediction_matches_a_whole_image_pass() -> None:
    image = rectangles(384, 512)
    models = lively_model(image)
    tiled = Predictor(models, TINY, device="cpu", tile_size=256, overlap=128, max_tile=256,
                      precision="fp32").predict(image)
    whole = Predictor(models, TINY, device="cpu", tile_size=None, precision="fp32").predict(image)
    assert whole.probability.std() > 0.1
    interior = np.s_[32:-32, 32:-32]
    assert np.abs(tiled.probability - whole.probability)[interior].max() < 1e-4


def test_adaptive_tiles_match_a_whole_image_pass() -> None:
    """Tiles of several lengths (semgan.tiling.plan_axis) on a 720×1200 image: the same interior
    when the overlap clears the zero-padding band, and no hard seams at a small overlap."""
    image = rectangles(720, 1200)
    models = lively_model(image)
    whole = Predictor(models, TINY, device="cpu", tile_size=None, precision="fp32", edge_check=None).predict(image)
    wide = Predictor(models, TINY, device="cpu", tile_size=160, overlap=128, precision="fp32",
                     edge_check=None).predict(image)
    assert np.abs(wide.probability - whole.probability)[32:-32, 32:-32].max() < 1e-4
    narrow = Predictor(models, TINY, device="cpu", tile_size=128, overlap=32, precision="fp32",
                       edge_check=None).predict(image)
    assert np.abs(narrow.probability - whole.probability)[32:-32, 32:-32].mean() < 0.01


def test_small_overlap_still_blends_without_hard_seams() -> None:
    image = rectangles(384, 512)
    models = lively_model(image)
    tiled = Predictor(models, TINY, device="cpu", tile_size=128, overlap=64, max_tile=128,
                      precision="fp32").predict(image)
    whole = Predictor(models, TINY, device="cpu", tile_size=None, precision="fp32").predict(image)
    assert np.abs(tiled.probability - whole.probability)[32:-32, 32:-32].mean() < 0.01


def test_blend_window_cross_fades_to_one() -> None:
    window = blend_window(256, 128)[128]  # one row through the middle
    # Neighbours 128 px apart: their weights over the shared span add up to 1.
    assert np.allclose(window[128:256] + window[0:128], 1.0, atol=1e-5)
    assert window[:32].max() < 1e-5 and window.min() > 0


@pytest.mark.parametrize("nm_per_px", [2.0, 4.0, 6.5])
def test_outputs_have_the_input_shape_at_any_pixel_size(nm_per_px: float) -> None:
    predictor = Predictor(build_models(TINY, critics=False), TINY, device="cpu")
    prediction = predictor.predict(rectangles(100, 150), nm_per_px)
    assert prediction.mask.shape == prediction.probability.shape == prediction.confidence.shape == (100, 150)
    assert prediction.mask.dtype == bool and prediction.probability.dtype == np.float32
    assert prediction.probability.min() >= 0 and prediction.probability.max() <= 1


def test_input_is_resampled_to_the_model_pixel_size() -> None:
    models = build_models(TINY, critics=False)
    seen: list[tuple[int, ...]] = []
    models.sem_to_layout.register_forward_hook(lambda _m, args, _out: seen.append(tuple(args[0].shape[-2:])))
    Predictor(models, TINY, device="cpu", tile_size=None).predict(rectangles(100, 150), nm_per_px=2.0)
    assert seen == [(64, 80)]  # 100×150 at 2 nm/px = 50×75 at 4 nm/px, padded to multiples of 16


def test_confidence_is_distance_from_one_half() -> None:
    prediction = Predictor(build_models(TINY, critics=False), TINY, device="cpu",
                           edge_check=None).predict(rectangles(64, 64))
    assert prediction.edge_flips == 0 and prediction.flipped_fraction == 0.0
    assert np.allclose(prediction.confidence, np.abs(2 * prediction.probability - 1))


def test_edge_check_flips_regions_with_confidence_zero_and_reflected_probability() -> None:
    """An untrained generator's speckled mask has outlines the SEM does not support: the checked
    prediction reflects P(feature) there (mask is still p > 0.5) and marks it confidence 0."""
    models, image = build_models(TINY, critics=False), rectangles(96, 96)
    plain = Predictor(models, TINY, device="cpu", edge_check=None).predict(image)
    checked = Predictor(models, TINY, device="cpu").predict(image)
    assert checked.edge_flips > 0 and 0 < checked.flipped_fraction < 1
    flipped = checked.mask != plain.mask
    assert flipped.mean() == pytest.approx(checked.flipped_fraction)
    assert np.array_equal(checked.mask, checked.probability > 0.5)
    assert np.all(checked.confidence[flipped] == 0)
    kept = ~flipped & (checked.confidence > 0)
    assert np.allclose(checked.probability[kept], plain.probability[kept], atol=1e-6)


def test_edge_check_runs_at_the_models_pixel_size_and_maps_back() -> None:
    """At 2 nm/px the check runs on the 4 nm/px image; its flips come back at the input's size."""
    models, image = build_models(TINY, critics=False), rectangles(96, 128)
    checked = Predictor(models, TINY, device="cpu").predict(image, nm_per_px=2.0)
    plain = Predictor(models, TINY, device="cpu", edge_check=None).predict(image, nm_per_px=2.0)
    assert checked.mask.shape == (96, 128) and checked.edge_flips > 0
    assert np.array_equal(checked.mask, checked.probability > 0.5)
    zero = checked.confidence == 0
    assert zero.mean() == pytest.approx(checked.flipped_fraction, abs=1e-9)
    # away from the flips (resampling blends across their border): the generator's own mask
    near = cv2.dilate(zero.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    assert np.array_equal(checked.mask[~near], plain.mask[~near])


def test_prediction_is_deterministic() -> None:
    predictor = Predictor(build_models(TINY, critics=False), TINY, device="cpu")
    image = rectangles(200, 300)
    first, second = predictor.predict(image), predictor.predict(image)
    assert np.array_equal(first.probability, second.probability)
    assert predictor.models.training is False


def test_layout_to_sem_gives_uint8_at_the_input_size() -> None:
    predictor = Predictor(build_models(TINY, critics=False), TINY, device="cpu")
    sem = predictor.predict_sem(rectangles(90, 70) > 0.5, nm_per_px=3.0)
    assert (sem.shape, sem.dtype) == ((90, 70), np.uint8)


def test_uint8_and_float_inputs_agree() -> None:
    predictor = Predictor(build_models(TINY, critics=False), TINY, device="cpu")
    image = np.round(rectangles(64, 64) * 255).astype(np.uint8)
    assert np.array_equal(predictor.predict(image).probability, predictor.predict(image / 255.0).probability)


def test_colour_input_is_refused() -> None:
    predictor = Predictor(build_models(TINY, critics=False), TINY, device="cpu")
    with pytest.raises(PredictionError, match="2-D grey image"):
        predictor.predict(np.zeros((64, 64, 3), np.uint8))


def test_tile_size_must_fit_the_downsampling() -> None:
    with pytest.raises(PredictionError, match="multiple of 16"):
        Predictor(build_models(TINY, critics=False), TINY, device="cpu", tile_size=100)


def test_from_dir_loads_checkpoints_and_exports(tmp_path: Path) -> None:
    models = build_models(TINY)
    card = {"nm_per_px": 4.0, "metrics": {}}
    save_checkpoint(tmp_path / "model", models, None, TINY, card, None)
    image = rectangles(64, 64)
    direct = Predictor(models, TINY, device="cpu").predict(image)
    loaded = Predictor.from_dir(tmp_path / "model", device="cpu")
    assert isinstance(loaded.predict(image), LayoutPrediction)
    assert np.array_equal(loaded.predict(image).probability, direct.probability)
    export = export_inference(tmp_path / "model", tmp_path / "export")
    assert Predictor.from_dir(export, device="cpu").nm_per_px == 4.0


def test_missing_default_model_is_a_named_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(infer, "DEFAULT_MODEL_DIR", tmp_path / "absent")
    with pytest.raises(ModelNotFoundError, match="default model is not installed"):
        resolve_model("default")


def test_a_path_without_weights_is_a_named_error(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="not a model folder"):
        resolve_model(tmp_path)


def test_manhattan_prediction_redraws_the_mask_from_its_outline() -> None:
    from semgan.manhattan import manhattan_mask

    image = rectangles(128, 128)
    models = lively_model(image)
    raw = Predictor(models, TINY, device="cpu", precision="fp32").predict(image, 4.0)
    vector = Predictor(models, TINY, device="cpu", precision="fp32", manhattan=True).predict(image, 4.0)
    assert raw.outline is None and vector.outline
    assert np.array_equal(vector.probability, raw.probability)  # only the mask is redrawn
    mask, rings = manhattan_mask(raw.probability, 4.0)
    assert np.array_equal(vector.mask, mask) and len(rings) == len(vector.outline)
    from scipy import ndimage

    labels, count = ndimage.label(vector.mask)
    assert count and np.bincount(labels.ravel())[1:].min() >= 400 / 4.0**2  # no specks left
    assert count <= ndimage.label(raw.mask)[1]
