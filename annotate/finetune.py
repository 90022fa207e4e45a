"""Fine-tune tab: trigger counters, the recipe, Fine-tune now / Cancel, live progress and losses,
the gate's verdict, the job history, the automatic trigger's settings and the drift monitor.

The buttons call what ``python -m loop finetune / cancel / settings`` call; a 2 s timer follows
the jobs and updates nothing while nothing changed.
"""

from __future__ import annotations

import math
import threading
import time

import gradio as gr

from annotate import finetune_plots as plots
from annotate import finetune_view as view
from annotate import render
from annotate.finetune_layout import FinetuneUI, JobPanels, layout
from annotate.studio import Studio
from loop.finetune import FinetuneError, finetune_config, request_finetune
from loop.triggers import TriggerError, check_triggers, set_trigger_settings, trigger_state
from loop.worker import LOG_NAME, spawn_worker, worker_pid
from store import Job, StoreError

POLL_S = 2.0
AUTO_CHECK_S = 60.0  # the automatic trigger runs this often while the app is open
RESPAWN_AFTER_S = 30.0  # a job queued this long without a live worker gets one (as --wait does)
HISTORY_LIMIT = 50
SIGNATURE_JOBS = 3  # the newest jobs the timer compares between ticks
DRIFT_SAMPLES = 200


def launch(studio: Studio) -> str:
    """Queue a manual fine-tune and start a background worker (``python -m loop finetune``)."""
    store = studio.store
    try:
        job = request_finetune(store, "manual")
    except (FinetuneError, StoreError) as exc:
        return f"**Cannot start a fine-tune:** {exc}"
    pid = spawn_worker(store.workspace)
    return (f"Queued fine-tune job **{job.id}** on production v{job.params['production_version']}"
            f"; background worker pid {pid} (log: `{store.logs_dir / LOG_NAME}`).")


def cancel(studio: Studio) -> str:
    """Ask the queued or running training job to stop (``python -m loop cancel``)."""
    active = next((j for j in view.training_jobs(studio.store) if j.active), None)
    if active is None:
        return "No fine-tune is queued or running."
    try:
        job = studio.store.request_cancel(active.id)
    except StoreError as exc:
        return f"**Cannot cancel job {active.id}:** {exc}"
    if job.status == "cancelled":
        return f"Job {job.id} cancelled before it started."
    return (f"Cancel requested for job {job.id}: it stops at its next step; no candidate is "
            "registered and production is unchanged.")


def parse_trigger_settings(auto_trigger: bool, threshold: float | None,
                           min_pairs_for_drift: float | None,
                           cooldown_hours: float | None) -> dict:
    """The form's values as set_trigger_settings arguments; blanks and fractions raise."""
    def whole(name: str, value: float | None) -> int:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            raise TriggerError(f"trigger setting: enter a number for {name}")
        if float(value) != int(value):
            raise TriggerError(f"trigger setting: {name} counts pairs, so it must be a whole "
                               f"number, got {value:g}")
        return int(value)
    if cooldown_hours is None or math.isnan(float(cooldown_hours)):
        raise TriggerError("trigger setting: enter a number for cooldown_hours")
    return {"auto_trigger": bool(auto_trigger), "threshold": whole("threshold", threshold),
            "min_pairs_for_drift": whole("min_pairs_for_drift", min_pairs_for_drift),
            "cooldown_hours": float(cooldown_hours)}


def save_settings(studio: Studio, auto_trigger: bool, threshold: float | None,
                  min_pairs_for_drift: float | None, cooldown_hours: float | None) -> str:
    """Validate and save the automatic trigger's switch and numbers (``loop settings``)."""
    try:
        saved = set_trigger_settings(studio.store, **parse_trigger_settings(
            auto_trigger, threshold, min_pairs_for_drift, cooldown_hours))
    except TriggerError as exc:
        return f"**Not saved:** {exc}"
    return (f"Saved: automatic trigger {'on' if saved.auto_trigger else 'off'}, threshold "
            f"{saved.threshold} new pairs, drift runs from {saved.min_pairs_for_drift} new pairs, "
            f"cooldown {saved.cooldown_hours:g} h.")


def job_panels(studio: Studio, jobs: list[Job]) -> tuple[str, str | None, str]:
    """(progress HTML, loss plot PNG path, log tail HTML) of the active job, else the latest."""
    job = next((j for j in jobs if j.active), jobs[0] if jobs else None)
    picture = None
    if job is not None:
        title = f"Job {job.id} losses ({job.status})"
        pixels = plots.loss_picture(studio.store.job_losses(job.id), title, job.total)
        picture = None if pixels is None else render.png_file(pixels)
    return view.progress_html(job), picture, view.log_tail_html(job)


def drift_panel(studio: Studio) -> tuple[str, str | None]:
    """(alarm banner HTML, drift plot PNG path)."""
    store = studio.store
    state = trigger_state(store)
    production = store.production_model()
    since = None if production is None else (production.promoted_at or production.created)
    pixels = plots.drift_picture(store.list_samples(order_by="created", limit=DRIFT_SAMPLES),
                                 state.settings.drift_alarm_window, since)
    return view.drift_alarm_html(state), None if pixels is None else render.png_file(pixels)


