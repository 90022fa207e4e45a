"""When to fine-tune by itself: pair threshold, drift alarm, cooldown (seed §10).

The automatic trigger (on by default) queues the same job as **Fine-tune now** when
  * the corrected pairs newer than the production model reach ``threshold`` — once per
    crossing: at 50, again at 100, … for the same production model (a new production model
    starts the count again), or
  * the drift alarm is raised (``semgan.drift.alarm`` over the flags of the latest scored
    samples since production was promoted) and at least ``min_pairs_for_drift`` new pairs
    exist, that many of them added since the last automatic run (retrying on the same data
    is pointless),
and never within ``cooldown_hours`` of the last automatic run. Manual runs ignore the cooldown
and do not start one; the store allows one training job at a time for everyone.
Settings live in the workspace (``loop.<name>``), so the UI switch, the CLI and the worker agree.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

from loop import process
from loop.finetune import FinetuneError, request_finetune
from loop.finetune.recipe import wrong_type
from loop.jobs import TRAINING_KINDS
from semgan.drift import DriftConfig, alarm
from store import Job, JobConflictError, Store

PREFIX = "loop."
LAST_AUTO_RUN = "loop.last_auto_run"


class TriggerError(ValueError):
    """A trigger setting has an impossible value."""


@dataclass(frozen=True)
class TriggerSettings:
    """The automatic trigger's switch and numbers (all configurable in the Fine-tune tab)."""

    auto_trigger: bool = True
    threshold: int = 50  # new corrected pairs since production
    min_pairs_for_drift: int = 10
    cooldown_hours: float = 24.0
    drift_alarm_window: int = 10  # latest scored samples looked at
    drift_alarm_min_flagged: int = 5  # flagged among them to raise the alarm

    def __post_init__(self) -> None:
        if problem := wrong_type(self):
            raise TriggerError(f"trigger setting: {problem}")
        checks = [(isinstance(self.auto_trigger, bool), "auto_trigger must be true or false"),
                  (self.threshold >= 1, "threshold must be ≥ 1"),
                  (self.min_pairs_for_drift >= 1, "min_pairs_for_drift must be ≥ 1"),
                  (self.cooldown_hours >= 0, "cooldown_hours must be ≥ 0"),
                  (self.drift_alarm_window >= 1, "drift_alarm_window must be ≥ 1"),
                  (1 <= self.drift_alarm_min_flagged <= self.drift_alarm_window,
                   "drift_alarm_min_flagged must be in 1..drift_alarm_window")]
        for ok, message in checks:
            if not ok:
                raise TriggerError(f"trigger setting: {message}")


def trigger_settings(store: Store) -> TriggerSettings:
    """The workspace's trigger settings (defaults for those never set)."""
    defaults = TriggerSettings()
    return TriggerSettings(**{f.name: store.get_setting(PREFIX + f.name, getattr(defaults, f.name))
                              for f in dataclasses.fields(TriggerSettings)})


def set_trigger_settings(store: Store, **changes: object) -> TriggerSettings:
    """Change some settings (validated together first); returns the new settings."""
    names = {f.name for f in dataclasses.fields(TriggerSettings)}
    unknown = sorted(set(changes) - names)
    if unknown:
        raise TriggerError(f"unknown trigger setting {unknown[0]!r} (known: {', '.join(sorted(names))})")
    try:
        updated = dataclasses.replace(trigger_settings(store), **changes)
    except TypeError as exc:
        raise TriggerError(str(exc)) from exc
    for name in changes:
        store.set_setting(PREFIX + name, getattr(updated, name))
    return updated


@dataclass(frozen=True)
class TriggerState:
    """What the automatic trigger sees now, and what it would do."""

    settings: TriggerSettings
    production_version: int | None
    new_pairs: int  # corrected pairs newer than production's data
    threshold_level: int  # new_pairs // threshold
    fired_level: int  # highest level already fired for this production model
    drift_flagged: int
    drift_scored: int  # scored samples in the alarm window
    drift_alarm: bool
    fresh_pairs: int  # new pairs added since the last automatic run
    cooldown_remaining_s: float
    last_auto_run: dict | None
    active_job: Job | None
    due: str | None  # "threshold" / "drift" when a trigger condition holds
    blocked: str | None  # why a due trigger would not fire now

    def to_dict(self) -> dict:
        """JSON-ready dict (status --json, the Fine-tune tab)."""
        data = dataclasses.asdict(self)
        data["active_job"] = None if self.active_job is None else {
            "id": self.active_job.id, "status": self.active_job.status}
        return data


