"""loop.predictions and loop.compare: predictions stored with confidence, uploads ingested with
nm/px and drift, versions compared on held-out samples."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from loop.bootstrap import install_model, reference_from_synthetic
from loop.compare import evaluate_version, heldout_sets, most_disagreeing
from loop.predictions import (
    IngestError,
    MissingPixelSizeError,
    NoProductionModelError,
    PredictorCache,
    ingest_image,
    predict_sample,
    predict_sem,
    prediction_for,
    score_drift,
)
from semgan.drift import ReferenceProfile
from semgan.semsim import PROFILES
from semgan.synth import make_pair
from store import Store
from tests.e2e.tiny_model import make_tiny_model

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two quickly trained tiny models that predict differently."""
    root = tmp_path_factory.mktemp("models")
    model_a = make_tiny_model(root / "a", steps=40, seed=0)
    card = json.loads((model_a / "card.json").read_text())
    card["drift_reference"] = reference_from_synthetic(4.0, count=24, size=128)
    (model_a / "card.json").write_text(json.dumps(card))  # built once, not on every install
    return model_a, make_tiny_model(root / "b", steps=10, seed=5)


@pytest.fixture
def store(tmp_path: Path, model_dirs: tuple[Path, Path]) -> Store:
    """A workspace with model A as production v1 (drift reference built on install)."""
    with Store.open(tmp_path / "ws") as opened:
        install_model(opened, model_dirs[0], status="production")
        yield opened


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _sem(profile: str = "clean", index: int = 0, size: int = 64) -> np.ndarray:
    return make_pair(index, size=size, nm_per_px=4.0, profiles=[PROFILES[profile]],
                     seed=11).sem_image


def test_predict_sample_stores_mask_confidence_map_and_summary(store: Store) -> None:
    sample = store.add_sample(_sem(), 4.0, "upload")
    prediction = predict_sample(store, sample.id, cache=PredictorCache())
    assert prediction.model_version == 1
    assert store.prediction_mask(prediction).shape == (64, 64)
    assert store.confidence_map(prediction).shape == (64, 64)
    assert set(prediction.confidence_summary) == {"mean", "uncertain_fraction", "p05",
                                                  "mask_fraction", "tool_calibration",
                                                  "tool_expert", "edge_flips",
                                                  "flipped_fraction", "edge_check_skipped",
                                                  "tool_routing",
                                                  "uncertainty", "uncertainty_reason",
                                                  "uncertainty_features", "uncertainty_map_sha",
                                                  "uncertainty_seconds"}
    assert prediction.confidence_summary["tool_calibration"] is None  # no calibration.json
    summary = prediction.confidence_summary
    assert summary["edge_flips"] >= 0 and 0 <= summary["flipped_fraction"] <= 1
    if summary["edge_flips"]:  # flipped pixels are stored with confidence 0
        assert (store.confidence_map(prediction) == 0).mean() >= summary["flipped_fraction"] - 0.01
    assert store.get_sample(sample.id).uncertainty == \
        prediction.confidence_summary["uncertainty"]  # the per-image P(wrong), issue 17


def test_predict_sample_with_a_version_uses_that_model(store: Store,
                                                       model_dirs: tuple[Path, Path]) -> None:
    install_model(store, model_dirs[1], status="candidate", parent_version=1,
                  ensure_drift_reference=False)
    sample = store.add_sample(_sem(), 4.0, "upload")
    assert predict_sample(store, sample.id, version=2).model_version == 2


def test_prediction_for_reuses_a_stored_prediction(store: Store) -> None:
    sample = store.add_sample(_sem(), 4.0, "upload")
    first = prediction_for(store, sample.id)
    assert prediction_for(store, sample.id).id == first.id
    assert store.counts().predictions == 1


def test_predicting_without_a_production_model_is_a_named_error(tmp_path: Path) -> None:
    with Store.open(tmp_path / "empty") as empty:
        sample = empty.add_sample(_sem(), 4.0, "upload")
        with pytest.raises(NoProductionModelError, match="--model-dir"):
            predict_sample(empty, sample.id)


def test_ingest_png_without_pixel_size_asks_for_it(store: Store) -> None:
    with pytest.raises(MissingPixelSizeError, match=r"scan\.png: the file carries no pixel size"):
        ingest_image(store, _png(_sem()), None, name="scan.png")


def test_ingest_png_uses_the_given_pixel_size_and_predicts(store: Store) -> None:
    result = ingest_image(store, _png(_sem()), 4.0, tool="cdsem-7", name="scan.png")
    assert (result.sample.nm_per_px, result.sample.tool, result.sample.source) == \
        (4.0, "cdsem-7", "upload")
    assert result.nm_per_px_from == "given"
    assert result.prediction is not None and result.prediction.model_version == 1


