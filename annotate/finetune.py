"""Fine-tune tab: trigger counters, the recipe, Fine-tune now / Cancel, live progress and losses,
the gate's verdict, the job history, the automatic trigger's settings and the drift monitor.

The buttons call what ``python -m loop finetune / cancel / settings`` call. A 2 s timer follows
the jobs; when nothing changed and no job is active a tick costs one query and updates nothing.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import gradio as gr

from annotate import finetune_plots as plots
from annotate import finetune_view as view
from annotate import render
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


@dataclass
class FinetuneUI:
    """The Fine-tune tab's components that app.py refreshes on tab select."""

    refresh_outputs: list[gr.components.Component]  # filled by refresh(studio)
    launch_btn: gr.Button
    cancel_btn: gr.Button


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


def save_settings(studio: Studio, auto_trigger: bool, threshold: float | None,
                  min_pairs_for_drift: float | None, cooldown_hours: float | None) -> str:
    """Validate and save the automatic trigger's switch and numbers (``loop settings``)."""
    try:
        saved = set_trigger_settings(studio.store, **view.parse_trigger_settings(
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


def job_update(studio: Studio, jobs: list[Job] | None = None) -> list:
    """The job-driven panels in ``job_outputs`` order (after a launch, a cancel, a changed tick).

    Ends with the Fine-tune now and Cancel buttons, enabled as a job is (not) active.
    """
    store = studio.store
    jobs = view.training_jobs(store, HISTORY_LIMIT) if jobs is None else jobs
    progress, picture, log = job_panels(studio, jobs)
    active = any(j.active for j in jobs)
    return [signature(jobs), view.trigger_html(store.counts(), trigger_state(store)), progress,
            gr.Image(value=picture, visible=picture is not None), log,
            view.verdict_html(next((j for j in jobs if not j.active), None)),
            view.history_rows(jobs), studio.counters(), gr.Button(interactive=not active),
            gr.Button(interactive=active)]


def refresh(studio: Studio) -> list:
    """Every panel of the tab, in FinetuneUI.refresh_outputs order (on tab select)."""
    store = studio.store
    settings = trigger_state(store).settings
    alarm, picture = drift_panel(studio)
    return [*job_update(studio), view.config_html(finetune_config(store), store.counts()),
            alarm, gr.Image(value=picture, visible=picture is not None), settings.auto_trigger,
            settings.threshold,
            settings.min_pairs_for_drift, settings.cooldown_hours]


def build(studio: Studio, counters: gr.HTML) -> FinetuneUI:
    """Lay out the Fine-tune tab and wire its own events (buttons, settings, the poll timer)."""
    seen = gr.State(())
    trigger_box = gr.HTML(elem_id="finetune-triggers")
    with gr.Row(equal_height=False):
        with gr.Column(scale=2):
            gr.Markdown("#### Launch\nWhat **Fine-tune now** runs (the automatic trigger "
                        "runs the same): every tool with corrected pairs gets its own "
                        "generator, trained from production's on that tool's pairs and "
                        "stopped at its best on the tool's held-out pairs (with a grey-level "
                        "map when its levels differ from the training tools'); every other "
                        "tool keeps production's bit for bit. The gate then judges each "
                        "tool on its own held-out pairs and keeps only the tools that got "
                        "better.")
            with gr.Row():
                launch_btn = gr.Button("Fine-tune now", variant="primary",
                                       elem_id="finetune-now-btn")
                cancel_btn = gr.Button("Cancel job", variant="stop", interactive=False,
                                       elem_id="finetune-cancel-btn")
                refresh_btn = gr.Button("Refresh", size="sm")
            message = gr.Markdown(elem_id="finetune-message")
            with gr.Accordion("Fine-tune config (what the next run uses)", open=True):
                config_box = gr.HTML(elem_id="finetune-config")
        with gr.Column(scale=3):
            gr.Markdown("#### Progress")
            progress_box = gr.HTML(elem_id="finetune-progress")
            loss_img = gr.Image(label="Loss curves", format="png", interactive=False,
                                elem_id="finetune-loss", buttons=["fullscreen", "download"],
                                height=300)
            with gr.Accordion("Job log (latest lines)", open=False):
                log_box = gr.HTML(elem_id="finetune-log")
    gr.Markdown("#### Promotion gate: the latest verdict")
    verdict_box = gr.HTML(elem_id="finetune-verdict")
    history = gr.Dataframe(headers=view.HISTORY_HEADERS, interactive=False, wrap=True,
                           label="Fine-tune history (newest first)", elem_id="finetune-history",
                           column_widths=["5%", "7%", "8%", "11%", "8%", "6%", "8%", "8%",
                                          "39%"])
    with gr.Row(equal_height=False):
        with gr.Column(scale=2):
            gr.Markdown("#### Automatic trigger\nQueues a fine-tune when the new corrected "
                        "pairs since production reach the threshold (once per crossing), or "
                        "when the drift alarm is raised and enough new pairs exist; never "
                        "within the cooldown of the last automatic run. Checked every minute "
                        "while the app is open.")
            auto_box = gr.Checkbox(label="Automatic trigger on", elem_id="finetune-auto")
            threshold_in = gr.Number(label="Threshold: new corrected pairs since production",
                                     precision=0, elem_id="finetune-threshold")
            drift_pairs_in = gr.Number(label="Minimum new pairs for a drift-triggered run",
                                       precision=0, elem_id="finetune-drift-pairs")
            cooldown_in = gr.Number(label="Cooldown between automatic runs (hours)",
                                    elem_id="finetune-cooldown")
            save_btn = gr.Button("Save trigger settings", elem_id="finetune-save-settings")
            settings_note = gr.Markdown(elem_id="finetune-settings-note")
        with gr.Column(scale=3):
            gr.Markdown("#### Drift monitor")
            alarm_box = gr.HTML(elem_id="finetune-drift-alarm")
            drift_img = gr.Image(label="Drift score of recent samples", format="png",
                                 interactive=False, elem_id="finetune-drift",
                                 buttons=["fullscreen", "download"], height=300)
    job_outputs = [seen, trigger_box, progress_box, loss_img, log_box, verdict_box, history,
                   counters, launch_btn, cancel_btn]
    outputs = [*job_outputs, config_box, alarm_box, drift_img, auto_box, threshold_in,
               drift_pairs_in, cooldown_in]
    clock = {"auto_check": time.monotonic(), "respawned": {}}
    lock = threading.Lock()  # one auto-check / respawn at a time across browser sessions

    def housekeeping(jobs: list[Job]) -> bool:
        """Respawn a missing worker, run the automatic trigger; True when a job was queued."""
        store, now = studio.store, time.monotonic()
        with lock:
            active = next((j for j in jobs if j.active), None)
            if active is not None and active.status == "queued" and \
                    time.time() - active.created > RESPAWN_AFTER_S and \
                    clock["respawned"].get(active.id, 0) < 2 and \
                    worker_pid(store.workspace) is None:
                clock["respawned"][active.id] = clock["respawned"].get(active.id, 0) + 1
                spawn_worker(store.workspace)
            if active is None and now - clock["auto_check"] >= AUTO_CHECK_S:
                clock["auto_check"] = now
                try:
                    return check_triggers(store, spawn=True).fired
                except StoreError:
                    return False  # e.g. a busy database: the next check retries
        return False

    def tick(last):
        # Only the newest jobs decide whether anything changed (one job trains at a time).
        recent = view.training_jobs(studio.store, 10)
        if housekeeping(recent):
            recent = view.training_jobs(studio.store, 10)
        active = next((j for j in recent if j.active), None)
        if signature(recent) == tuple(last or ()):
            skip = [gr.skip()] * len(job_outputs)
            if active is not None:  # elapsed time and "waiting for" move on between steps
                skip[2] = view.progress_html(active)
            return skip
        return job_update(studio)

    def on_launch():
        return [launch(studio), *job_update(studio)]

    def on_cancel():
        return [cancel(studio), *job_update(studio)]

    def on_save(auto, threshold, drift_pairs, cooldown):
        note = save_settings(studio, auto, threshold, drift_pairs, cooldown)
        counts, state = studio.store.counts(), trigger_state(studio.store)
        return note, view.trigger_html(counts, state), view.drift_alarm_html(state)

    launch_btn.click(on_launch, None, [message, *job_outputs])
    cancel_btn.click(on_cancel, None, [message, *job_outputs])
    refresh_btn.click(lambda: refresh(studio), None, outputs)
    save_btn.click(on_save, [auto_box, threshold_in, drift_pairs_in, cooldown_in],
                   [settings_note, trigger_box, alarm_box])
    gr.Timer(POLL_S).tick(tick, seen, job_outputs, show_progress="hidden", trigger_mode="once")
    return FinetuneUI(outputs, launch_btn, cancel_btn)
