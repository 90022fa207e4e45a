"""Text for the Fine-tune tab: trigger counters, the recipe, job progress, the gate's verdict
and the job history (HTML strings and table rows, no Gradio).
"""

from __future__ import annotations

import html
import math
import time

from annotate import format as fmt
from loop.config_fields import setting_notes
from loop.finetune import FinetuneConfig
from loop.jobs import (
    FINETUNE,
    TRAINING_KINDS,
    Check,
    FinetunePlan,
    FinetuneRequest,
    FinetuneResult,
    GateResult,
)
from loop.triggers import TriggerState, describe_due
from store import Counts, Job, Store

DECISION_WORDS = {"promote": "promoted", "reject": "rejected", "none": "left as is"}
HISTORY_HEADERS = ["job", "trigger", "status", "started", "duration", "steps", "decision",
                   "candidate", "reason"]
GATE_COLUMNS = (*fmt.METRIC_COLUMNS, ("count", "images", "{:.0f}"))
DATA_SETS = (("old_data", "old data (anchor test set: the tools it was trained on)"),
             ("new_data", "new data (held-out corrected pairs)"))
CONFIG_NOTES = setting_notes(FinetuneConfig)  # field → the note shown beside it
LOG_TAIL = 14


def training_jobs(store: Store, limit: int = 50) -> list[Job]:
    """Training and fine-tune jobs, newest first (stale ones recovered by the store)."""
    return [j for j in store.list_jobs(limit=limit) if j.kind in TRAINING_KINDS]


def duration(seconds: float | None) -> str:
    """'2 h 05 min', '3 min 07 s', '12 s' (— when unknown)."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def stat(label: str, value: str, detail: str = "", alert: bool = False) -> str:
    """One counter cell in the status-strip style (``alert``: the value in red)."""
    small = f"<span class='sg-muted'>{html.escape(detail)}</span>" if detail else ""
    css = "sg-stat-value sg-fail" if alert else "sg-stat-value"
    return (f"<div class='sg-stat'><span class='sg-stat-label'>{html.escape(label)}</span>"
            f"<span class='{css}'>{html.escape(value)}</span>{small}</div>")


def trigger_html(counts: Counts, state: TriggerState) -> str:
    """Counters (pairs, threshold, production), cooldown, drift alarm and the trigger's state."""
    s = state.settings
    production = "none" if counts.production_version is None else f"v{counts.production_version}"
    cooldown = "ready" if state.cooldown_remaining_s <= 0 else \
        f"{duration(state.cooldown_remaining_s)} left"
    drift = "RAISED" if state.drift_alarm else "off"
    cells = [stat("Production model", production),
             stat("Corrected pairs", str(counts.train_pairs + counts.holdout_pairs),
                  f"{counts.train_pairs} train / {counts.holdout_pairs} holdout"),
             stat("New since production / threshold",
                  f"{counts.new_since_production} / {s.threshold}"),
             stat("Automatic trigger", "on" if s.auto_trigger else "off"),
             stat(f"Cooldown ({s.cooldown_hours:g} h)", cooldown),
             stat("Drift alarm", drift, f"{state.drift_flagged} of last {state.drift_scored} "
                  f"flagged (alarm at {s.drift_alarm_min_flagged})", state.drift_alarm)]
    if state.due and state.blocked:
        line, css = f"Due ({state.due}) but blocked: {state.blocked}. {describe_due(state)}.", \
            "sg-badge-none"
    elif state.due:
        line, css = (f"Due: {describe_due(state)}. The next check (every minute while the app "
                     "is open) queues a fine-tune.", "sg-badge-bad")
    else:
        blocked = f" ({state.blocked})" if state.blocked else ""
        if state.drift_alarm and state.production_version is not None:
            blocked += (f"; a drift-triggered run needs ≥ {s.min_pairs_for_drift} new corrected "
                        "pairs")
        line, css = f"{describe_due(state).capitalize()}{blocked}.", \
            "sg-badge-none" if state.drift_alarm else "sg-badge-ok"
    last = state.last_auto_run
    last_text = "" if not last else (f" Last automatic run: {fmt.when(last.get('time'))}, job "
                                     f"{last.get('job_id')} ({last.get('trigger')}).")
    return (f"<div class='sg-counters' id='finetune-counters'>{''.join(cells)}</div>"
            f"<div class='sg-badge {css} sg-trigger-line'>{html.escape(line + last_text)}</div>")


def drift_alarm_html(state: TriggerState) -> str:
    """The alarm banner (empty when the alarm is not raised)."""
    s = state.settings
    if not state.drift_alarm:
        return (f"<div class='sg-muted'>Drift alarm off: {state.drift_flagged} of the last "
                f"{state.drift_scored} scored samples since production are flagged (alarm at "
                f"{s.drift_alarm_min_flagged} of {s.drift_alarm_window}).</div>")
    return (f"<div class='sg-alarm'><b>Drift alarm raised</b>: {state.drift_flagged} of the "
            f"last {state.drift_scored} scored samples since production are out of "
            f"distribution (alarm at {s.drift_alarm_min_flagged}). An automatic fine-tune "
            f"needs ≥ {s.min_pairs_for_drift} new corrected pairs (now {state.new_pairs}): "
            "correct the flagged samples in Review.</div>")