def _recent_flags(store: Store, since: float, window: int) -> list[bool]:
    """Drift flags of the latest ``window`` scored samples added since ``since``, oldest first."""
    recent = [s for s in store.list_samples(order_by="created", limit=4 * window)
              if s.created >= since and s.drift_scores is not None][:window]
    return [s.drift_flagged for s in reversed(recent)]


def trigger_state(store: Store, now: float | None = None) -> TriggerState:
    """Evaluate both trigger conditions and the cooldown without changing anything."""
    now = time.time() if now is None else now
    settings = trigger_settings(store)
    production = store.production_model()
    counts = store.counts()
    active = next((j for j in store.list_jobs(limit=20) if j.active and j.kind in TRAINING_KINDS),
                  None)
    last = store.get_setting(LAST_AUTO_RUN)
    same_model = bool(last) and production is not None and \
        last.get("production_version") == production.version
    fired_level = int(last.get("threshold_level", 0)) if same_model else 0
    level = counts.new_since_production // settings.threshold
    flags: list[bool] = []
    if production is not None:
        flags = _recent_flags(store, production.promoted_at or production.created,
                              settings.drift_alarm_window)
    drift_config = DriftConfig(alarm_window=settings.drift_alarm_window,
                               alarm_min_flagged=settings.drift_alarm_min_flagged)
    raised = alarm(flags, drift_config)
    fresh = counts.new_since_production
    if same_model:
        fresh = sum(1 for p in store.list_pairs(since_model_version=production.version)
                    if p.id > int(last.get("max_pair_id", 0)))
    cooldown = 0.0
    if last:
        cooldown = max(0.0, float(last["time"]) + settings.cooldown_hours * 3600 - now)
    due = None
    if production is not None and level >= 1 and level > fired_level:
        due = "threshold"
    elif production is not None and raised and \
            min(counts.new_since_production, fresh) >= settings.min_pairs_for_drift:
        due = "drift"
    blocked = None
    if production is None:
        blocked = "no production model"
    elif not settings.auto_trigger:
        blocked = "automatic trigger is off"
    elif active is not None:
        blocked = f"{active.kind} job {active.id} is {active.status}"
    elif cooldown > 0:
        blocked = f"cooldown: {cooldown / 3600:.1f} h left after the last automatic run"
    return TriggerState(settings, production.version if production else None,
                        counts.new_since_production, level, fired_level, sum(flags), len(flags),
                        raised, fresh, cooldown, last, active, due, blocked)


@dataclass(frozen=True)
class TriggerDecision:
    """What one automatic-trigger check did."""

    fired: bool
    message: str
    job: Job | None
    state: TriggerState


def describe_due(state: TriggerState) -> str:
    """One line saying why the trigger is (or would be) due."""
    if state.due == "threshold":
        return (f"{state.new_pairs} new corrected pairs since v{state.production_version} "
                f"reached the threshold of {state.settings.threshold}")
    if state.due == "drift":
        return (f"drift alarm ({state.drift_flagged} of the last {state.drift_scored} samples "
                f"flagged) with {state.new_pairs} new corrected pairs")
    return (f"nothing due: {state.new_pairs}/{state.settings.threshold} new pairs, drift alarm "
            f"{'on' if state.drift_alarm else 'off'} ({state.drift_flagged} of "
            f"{state.drift_scored} flagged)")


def check_triggers(store: Store, now: float | None = None, spawn: bool = False) -> TriggerDecision:
    """Run the automatic trigger once: queue a fine-tune if due and not blocked.

    With ``spawn`` a background worker is started when a job was queued (the UI and the CLI
    pass it; the worker itself does not need to).
    """
    now = time.time() if now is None else now
    state = trigger_state(store, now)
    if state.due is None:
        return TriggerDecision(False, describe_due(state), None, state)
    reason = describe_due(state)
    if state.blocked is not None:
        return TriggerDecision(False, f"{reason}, but {state.blocked}", None, state)
    try:
        job = request_finetune(store, "auto", reason=reason)
    except (FinetuneError, JobConflictError) as exc:
        return TriggerDecision(False, f"{reason}, but {exc}", None, state)
    max_pair_id = max((p.id for p in store.list_pairs(include_history=True)), default=0)
    store.set_setting(LAST_AUTO_RUN, {
        "time": now, "job_id": job.id, "trigger": state.due, "reason": reason,
        "production_version": state.production_version,
        "threshold_level": max(state.threshold_level, state.fired_level),
        "max_pair_id": max_pair_id, "new_pairs": state.new_pairs})
    store.log_event("auto_trigger", f"automatic fine-tune job {job.id} queued: {reason}",
                    {"job_id": job.id, "trigger": state.due})
    if spawn:

        process.spawn_worker(store.workspace)
    return TriggerDecision(True, f"queued fine-tune job {job.id}: {reason}", job, state)