def signature(jobs: list[Job]) -> tuple:
    """What the timer compares to decide whether anything changed."""
    return tuple((j.id, j.status, j.step, j.log_lines[-1:], j.cancel_requested)
                 for j in jobs[:SIGNATURE_JOBS])


def job_update(studio: Studio, panels: JobPanels, jobs: list[Job] | None = None) -> dict:
    """The job-driven panels (after a launch, a cancel, a changed tick); Fine-tune now and
    Cancel are enabled as no job / a job is active."""
    store = studio.store
    jobs = view.training_jobs(store, HISTORY_LIMIT) if jobs is None else jobs
    progress, picture, log = job_panels(studio, jobs)
    active = any(j.active for j in jobs)
    return {panels.seen: signature(jobs),
            panels.triggers: view.trigger_html(store.counts(), trigger_state(store)),
            panels.progress: progress, panels.loss: gr.Image(value=picture,
                                                             visible=picture is not None),
            panels.log: log,
            panels.verdict: view.verdict_html(next((j for j in jobs if not j.active), None)),
            panels.history: view.history_rows(jobs), panels.counters: studio.counters(),
            panels.launch_btn: gr.Button(interactive=not active),
            panels.cancel_btn: gr.Button(interactive=active)}


def refresh(studio: Studio, ui: FinetuneUI) -> dict:
    """Every panel of the tab (on tab select and Refresh)."""
    store, s = studio.store, ui.settings
    settings = trigger_state(store).settings
    alarm, picture = drift_panel(studio)
    return {**job_update(studio, ui.jobs),
            s.config: view.config_html(finetune_config(store), store.counts()), s.alarm: alarm,
            s.drift_img: gr.Image(value=picture, visible=picture is not None),
            s.auto: settings.auto_trigger, s.threshold: settings.threshold,
            s.drift_pairs: settings.min_pairs_for_drift, s.cooldown: settings.cooldown_hours}


def build(studio: Studio, counters: gr.HTML) -> FinetuneUI:
    """Lay out the Fine-tune tab and wire its own events (buttons, settings, the poll timer)."""
    ui = layout(counters)
    _wire(studio, ui)
    return ui


class Housekeeper:
    """Per tick: respawn a missing worker, run the automatic trigger every AUTO_CHECK_S."""

    def __init__(self, studio: Studio) -> None:
        self.studio = studio
        self.auto_check = time.monotonic()
        self.respawned: dict[int, int] = {}
        self.lock = threading.Lock()  # one auto-check / respawn at a time across sessions

    def __call__(self, jobs: list[Job]) -> bool:
        """True when the automatic trigger queued a job."""
        store, now = self.studio.store, time.monotonic()
        with self.lock:
            active = next((j for j in jobs if j.active), None)
            if active is not None and active.status == "queued" and \
                    time.time() - active.created > RESPAWN_AFTER_S and \
                    self.respawned.get(active.id, 0) < 2 and \
                    worker_pid(store.workspace) is None:
                self.respawned[active.id] = self.respawned.get(active.id, 0) + 1
                spawn_worker(store.workspace)
            if active is None and now - self.auto_check >= AUTO_CHECK_S:
                self.auto_check = now
                try:
                    return check_triggers(store, spawn=True).fired
                except StoreError:
                    return False  # e.g. a busy database: the next check retries
        return False


def _wire(studio: Studio, ui: FinetuneUI) -> None:
    """The buttons, the settings form and the poll timer."""
    jobs, s = ui.jobs, ui.settings
    housekeeping = Housekeeper(studio)

    def tick(last):
        # Only the newest jobs decide whether anything changed (one job trains at a time).
        recent = view.training_jobs(studio.store, 10)
        if housekeeping(recent):
            recent = view.training_jobs(studio.store, 10)
        active = next((j for j in recent if j.active), None)
        if signature(recent) != tuple(last or ()):
            return job_update(studio, jobs)
        if active is not None:  # elapsed time and "waiting for" move on between steps
            return {jobs.progress: view.progress_html(active)}
        return gr.skip()  # every output

    def on_launch():
        return {ui.message: launch(studio), **job_update(studio, jobs)}

    def on_cancel():
        return {ui.message: cancel(studio), **job_update(studio, jobs)}

    def on_save(auto, threshold, drift_pairs, cooldown):
        note = save_settings(studio, auto, threshold, drift_pairs, cooldown)
        counts, state = studio.store.counts(), trigger_state(studio.store)
        return {s.note: note, jobs.triggers: view.trigger_html(counts, state),
                s.alarm: view.drift_alarm_html(state)}

    jobs.launch_btn.click(on_launch, None, [ui.message, *jobs.outputs])
    jobs.cancel_btn.click(on_cancel, None, [ui.message, *jobs.outputs])
    ui.refresh_btn.click(lambda: refresh(studio, ui), None, ui.refresh_outputs)
    s.save_btn.click(on_save, s.form, [s.note, jobs.triggers, s.alarm])
    gr.Timer(POLL_S).tick(tick, jobs.seen, jobs.outputs, show_progress="hidden",
                          trigger_mode="once")