def config_html(config: FinetuneConfig, counts: Counts) -> str:
    """The recipe **Fine-tune now** will run, one setting per row with what it means."""
    data = config.to_dict()
    rows = [(k, v) for k, v in data.items() if k != "gate"]
    rows += [(f"gate.{k}", v) for k, v in data["gate"].items()]
    body = "".join(f"<tr><td><code>{html.escape(k)}</code></td><td>{html.escape(str(v))}</td>"
                   f"<td class='sg-muted'>{html.escape(CONFIG_NOTES.get(k, ''))}</td></tr>"
                   for k, v in rows)
    return (f"<div class='sg-muted'>Trains on all {counts.train_pairs} corrected train-split "
            f"pairs; the gate tests on {counts.holdout_pairs} held-out pairs. Change with "
            "<code>python -m loop settings --set key=value</code>.</div>"
            "<table class='sg-metrics sg-config'><tr><th>setting</th><th>value</th>"
            f"<th>meaning</th></tr>{body}</table>")


def steps_per_epoch(job: Job) -> int | None:
    """From the run's plan (``loop.jobs.FinetunePlan``), once its data is ready."""
    plan = FinetunePlan.of(job)
    return None if plan is None else plan.steps_per_epoch


def job_warnings(job: Job) -> list[str]:
    """The run's warnings (D-loss spike, G-loss collapse, time budget)."""
    return list(job.warnings)


def progress_html(job: Job | None, now: float | None = None) -> str:
    """Status, step/total, epoch, ETA and a bar for the active (or last) job, with warnings."""
    now = time.time() if now is None else now
    if job is None:
        return "<div class='sg-muted'>No fine-tune has run in this workspace yet.</div>"
    trigger = html.escape(str(job.params.get("trigger", job.kind)))
    parts = [f"<b>Job {job.id}</b> ({trigger}) <b>{job.status}</b>"]
    if job.status == "queued":
        parts.append(f"waiting for the background worker for {duration(now - job.created)}")
    if job.total:
        parts.append(f"step {job.step} / {job.total} ({job.progress:.0%})")
        per_epoch = steps_per_epoch(job)
        if per_epoch:
            parts.append(f"epoch {job.step / per_epoch:.1f} / {job.total / per_epoch:.1f}")
    if job.status == "running":
        parts.append(f"elapsed {duration(now - (job.started or now))}")
        if job.eta_seconds is not None and job.step < job.total:
            parts.append(f"ETA {duration(job.eta_seconds)}")
        if job.cancel_requested:
            parts.append("cancel requested: stopping at the next step")
    elif job.finished is not None:
        parts.append(f"took {duration(job.finished - (job.started or job.created))}")
    done = 1.0 if job.status == "succeeded" else job.progress
    bar = (f"<div class='sg-progress' title='{done:.0%}'><div class='sg-progress-bar "
           f"sg-progress-{job.status}' style='width:{100 * done:.1f}%'></div></div>")
    stage = ""
    if job.active and job.log_lines:
        stage = f"<div class='sg-muted'>now: {html.escape(job.log_lines[-1])}</div>"
    losses = " · ".join(f"{html.escape(k)} {v:.4g}" for k, v in job.last_losses.items())
    losses = f"<div class='sg-muted'>last losses: {losses}</div>" if losses else ""
    warnings = "".join(f"<div class='sg-notice'>⚠ {html.escape(w)}</div>"
                       for w in job_warnings(job))
    return (f"<div class='sg-job-line'>{' · '.join(parts)}</div>{bar}{stage}{losses}"
            f"{warnings}")


def log_tail_html(job: Job | None, lines: int = LOG_TAIL) -> str:
    """The last lines of the job's log."""
    if job is None or not job.log_lines:
        return "<div class='sg-muted'>No log yet.</div>"
    tail = html.escape("\n".join(job.log_lines[-lines:]))
    return f"<pre class='sg-log'>{tail}</pre>"


def _number(value: object, spec: str) -> str:
    return fmt.number(float(value), spec) if isinstance(value, int | float) else "—"


def checks_html(checks: tuple[Check, ...]) -> str:
    """The gate's rules with production, candidate, change, limit and pass/fail."""
    if not checks:
        return ""
    rows = "".join(
        f"<tr><td>{html.escape(c.name)}</td><td>{_number(c.production, '{:.4f}')}</td>"
        f"<td>{_number(c.candidate, '{:.4f}')}</td><td>{_number(c.change, '{:+.4f}')}</td>"
        f"<td>{html.escape(c.limit)}</td><td class='{'sg-pass' if c.passed else 'sg-fail'}'>"
        f"{'pass' if c.passed else 'FAIL'}</td></tr>" for c in checks)
    return ("<table class='sg-metrics'><caption>Gate rules</caption><tr><th>rule</th>"
            "<th>production</th><th>candidate</th><th>change</th><th>limit</th><th>result</th>"
            f"</tr>{rows}</table>")


