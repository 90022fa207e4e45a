"""The Fine-tune tab's layout: its panels, grouped by what refills them."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from annotate import finetune_view as view


@dataclass
class JobPanels:
    """What follows the jobs: refilled after a launch or a cancel, and when a tick sees a change."""

    seen: gr.State  # the jobs' signature at the last update
    triggers: gr.HTML
    progress: gr.HTML
    loss: gr.Image
    log: gr.HTML
    verdict: gr.HTML
    history: gr.Dataframe
    counters: gr.HTML
    launch_btn: gr.Button
    cancel_btn: gr.Button

    @property
    def outputs(self) -> list[gr.components.Component]:
        return [self.seen, self.triggers, self.progress, self.loss, self.log, self.verdict,
                self.history, self.counters, self.launch_btn, self.cancel_btn]


@dataclass
class SettingsPanels:
    """The recipe, the automatic trigger's form and the drift monitor."""

    config: gr.HTML
    auto: gr.Checkbox
    threshold: gr.Number
    drift_pairs: gr.Number
    cooldown: gr.Number
    save_btn: gr.Button
    note: gr.Markdown
    alarm: gr.HTML
    drift_img: gr.Image

    @property
    def form(self) -> list[gr.components.Component]:
        return [self.auto, self.threshold, self.drift_pairs, self.cooldown]


@dataclass
class FinetuneUI:
    """The Fine-tune tab's components; app.py refreshes them on tab select."""

    jobs: JobPanels
    settings: SettingsPanels
    refresh_btn: gr.Button
    message: gr.Markdown

    @property
    def launch_btn(self) -> gr.Button:
        return self.jobs.launch_btn

    @property
    def cancel_btn(self) -> gr.Button:
        return self.jobs.cancel_btn

    @property
    def refresh_outputs(self) -> list[gr.components.Component]:
        """Every panel ``refresh`` fills."""
        s = self.settings
        return [*self.jobs.outputs, s.config, s.alarm, s.drift_img, *s.form]


def launch_and_progress() -> dict:
    """Launch (buttons, message, recipe) beside Progress (bar, losses, log), by name."""
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
                parts = {"launch_btn": gr.Button("Fine-tune now", variant="primary",
                                                 elem_id="finetune-now-btn"),
                         "cancel_btn": gr.Button("Cancel job", variant="stop",
                                                 interactive=False,
                                                 elem_id="finetune-cancel-btn"),
                         "refresh_btn": gr.Button("Refresh", size="sm")}
            parts["message"] = gr.Markdown(elem_id="finetune-message")
            with gr.Accordion("Fine-tune config (what the next run uses)", open=True):
                parts["config"] = gr.HTML(elem_id="finetune-config")
        with gr.Column(scale=3):
            gr.Markdown("#### Progress")
            parts["progress"] = gr.HTML(elem_id="finetune-progress")
            parts["loss"] = gr.Image(label="Loss curves", format="png", interactive=False,
                                     elem_id="finetune-loss",
                                     buttons=["fullscreen", "download"], height=300)
            with gr.Accordion("Job log (latest lines)", open=False):
                parts["log"] = gr.HTML(elem_id="finetune-log")
    return parts


def gate_and_history() -> dict:
    """The latest verdict and the job history, by name."""
    gr.Markdown("#### Promotion gate: the latest verdict")
    return {"verdict": gr.HTML(elem_id="finetune-verdict"),
            "history": gr.Dataframe(headers=view.HISTORY_HEADERS, interactive=False, wrap=True,
                                    label="Fine-tune history (newest first)",
                                    elem_id="finetune-history",
                                    column_widths=["5%", "7%", "8%", "11%", "8%", "6%", "8%",
                                                   "8%", "39%"])}


def trigger_and_drift() -> dict:
    """The automatic trigger's form beside the drift monitor (SettingsPanels fields)."""
    with gr.Row(equal_height=False):
        with gr.Column(scale=2):
            gr.Markdown("#### Automatic trigger\nQueues a fine-tune when the new corrected "
                        "pairs since production reach the threshold (once per crossing), or "
                        "when the drift alarm is raised and enough new pairs exist; never "
                        "within the cooldown of the last automatic run. Checked every minute "
                        "while the app is open.")
            parts = {
                "auto": gr.Checkbox(label="Automatic trigger on", elem_id="finetune-auto"),
                "threshold": gr.Number(label="Threshold: new corrected pairs since production",
                                       precision=0, elem_id="finetune-threshold"),
                "drift_pairs": gr.Number(label="Minimum new pairs for a drift-triggered run",
                                         precision=0, elem_id="finetune-drift-pairs"),
                "cooldown": gr.Number(label="Cooldown between automatic runs (hours)",
                                      elem_id="finetune-cooldown"),
                "save_btn": gr.Button("Save trigger settings",
                                      elem_id="finetune-save-settings"),
                "note": gr.Markdown(elem_id="finetune-settings-note")}
        with gr.Column(scale=3):
            gr.Markdown("#### Drift monitor")
            parts["alarm"] = gr.HTML(elem_id="finetune-drift-alarm")
            parts["drift_img"] = gr.Image(label="Drift score of recent samples", format="png",
                                          interactive=False, elem_id="finetune-drift",
                                          buttons=["fullscreen", "download"], height=300)
    return parts


def layout(counters: gr.HTML) -> FinetuneUI:
    """Lay out the tab, top to bottom (``counters``: the app's status strip)."""
    seen = gr.State(())
    triggers = gr.HTML(elem_id="finetune-triggers")
    top = launch_and_progress()
    gate = gate_and_history()
    settings = SettingsPanels(config=top.pop("config"), **trigger_and_drift())
    jobs = JobPanels(seen, triggers, top.pop("progress"), top.pop("loss"), top.pop("log"),
                     gate["verdict"], gate["history"], counters, top.pop("launch_btn"),
                     top.pop("cancel_btn"))
    return FinetuneUI(jobs, settings, **top)