def test_ingest_tiff_takes_the_pixel_size_from_the_file(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "scan.tif"
    tifffile.imwrite(path, _sem(), resolution=(2.5e6, 2.5e6), resolutionunit="CENTIMETER")
    result = ingest_image(store, path, 9.0)  # the file's 4 nm/px wins over the field
    assert (result.sample.nm_per_px, result.nm_per_px_from) == (4.0, "file")


def test_ingest_of_a_corrupt_file_names_it(store: Store) -> None:
    with pytest.raises(IngestError, match=r"broken\.png"):
        ingest_image(store, b"\x89PNG\r\n\x1a\n garbage", 4.0, name="broken.png")


def test_ingest_rejects_a_non_positive_pixel_size(store: Store) -> None:
    with pytest.raises(IngestError, match="positive number of nm/px"):
        ingest_image(store, _png(_sem()), "-2", name="scan.png")


def test_ingesting_the_same_image_twice_keeps_one_sample(store: Store) -> None:
    first = ingest_image(store, _png(_sem()), 4.0, name="a.png")
    again = ingest_image(store, _png(_sem()), 4.0, name="b.png")
    assert (again.sample.id, again.already_stored, first.already_stored) == \
        (first.sample.id, True, False)


def test_ingest_flags_an_image_from_the_drifted_profile(store: Store) -> None:
    result = ingest_image(store, _png(_sem("drifted", size=128)), 4.0, name="drifted.png")
    assert result.sample.drift_flagged
    assert set(result.sample.drift_scores) >= {"z", "kl", "reasons", "severity"}
    assert result.sample.drift_score == result.sample.drift_scores["severity"] > 1


def test_ingest_skips_drift_when_the_card_has_no_reference(tmp_path: Path,
                                                           model_dirs: tuple[Path, Path]) -> None:
    with Store.open(tmp_path / "ws2") as plain:
        install_model(plain, model_dirs[1], ensure_drift_reference=False)
        result = ingest_image(plain, _png(_sem()), 4.0, name="scan.png")
        assert result.sample.drift_scores is None


def test_drift_of_an_image_at_another_pixel_size_is_scored_after_resampling(
        store: Store) -> None:
    reference = ReferenceProfile.from_dict(reference_from_synthetic(4.0, count=6, size=128))
    sample = store.add_sample(_sem(size=128), 2.0, "upload")
    assert score_drift(store, sample.id, reference).drift_scores["kl"] >= 0


def test_evaluate_version_scores_samples_with_a_known_layout(store: Store) -> None:
    pair = make_pair(0, size=64, nm_per_px=4.0, profiles=[PROFILES["clean"]], seed=3)
    truth = store.put_blob(pair.layout_mask)
    sample = store.add_sample(pair.sem_image, 4.0, "demo", truth_sha=truth)
    scores = evaluate_version(store, 1, [sample.id])
    assert scores["count"] == 1.0
    assert 0.0 <= scores["iou"] <= 1.0


def test_most_disagreeing_puts_the_lowest_iou_first(store: Store,
                                                    model_dirs: tuple[Path, Path]) -> None:
    install_model(store, model_dirs[1], status="candidate", parent_version=1,
                  ensure_drift_reference=False)
    ids = [store.add_sample(_sem(index=i), 4.0, "upload").id for i in range(3)]
    found = most_disagreeing(store, 1, 2, ids)
    assert [d.iou for d in found] == sorted(d.iou for d in found)
    assert {d.sample_id for d in found} == set(ids)


def test_predict_sem_returns_an_8_bit_image_of_the_layout_size(store: Store) -> None:
    layout = np.zeros((48, 80), bool)
    layout[10:30, 20:60] = True
    sem = predict_sem(store, layout, 4.0)
    assert (sem.dtype, sem.shape) == (np.uint8, (48, 80))


def test_heldout_sets_split_old_data_by_tool_and_leave_corrected_samples_out(
        store: Store) -> None:
    truth = store.put_blob(np.zeros((64, 64), bool))
    ids = [store.add_sample(_sem(index=i), 4.0, "demo", tool=tool, truth_sha=truth).id
           for i, tool in enumerate(["sim:clean", "sim:clean", "sim:drifted"])]
    store.save_correction(ids[1], np.zeros((64, 64), bool), "tester")
    sets = heldout_sets(store)
    assert sets["old data · sim:clean"] == [ids[0]]
    assert sets["old data · sim:drifted"] == [ids[2]]
    assert list(sets)[-1] == "new corrections (holdout)"