def gate_metrics_html(gate: GateResult) -> str:
    """Both models' figures on old and new data (or per adapted tool), side by side."""
    head = "".join(f"<th>{html.escape(h)}</th>" for _, h, _ in GATE_COLUMNS)
    rows = ""
    tools = sorted(gate.candidate.get("tools") or {})
    sets = [(("tools", tool), f"tool {tool.removeprefix('tool:')} (its held-out pairs)")
            for tool in tools] or list(DATA_SETS)
    for key, label in sets:
        for who, version, figures in (("production", gate.production_version, gate.production),
                                      ("candidate", gate.candidate_version, gate.candidate)):
            metrics = (figures.get(key[0], {}).get(key[1]) if isinstance(key, tuple)
                       else figures.get(key)) or {}
            cells = "".join(f"<td>{_number(metrics.get(k), f)}</td>" for k, _, f in GATE_COLUMNS)
            rows += (f"<tr><td>{html.escape(label)}</td><td>{who} v{version}</td>{cells}</tr>"
                     if metrics else f"<tr><td>{html.escape(label)}</td><td>{who} v{version}"
                     f"</td><td colspan='{len(GATE_COLUMNS)}' class='sg-muted'>not evaluated"
                     "</td></tr>")
    return ("<table class='sg-metrics'><caption>Held-out metrics (EPE, CD in nm)</caption>"
            f"<tr><th>data</th><th>model</th>{head}</tr>{rows}</table>")


def verdict_html(job: Job | None) -> str:
    """The gate's verdict on the job's candidate: promoted / rejected, why, and the figures."""
    if job is None:
        return "<div class='sg-muted'>No fine-tune has finished yet: no verdict.</div>"
    result = FinetuneResult.of(job)
    if result is None:
        what = html.escape(job.error or job.status)
        return (f"<div class='sg-badge sg-badge-bad'><b>Job {job.id} {job.status}</b>: {what}"
                "</div><div class='sg-muted'>No candidate was judged; production is "
                "unchanged.</div>")
    gate, summary = result.gate, result.summary
    word = DECISION_WORDS.get(result.decision, result.decision)
    candidate, production = result.candidate_version, gate.production_version
    after = {"promoted": f"now in production (was v{production})",
             "rejected": f"production stays v{production}"}.get(word, "")
    css = "sg-badge-ok" if word == "promoted" else "sg-badge-bad"
    pairs = summary.pairs_used
    if summary.strategy == "tools":
        facts = "; ".join(f"{tool.removeprefix('tool:')}: {t.steps} steps in "
                          f"{duration(t.seconds)}, {t.train_pairs} train / "
                          f"{t.holdout_pairs} held-out pairs" for tool, t in summary.tools.items())
        facts += f"; gate {duration(gate.seconds)}; finished {fmt.when(job.finished)}"
    else:
        epochs = "—" if summary.epochs is None else f"{summary.epochs:g}"
        facts = (f"{summary.steps} steps ({epochs} epochs) in {duration(summary.train_seconds)} on "
                 f"{summary.device or '?'}; {pairs.get('corrected_pairs', '—')} corrected + "
                 f"{pairs.get('anchor_pairs', '—')} anchor pairs; gate "
                 f"{duration(gate.seconds)} on {gate.holdout_pairs} held-out "
                 f"pairs; finished {fmt.when(job.finished)}")
    warnings = "".join(f"<div class='sg-notice'>⚠ {html.escape(w)}</div>" for w in summary.warnings)
    return (f"<div class='sg-badge {css} sg-verdict-badge'><b>Job {job.id}: candidate "
            f"v{candidate} {word}</b> — {html.escape(after)}</div>"
            f"<div class='sg-why'><b>Why:</b> {html.escape(result.reason)}</div>"
            f"<div class='sg-muted'>{html.escape(facts)}</div>{warnings}"
            f"{checks_html(gate.checks)}{gate_metrics_html(gate)}")


def history_rows(jobs: list[Job], now: float | None = None) -> list[list]:
    """One row per job: id, trigger, status, started, duration, steps, decision, candidate, reason."""
    now = time.time() if now is None else now
    rows = []
    for job in jobs:
        result = FinetuneResult.of(job)
        request = FinetuneRequest.of(job) if job.kind == FINETUNE else None
        end = job.finished if job.finished is not None else now
        took = duration(end - job.started) if job.started is not None else "—"
        reason = (result.reason if result else None) or job.error or \
            (request.reason if request else "")
        rows.append([job.id, request.trigger if request else job.kind, job.status,
                     fmt.when(job.started or job.created), took,
                     f"{job.step}/{job.total}" if job.total else "—",
                     DECISION_WORDS.get(result.decision, "—") if result else "—",
                     f"v{result.candidate_version}" if result else "—", reason])
    return rows
