"""Model registry: promotion, rollback, rejection, audit, one production under concurrency."""

from __future__ import annotations

import multiprocessing
import threading

import numpy as np
import pytest

from store import ModelStateError, PromotionConflictError, Store


def register(store: Store, ssim: float, status: str = "candidate", parent: int | None = None):
    return store.register_model(store.models_dir / f"m{ssim}.safetensors", "d" * 64, {}, {},
                                parent, {}, {"ssim": ssim}, status=status)


def production_count(store: Store) -> int:
    return len(store.list_models(status="production"))


def test_versions_are_consecutive(store: Store) -> None:
    assert [register(store, s).version for s in (0.1, 0.2, 0.3)] == [1, 2, 3]


def test_first_model_registered_as_production(store: Store) -> None:
    register(store, 0.5, status="production")
    assert store.production_model().version == 1
    assert [a.action for a in store.model_audit()] == ["promote"]


def test_no_production_model_before_any_is_promoted(store: Store) -> None:
    register(store, 0.5)
    assert store.production_model() is None


def test_promote_archives_old_production_and_audits_both_figures(store: Store) -> None:
    register(store, 0.5, status="production")
    register(store, 0.6, parent=1)
    promoted = store.promote(2, "beats v1 on holdout", "gate")
    assert (promoted.status, store.get_model(1).status) == ("production", "archived")
    entry = store.model_audit(limit=1)[0]
    assert (entry.action, entry.version, entry.previous_version, entry.reason, entry.actor,
            entry.metrics, entry.previous_metrics) == \
        ("promote", 2, 1, "beats v1 on holdout", "gate", {"ssim": 0.6}, {"ssim": 0.5})


def test_promoting_production_again_raises(store: Store) -> None:
    register(store, 0.5, status="production")
    with pytest.raises(ModelStateError):
        store.promote(1, "again", "ann")


def test_promote_with_stale_expected_production_raises(store: Store) -> None:
    register(store, 0.5, status="production")
    register(store, 0.6)
    register(store, 0.7)
    store.promote(2, "first", "gate", expected_production=1)
    with pytest.raises(PromotionConflictError):
        store.promote(3, "second", "gate", expected_production=1)


def test_rollback_restores_archived_model(store: Store) -> None:
    register(store, 0.5, status="production")
    register(store, 0.6)
    store.promote(2, "better", "gate")
    restored = store.rollback(1, "v2 fails on new tool", "ann")
    assert (restored.status, store.get_model(2).status) == ("production", "archived")
    assert store.model_audit(limit=1)[0].action == "rollback"


def test_rollback_to_never_promoted_model_raises(store: Store) -> None:
    register(store, 0.5, status="production")
    register(store, 0.6)
    with pytest.raises(ModelStateError):
        store.rollback(2, "try", "ann")


def test_reject_records_reason_and_metrics(store: Store) -> None:
    register(store, 0.5, status="production")
    register(store, 0.4)
    rejected = store.reject(2, "SSIM below production", {"iou_old": 0.8})
    assert (rejected.status, rejected.metrics) == ("rejected", {"ssim": 0.4, "iou_old": 0.8})
    entry = store.model_audit(limit=1)[0]
    assert (entry.action, entry.previous_version, entry.previous_metrics) == \
        ("reject", 1, {"ssim": 0.5})


def test_rejecting_production_raises(store: Store) -> None:
    register(store, 0.5, status="production")
    with pytest.raises(ModelStateError):
        store.reject(1, "no", None)


def test_new_pairs_count_from_production_data_cutoff(store: Store) -> None:
    images = [np.random.default_rng(i).integers(0, 256, (16, 16), dtype=np.uint8)
              for i in range(3)]
    samples = [store.add_sample(image, 4.0, "upload") for image in images]
    store.save_correction(samples[0].id, np.zeros((16, 16), bool), "ann")
    register(store, 0.5, status="production")  # trained on pair 1
    store.save_correction(samples[1].id, np.zeros((16, 16), bool), "ann")
    store.save_correction(samples[0].id, np.ones((16, 16), bool), "ann")  # re-correction
    assert store.counts().new_since_production == 2
    assert [p.sample_id for p in store.list_pairs(since_model_version=1)] == \
        [samples[1].id, samples[0].id]


def test_concurrent_promotions_from_threads_leave_one_production(store: Store) -> None:
    register(store, 0.5, status="production")
    for i in range(6):
        register(store, 0.6 + i / 100)
    barrier = threading.Barrier(6)
    outcomes = []

    def attempt(version: int) -> None:
        barrier.wait()
        try:
            store.promote(version, "race", "thread", expected_production=1)
            outcomes.append("won")
        except PromotionConflictError:
            outcomes.append("lost")

    threads = [threading.Thread(target=attempt, args=(v,)) for v in range(2, 8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["lost"] * 5 + ["won"]
    assert production_count(store) == 1


def _promote_all(workspace: str, versions: list[int], start) -> int:
    """Child process: promote each version in turn; returns how many promotions succeeded."""
    start.wait()
    done = 0
    with Store.open(workspace) as child:
        for version in versions:
            try:
                child.promote(version, "process race", "proc")
                done += 1
            except ModelStateError:
                pass  # the other process promoted it already
    return done


def test_concurrent_promotions_from_two_processes_leave_one_production(store: Store) -> None:
    register(store, 0.5, status="production")
    for i in range(10):
        register(store, 0.6 + i / 100)
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(2) as pool:
        start = manager.Event()
        results = [pool.apply_async(_promote_all, (str(store.workspace), order, start))
                   for order in (list(range(2, 12)), list(range(11, 1, -1)))]
        start.set()
        done = [r.get(timeout=60) for r in results]
    audit = store.model_audit(limit=100)
    assert production_count(store) == 1
    assert sum(done) == len(audit) - 1  # every successful promotion is audited
    assert store.production_model().version == audit[0].version
