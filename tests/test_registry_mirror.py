"""models/registry.json: the store's read-only JSON mirror of the model registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from store import Store, registry_file


def register(store: Store, name: str, status: str = "candidate", parent: int | None = None):
    return store.register_model(store.models_dir / name, "a" * 64, {}, {}, parent, {},
                                {"ssim": 0.5}, status=status)


def mirror(store: Store) -> dict:
    return json.loads((store.workspace / "models" / "registry.json").read_text())


def statuses(store: Store) -> dict[int, str]:
    return {m["version"]: m["status"] for m in mirror(store)["models"]}


def test_opening_a_new_workspace_writes_an_empty_registry(store: Store) -> None:
    content = mirror(store)
    assert (content["format"], content["version"], content["production"], content["models"]) == \
        ("semgan-registry", 1, None, [])


def test_registering_a_production_model_mirrors_its_entry(store: Store) -> None:
    register(store, "m1", status="production")
    content = mirror(store)
    entry = content["models"][0]
    assert content["production"] == 1
    assert entry["version"] == 1
    assert entry["status"] == "production"
    assert entry["path"] == str(store.workspace / "models" / "m1")
    assert entry["relative_path"] == "models/m1"
    assert entry["weights_sha256"] == "a" * 64
    assert entry["parent_version"] is None
    assert isinstance(entry["created"], float)


def test_a_candidate_is_mirrored_with_its_parent(store: Store) -> None:
    register(store, "m1", status="production")
    register(store, "m2", parent=1)
    assert mirror(store)["models"][1]["parent_version"] == 1
    assert statuses(store) == {1: "production", 2: "candidate"}


def test_promotion_moves_production_in_the_mirror(store: Store) -> None:
    register(store, "m1", status="production")
    register(store, "m2", parent=1)
    store.promote(2, "better", "tester")
    assert mirror(store)["production"] == 2
    assert statuses(store) == {1: "archived", 2: "production"}


def test_rollback_is_mirrored(store: Store) -> None:
    register(store, "m1", status="production")
    register(store, "m2", parent=1)
    store.promote(2, "better", "tester")
    store.rollback(1, "worse on site B", "tester")
    assert mirror(store)["production"] == 1
    assert statuses(store) == {1: "production", 2: "archived"}


def test_rejection_is_mirrored(store: Store) -> None:
    register(store, "m1", status="production")
    register(store, "m2", parent=1)
    store.reject(2, "regressed IoU")
    assert statuses(store) == {1: "production", 2: "rejected"}


def test_a_model_outside_the_workspace_keeps_its_absolute_path(store: Store,
                                                               tmp_path: Path) -> None:
    store.register_model(tmp_path / "elsewhere", "b" * 64, {}, {}, None, {}, {})
    entry = mirror(store)["models"][0]
    assert (entry["path"], entry["relative_path"]) == (str(tmp_path / "elsewhere"), None)


def test_writes_leave_no_temporary_files(store: Store) -> None:
    register(store, "m1", status="production")
    register(store, "m2", parent=1)
    store.promote(2, "better", "tester")
    assert sorted(p.name for p in store.models_dir.iterdir()) == ["registry.json"]


def test_a_failed_replace_leaves_the_previous_mirror_whole(store: Store,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    register(store, "m1", status="production")
    register(store, "m2", parent=1)

    def refuse(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(registry_file.os, "replace", refuse)
    store.promote(2, "better", "tester")
    assert mirror(store)["production"] == 1  # the old file, complete
    assert sorted(p.name for p in store.models_dir.iterdir()) == ["registry.json"]


def test_a_mirror_failure_keeps_the_database_change(store: Store,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    register(store, "m1", status="production")
    register(store, "m2", parent=1)

    def broken(path: Path, content: dict) -> None:
        raise OSError("read-only file system")

    monkeypatch.setattr(registry_file, "write", broken)
    promoted = store.promote(2, "better", "tester")
    assert promoted.status == "production"
    assert store.production_model().version == 2


def test_a_mirror_failure_is_recorded_as_an_event(store: Store,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(path: Path, content: dict) -> None:
        raise OSError("read-only file system")

    monkeypatch.setattr(registry_file, "write", broken)
    register(store, "m1", status="production")
    events = store.list_events(kinds=["registry_mirror_failed"])
    assert len(events) == 1
    assert "read-only file system" in events[0].message


def test_opening_rewrites_a_missing_mirror(tmp_path: Path) -> None:
    with Store.open(tmp_path / "ws") as store:
        register(store, "m1", status="production")
    (tmp_path / "ws" / "models" / "registry.json").unlink()
    with Store.open(tmp_path / "ws") as store:
        assert mirror(store)["production"] == 1


def test_opening_repairs_a_stale_mirror(tmp_path: Path) -> None:
    with Store.open(tmp_path / "ws") as store:
        register(store, "m1", status="production")
        register(store, "m2", parent=1)
        stale = mirror(store)
        store.promote(2, "better", "tester")
    registry_file.write(tmp_path / "ws" / "models" / "registry.json", stale)  # e.g. a crash
    with Store.open(tmp_path / "ws") as store:
        assert mirror(store)["production"] == 2


def test_opening_leaves_a_current_mirror_untouched(tmp_path: Path) -> None:
    with Store.open(tmp_path / "ws") as store:
        register(store, "m1", status="production")
        written = mirror(store)["written"]
    with Store.open(tmp_path / "ws") as store:
        assert mirror(store)["written"] == written


def test_new_metrics_alone_do_not_rewrite_the_mirror(store: Store) -> None:
    register(store, "m1", status="production")
    written = mirror(store)["written"]
    store.set_model_metrics(1, {"iou": 0.9})
    assert mirror(store)["written"] == written
