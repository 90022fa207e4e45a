"""Round trips of every record kind through a temp workspace, dedup, blobs, settings."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from store import (
    InvalidInputError,
    NotFoundError,
    Store,
    WorkspaceError,
    resolve_workspace,
)


def sem(seed: int, size: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size), dtype=np.uint8)


def test_open_creates_workspace_layout(tmp_path: Path) -> None:
    with Store.open(tmp_path / "ws"):
        pass
    assert sorted(p.name for p in (tmp_path / "ws").iterdir() if not p.name.startswith(
        "semgan.db-")) == ["blobs", "logs", "models", "semgan.db"]


def test_resolve_workspace_uses_env_then_default(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SEMGAN_WORKSPACE", str(tmp_path / "env_ws"))
    assert resolve_workspace() == (tmp_path / "env_ws").resolve()
    monkeypatch.delenv("SEMGAN_WORKSPACE")
    monkeypatch.chdir(tmp_path)
    assert resolve_workspace() == (tmp_path / "workspace").resolve()


def test_open_rejects_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "semgan.db").write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(WorkspaceError):
        Store.open(tmp_path / "ws")


def test_reopening_keeps_data(tmp_path: Path) -> None:
    with Store.open(tmp_path / "ws") as first:
        sample = first.add_sample(sem(1), 4.0, "upload", tool="tool-a", name="a.png")
    with Store.open(tmp_path / "ws") as second:
        assert second.get_sample(sample.id) == sample


def test_sample_round_trip(store: Store) -> None:
    image = sem(2)
    sample = store.add_sample(image, 2.5, "import", tool="cdsem-1", name="clip.png")
    got = store.get_sample(sample.id)
    assert (got.nm_per_px, got.source, got.tool, got.name, got.height, got.width) == \
        (2.5, "import", "cdsem-1", "clip.png", 32, 32)
    assert np.array_equal(store.sample_image(sample.id), image)


def test_same_pixels_and_pixel_size_are_stored_once(store: Store) -> None:
    first = store.add_sample(sem(3), 4.0, "upload")
    again = store.add_sample(sem(3), 4.0, "demo")
    assert again.id == first.id
    assert store.count_samples() == 1
    assert len(list(store.blobs_dir.glob("*/*.png"))) == 1


def test_png_bytes_and_array_of_same_image_dedup(store: Store) -> None:
    from store.blobs import encode_png

    first = store.add_sample(sem(4), 4.0, "upload")
    assert store.add_sample(encode_png(sem(4)), 4.0, "upload").id == first.id


def test_same_pixels_at_other_pixel_size_is_another_sample(store: Store) -> None:
    first = store.add_sample(sem(5), 4.0, "upload")
    assert store.add_sample(sem(5), 2.0, "upload").id != first.id


def test_add_sample_rejects_bad_source(store: Store) -> None:
    with pytest.raises(InvalidInputError):
        store.add_sample(sem(6), 4.0, "camera")


def test_add_sample_rejects_non_positive_pixel_size(store: Store) -> None:
    with pytest.raises(InvalidInputError):
        store.add_sample(sem(6), 0.0, "upload")


def test_add_sample_rejects_float_image(store: Store) -> None:
    with pytest.raises(InvalidInputError):
        store.add_sample(sem(6).astype(np.float32), 4.0, "upload")


def test_get_missing_sample_raises(store: Store) -> None:
    with pytest.raises(NotFoundError):
        store.get_sample(99)


def test_drift_round_trip_and_ordering(store: Store) -> None:
    a = store.add_sample(sem(7), 4.0, "upload")
    b = store.add_sample(sem(8), 4.0, "upload")
    c = store.add_sample(sem(9), 4.0, "upload")
    store.set_drift(a.id, {"mean_z": 1.0, "hist_kl": 0.1}, flagged=False)
    store.set_drift(b.id, {"mean_z": -3.5, "hist_kl": 0.2}, flagged=True)
    got = store.get_sample(b.id)
    assert (got.drift_scores, got.drift_score, got.drift_flagged) == \
        ({"mean_z": -3.5, "hist_kl": 0.2}, 3.5, True)
    assert [s.id for s in store.list_samples(order_by="drift")] == [b.id, a.id, c.id]


def test_list_samples_filters_and_pages(store: Store) -> None:
    ids = [store.add_sample(sem(10 + i), 4.0, "demo" if i % 2 else "upload",
                            tool="t1" if i < 3 else "t2").id for i in range(6)]
    store.save_correction(ids[0], np.zeros((32, 32), bool), "ann")
    assert [s.id for s in store.list_samples(limit=2, offset=1)] == [ids[4], ids[3]]
    assert store.count_samples(source="demo") == 3
    assert store.count_samples(tool="t1", uncorrected_only=True) == 2
    assert [s.id for s in store.list_samples(order_by="created", uncorrected_only=True,
                                             source="upload")] == [ids[4], ids[2]]


def test_prediction_round_trip(store: Store) -> None:
    sample = store.add_sample(sem(20), 4.0, "upload")
    store.register_model("m1.safetensors", "a" * 64, {}, {}, None, {}, {})
    mask = sem(21) > 128
    confidence = sem(22)
    prediction = store.add_prediction(sample.id, 1, mask, {"mean": 0.8, "p05": 0.3,
                                                           "uncertain_fraction": 0.25},
                                      1.5, confidence_map=confidence)
    assert store.get_prediction(sample.id, 1) == prediction
    assert store.latest_prediction(sample.id) == prediction
    assert np.array_equal(store.prediction_mask(prediction), mask)
    assert np.array_equal(store.confidence_map(prediction), confidence)
    assert store.get_sample(sample.id).uncertainty == 0.25


def test_prediction_for_unregistered_model_raises(store: Store) -> None:
    sample = store.add_sample(sem(23), 4.0, "upload")
    with pytest.raises(NotFoundError):
        store.add_prediction(sample.id, 7, np.zeros((32, 32), bool), {}, 0.1)


def test_prediction_of_wrong_shape_raises(store: Store) -> None:
    sample = store.add_sample(sem(24), 4.0, "upload")
    store.register_model("m1.safetensors", "a" * 64, {}, {}, None, {}, {})
    with pytest.raises(InvalidInputError):
        store.add_prediction(sample.id, 1, np.zeros((16, 32), bool), {}, 0.1)


def test_list_samples_by_uncertainty(store: Store) -> None:
    store.register_model("m1.safetensors", "a" * 64, {}, {}, None, {}, {}, status="production")
    ids = [store.add_sample(sem(30 + i), 4.0, "upload").id for i in range(3)]
    for sample_id, fraction in zip(ids, np.float32([0.1, 0.5, 0.3]), strict=True):
        store.add_prediction(sample_id, 1, np.zeros((32, 32), bool),
                             {"uncertain_fraction": fraction}, 0.1)
    assert [s.id for s in store.list_samples(order_by="uncertainty")] == [ids[1], ids[2], ids[0]]


def test_correction_round_trip_with_change_figures(store: Store) -> None:
    sample = store.add_sample(sem(40), 4.0, "upload")
    store.register_model("m1.safetensors", "a" * 64, {}, {}, None, {}, {})
    predicted = np.zeros((32, 32), bool)
    predicted[:, :16] = True  # 512 px
    prediction = store.add_prediction(sample.id, 1, predicted, {}, 0.1)
    corrected = np.zeros((32, 32), bool)
    corrected[:, 8:20] = True  # 384 px: adds 4 columns, removes 8
    pair = store.save_correction(sample.id, corrected, "ann", prediction.id)
    assert (pair.pixels_added, pair.pixels_removed) == (128, 256)
    assert pair.iou_vs_prediction == pytest.approx(256 / 640)
    assert (pair.version, pair.kind, pair.author) == (1, "corrected", "ann")
    assert store.get_pair(pair.id) == pair
    assert np.array_equal(store.pair_mask(pair), corrected)


def test_recorrection_adds_a_version_and_keeps_history(store: Store) -> None:
    sample = store.add_sample(sem(41), 4.0, "upload")
    first = store.save_correction(sample.id, np.zeros((32, 32), bool), "ann")
    second = store.save_correction(sample.id, np.ones((32, 32), bool), "bob", kind="accepted")
    assert [p.version for p in store.pair_history(sample.id)] == [1, 2]
    assert store.latest_pair(sample.id) == second
    assert [p.id for p in store.list_pairs()] == [second.id]
    assert second.split == first.split


def test_correction_with_prediction_of_another_sample_raises(store: Store) -> None:
    a = store.add_sample(sem(42), 4.0, "upload")
    b = store.add_sample(sem(43), 4.0, "upload")
    store.register_model("m1.safetensors", "a" * 64, {}, {}, None, {}, {})
    prediction = store.add_prediction(a.id, 1, np.zeros((32, 32), bool), {}, 0.1)
    with pytest.raises(InvalidInputError):
        store.save_correction(b.id, np.zeros((32, 32), bool), "ann", prediction.id)


def test_correction_of_wrong_shape_raises(store: Store) -> None:
    sample = store.add_sample(sem(44), 4.0, "upload")
    with pytest.raises(InvalidInputError):
        store.save_correction(sample.id, np.zeros((32, 31), bool), "ann")


def test_model_round_trip(store: Store, tmp_path: Path) -> None:
    path = store.models_dir / "v1.safetensors"
    model = store.register_model(path, "c" * 64, {"base_channels": 48}, {"title": "v1"}, None,
                                 {"pairs": 10}, {"ssim": 0.7})
    assert store.get_model(1) == model
    assert (model.version, model.status, model.path, model.config, model.card,
            model.training_summary, model.metrics) == \
        (1, "candidate", str(path.resolve()), {"base_channels": 48}, {"title": "v1"},
         {"pairs": 10}, {"ssim": 0.7})
    assert store.list_models() == [model]


def test_model_path_inside_workspace_is_stored_relative(store: Store) -> None:
    store.register_model(store.models_dir / "v1.safetensors", "c" * 64, {}, {}, None, {}, {})
    stored = store._conns.db().execute("SELECT path FROM models").fetchone()[0]
    assert stored == "models/v1.safetensors"


def test_set_model_metrics_merges(store: Store) -> None:
    store.register_model("v1.safetensors", "c" * 64, {}, {}, None, {}, {"ssim": 0.7})
    assert store.set_model_metrics(1, {"iou": 0.9}).metrics == {"ssim": 0.7, "iou": 0.9}


def test_event_round_trip_and_kind_filter(store: Store) -> None:
    event = store.log_event("note", "hello", {"x": 1})
    store.log_event("other", "ignored")
    assert store.list_events(kinds=["note"]) == [event]
    assert (event.kind, event.message, event.data) == ("note", "hello", {"x": 1})


def test_events_are_newest_first(store: Store) -> None:
    for i in range(3):
        store.log_event("note", f"m{i}")
    assert [e.message for e in store.list_events(limit=2)] == ["m2", "m1"]


def test_settings_round_trip(store: Store) -> None:
    assert store.get_setting("auto_trigger", default=False) is False
    store.set_setting("auto_trigger", True)
    store.set_setting("threshold", 50)
    store.set_setting("threshold", 25)
    assert store.settings() == {"auto_trigger": True, "threshold": 25}


def test_blob_round_trip_of_bool_mask_is_0_255(store: Store) -> None:
    mask = sem(50) > 100
    sha = store.put_blob(mask)
    assert store.blob_path(sha).exists()
    assert sorted(np.unique(store.read_blob_array(sha)).tolist()) == [0, 255]
    assert np.array_equal(store.read_mask(sha), mask)


def test_put_blob_rejects_non_png_bytes(store: Store) -> None:
    with pytest.raises(InvalidInputError):
        store.put_blob(b"GIF89a....")


def test_gc_removes_only_old_unreferenced_blobs(store: Store) -> None:
    kept = store.add_sample(sem(51), 4.0, "upload").image_sha
    old = store.put_blob(sem(52))
    young = store.put_blob(sem(53))
    hour_ago = time.time() - 7200
    for sha in (kept, old):
        os.utime(store.blob_path(sha), (hour_ago, hour_ago))
    result = store.gc_blobs(grace_s=3600)
    assert (result.removed, result.kept, result.skipped_recent) == (1, 1, 1)
    assert [store.blob_path(s).exists() for s in (kept, old, young)] == [True, False, True]


def test_store_is_usable_from_several_threads(store: Store) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=4) as pool:
        ids = list(pool.map(lambda i: store.add_sample(sem(100 + i), 4.0, "upload").id,
                            range(12)))
    assert sorted(ids) == list(range(1, 13))


def test_gc_spares_an_old_blob_written_again_by_a_new_save(store: Store) -> None:
    sha = store.put_blob(sem(54))
    hour_ago = time.time() - 7200
    os.utime(store.blob_path(sha), (hour_ago, hour_ago))
    assert store.put_blob(sem(54)) == sha  # an in-flight save re-uses the existing file
    assert (store.gc_blobs(grace_s=3600).removed, store.blob_path(sha).exists()) == (0, True)
