"""The automatic trigger: threshold crossings, cooldown, drift alarm, the switch."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from loop.triggers import TriggerError, check_triggers, set_trigger_settings, trigger_settings
from store import Store
from tests.support import register_dummy_production

HOUR = 3600.0


@pytest.fixture
def store(tmp_path: Path):
    with Store.open(tmp_path / "ws") as opened:
        register_dummy_production(opened)
        yield opened


def add_pairs(store: Store, count: int, flagged: bool | None = None) -> None:
    """Tiny corrected pairs (distinct random images), optionally drift-scored."""
    start = store.counts().samples
    for index in range(start, start + count):
        image = np.random.default_rng(index).integers(0, 256, (16, 16), dtype=np.uint8)
        sample = store.add_sample(image, 4.0, "upload")
        if flagged is not None:
            store.set_drift(sample.id, {"kl": 1.0 if flagged else 0.1}, flagged)
        store.save_correction(sample.id, image > 127, "tester")


def cancel_active(store: Store) -> None:
    for job in store.list_jobs(status="queued"):
        store.request_cancel(job.id)


def test_defaults_match_the_issue(store: Store) -> None:
    settings = trigger_settings(store)
    assert (settings.auto_trigger, settings.threshold, settings.cooldown_hours) == (True, 50, 24.0)


def test_threshold_fires_exactly_once_per_crossing(store: Store) -> None:
    set_trigger_settings(store, threshold=3, cooldown_hours=0.0)
    add_pairs(store, 2)
    assert not check_triggers(store).fired
    add_pairs(store, 1)
    first = check_triggers(store)
    cancel_active(store)
    again = [check_triggers(store, now=time.time() + k * HOUR).fired for k in (1, 2)]
    assert (first.fired, first.state.due, again) == (True, "threshold", [False, False])


def test_next_crossing_fires_again(store: Store) -> None:
    set_trigger_settings(store, threshold=3, cooldown_hours=0.0)
    add_pairs(store, 3)
    check_triggers(store)
    cancel_active(store)
    add_pairs(store, 3)
    assert check_triggers(store).fired


def test_cooldown_blocks_a_second_automatic_trigger(store: Store) -> None:
    set_trigger_settings(store, threshold=3)
    add_pairs(store, 3)
    start = time.time()
    assert check_triggers(store, now=start).fired
    cancel_active(store)
    add_pairs(store, 3)  # the next crossing is due
    blocked = check_triggers(store, now=start + HOUR)
    assert (blocked.fired, blocked.state.due) == (False, "threshold")
    assert "cooldown" in blocked.message
    assert check_triggers(store, now=start + 25 * HOUR).fired


def test_drift_alarm_triggers_with_enough_new_pairs(store: Store) -> None:
    set_trigger_settings(store, min_pairs_for_drift=4, drift_alarm_window=4,
                         drift_alarm_min_flagged=2)
    add_pairs(store, 4, flagged=True)
    decision = check_triggers(store)
    assert (decision.fired, decision.state.due, decision.state.drift_alarm) == (True, "drift", True)


def test_drift_alarm_without_enough_pairs_does_not_trigger(store: Store) -> None:
    set_trigger_settings(store, min_pairs_for_drift=4, drift_alarm_window=4,
                         drift_alarm_min_flagged=2)
    add_pairs(store, 3, flagged=True)
    decision = check_triggers(store)
    assert (decision.fired, decision.state.drift_alarm) == (False, True)


def test_no_drift_alarm_no_drift_trigger(store: Store) -> None:
    set_trigger_settings(store, min_pairs_for_drift=4, drift_alarm_window=4,
                         drift_alarm_min_flagged=2)
    add_pairs(store, 6, flagged=False)
    assert not check_triggers(store).fired


def test_switch_off_blocks_the_trigger(store: Store) -> None:
    set_trigger_settings(store, threshold=2, auto_trigger=False)
    add_pairs(store, 2)
    decision = check_triggers(store)
    assert (decision.fired, decision.state.blocked) == (False, "automatic trigger is off")


def test_manual_run_in_progress_blocks_the_trigger(store: Store) -> None:
    set_trigger_settings(store, threshold=2)
    add_pairs(store, 2)
    store.enqueue_job("finetune", {"trigger": "manual"})
    assert not check_triggers(store).fired


def test_impossible_setting_raises(store: Store) -> None:
    with pytest.raises(TriggerError):
        set_trigger_settings(store, threshold=0)
