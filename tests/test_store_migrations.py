"""Schema migrations: a workspace written at schema 1 opens with the current store, intact."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from store import SchemaVersionError, Store, blobs, migrations
from store.connection import Connections


def make_v1_workspace(root: Path) -> dict:
    """A workspace as the first release wrote it: schema 1 only, rows inserted the v1 way."""
    for folder in ("blobs", "models", "logs"):
        (root / folder).mkdir(parents=True)
    conns = Connections(root / "semgan.db")
    conns.db().execute("PRAGMA journal_mode=WAL")
    assert migrations.migrate(conns, up_to=1) == [1]
    image = np.arange(64, dtype=np.uint8).reshape(8, 8)
    mask = image > 30
    image_sha = blobs.write_blob(root / "blobs", blobs.encode_png(image))
    mask_sha = blobs.write_blob(root / "blobs", blobs.encode_png(mask))
    now = time.time()
    with conns.write() as db:
        db["samples"].insert({"id": 1, "image_sha": image_sha,
                              "content_sha": blobs.content_sha(image), "nm_per_px": 4.0,
                              "height": 8, "width": 8, "source": "upload", "tool": "t1",
                              "name": "old.png", "truth_sha": None, "created": now})
        db["pairs"].insert({"id": 1, "sample_id": 1, "version": 1, "mask_sha": mask_sha,
                            "author": "ann", "prediction_id": None, "kind": "corrected",
                            "pixels_added": None, "pixels_removed": None,
                            "iou_vs_prediction": None, "split": "holdout", "created": now})
        db["models"].insert({"version": 1, "parent_version": None, "path": "models/v1.st",
                             "weights_sha256": "e" * 64, "config_json": "{}", "card_json": "{}",
                             "training_summary_json": "{}", "metrics_json": '{"ssim": 0.7}',
                             "status": "production", "created": now, "promoted_at": now,
                             "data_cutoff_pair_id": 0})
        db["jobs"].insert({"id": 1, "kind": "evaluate", "params_json": "{}",
                           "status": "succeeded", "created": now, "step": 3, "total": 3,
                           "log_json": '["done"]', "last_losses_json": "{}",
                           "cancel_requested": 0})
        db["events"].insert({"created": now, "kind": "note", "message": "v1 event",
                             "data_json": "{}"})
    conns.close()
    return {"image": image, "mask": mask}


def test_v1_workspace_is_migrated_to_latest(tmp_path: Path) -> None:
    make_v1_workspace(tmp_path / "ws")
    with Store.open(tmp_path / "ws") as store:
        assert store.schema_version() == migrations.LATEST_VERSION


def test_v1_data_is_intact_after_migration(tmp_path: Path) -> None:
    original = make_v1_workspace(tmp_path / "ws")
    with Store.open(tmp_path / "ws") as store:
        sample = store.get_sample(1)
        pair = store.latest_pair(1)
        assert (sample.name, sample.tool, sample.drift_scores, sample.drift_flagged) == \
            ("old.png", "t1", None, False)
        assert np.array_equal(store.sample_image(1), original["image"])
        assert (pair.split, pair.author) == ("holdout", "ann")
        assert np.array_equal(store.pair_mask(pair), original["mask"])
        assert store.production_model().metrics == {"ssim": 0.7}
        assert store.get_job(1).log_lines == ("done",)
        assert [e.message for e in store.list_events()] == ["v1 event"]


def test_migrated_workspace_accepts_new_features(tmp_path: Path) -> None:
    make_v1_workspace(tmp_path / "ws")
    with Store.open(tmp_path / "ws") as store:
        store.set_setting("cooldown_hours", 24)
        store.set_drift(1, {"mean_z": 4.0}, flagged=True)
        assert store.get_setting("cooldown_hours") == 24
        assert store.list_samples(order_by="drift", flagged_only=True)[0].id == 1


def test_migrations_run_once_when_opened_concurrently(tmp_path: Path) -> None:
    make_v1_workspace(tmp_path / "ws")
    errors, stores = [], []

    def open_store() -> None:
        try:
            stores.append(Store.open(tmp_path / "ws"))
        except Exception as exc:  # collected: the test asserts there is none
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    versions = [s.schema_version() for s in stores]
    for store in stores:
        store.close()
    assert (errors, versions) == ([], [migrations.LATEST_VERSION] * 4)


def test_reopening_a_current_workspace_applies_nothing(tmp_path: Path) -> None:
    Store.open(tmp_path / "ws").close()
    conns = Connections(tmp_path / "ws" / "semgan.db")
    try:
        assert migrations.migrate(conns) == []
    finally:
        conns.close()


def test_workspace_from_a_newer_app_is_refused(tmp_path: Path) -> None:
    Store.open(tmp_path / "ws").close()
    conns = Connections(tmp_path / "ws" / "semgan.db")
    conns.db().execute(f"PRAGMA user_version={migrations.LATEST_VERSION + 1}")
    conns.close()
    with pytest.raises(SchemaVersionError):
        Store.open(tmp_path / "ws")
