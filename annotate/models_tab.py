"""Models tab: the registry, promote / roll back with a reason, downloads, Layout → SEM."""

from __future__ import annotations

import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np

from annotate import editing, render
from annotate import format as fmt
from annotate.studio import Studio
from loop.jobs import JobParamsError, TrainingSummary
from loop.predictions import predict_sem
from semgan.errors import SemganError
from semgan.experts import inference_files
from semgan.layouts import random_clip
from semgan.model_card import ModelCard
from store import ModelVersion, StoreError

REGISTRY_HEADERS = ["version", "parent", "status", "created", "pairs used", "held-out metrics",
                    "weights sha256", "folder"]
AUDIT_HEADERS = ["when", "action", "version", "previous", "reason", "by"]
METRIC_KEYS = (("iou", "IoU", "{:.3f}"), ("epe_mean_nm", "EPE", "{:.2f} nm"),
               ("ssim", "SSIM", "{:.3f}"), ("cd_abs_error_nm", "|CD|", "{:.2f} nm"))
DRAW_SIZE = 256


@dataclass
class ModelsUI:
    """The registry side of the Models tab (app.py refreshes it) and its confirm step."""

    registry: gr.Dataframe
    refresh_btn: gr.Button
    version: gr.Dropdown
    reason: gr.Textbox
    promote_btn: gr.Button
    rollback_btn: gr.Button
    download_btn: gr.Button
    confirm_box: gr.Group
    confirm_text: gr.Markdown
    confirm_btn: gr.Button
    cancel_btn: gr.Button
    status: gr.Markdown
    download: gr.File
    audit: gr.Dataframe
    pending: gr.State | None = None  # (action, version, reason) awaiting Confirm

    @property
    def tables(self) -> list[gr.components.Component]:
        """What ``tables_update`` fills."""
        return [self.registry, self.audit, self.version]


@dataclass
class PreviewPanel:
    """Layout → SEM preview: a drawn or uploaded layout, its pixel size, the predicted SEM."""

    canvas: gr.ImageEditor
    nm_in: gr.Number
    random_btn: gr.Button
    sem_btn: gr.Button
    sem_out: gr.Image


def metrics_text(metrics: dict) -> str:
    """Compact held-out figures: flat keys, or one line per group ({"old": {...}, …})."""
    def line(values: dict) -> str:
        return " · ".join(f"{label} {fmt.number(values[key], fmtr)}" for key, label, fmtr in METRIC_KEYS
                          if isinstance(values.get(key), int | float))
    parts = [line(metrics)] + [f"{group}: {line(values)}" for group, values in metrics.items()
                               if isinstance(values, dict) and line(values)]
    return " | ".join(p for p in parts if p) or "—"


def pairs_used(model: ModelVersion) -> str:
    """How many pairs the model learned from: a fine-tune's corrected (+ anchor) pairs, else the
    items of the data its card names."""
    if model.training_summary.get("pairs_used") is not None:  # a fine-tune (loop.jobs.TrainingSummary)
        try:
            used = TrainingSummary.from_dict(model.training_summary).pairs_used
        except (JobParamsError, TypeError):
            return "—"  # a summary of another shape: say nothing rather than guess
        anchor = used.get("anchor_pairs")
        return f"{used.get('corrected_pairs', '?')} corrected" + \
            (f" + {anchor} anchor" if isinstance(anchor, int) else "")
    items = (ModelCard.from_dict(model.card).data_recipe or {}).get("items")
    return f"{items} training pairs" if isinstance(items, int) else "—"


def registry_rows(studio: Studio) -> list[list]:
    """One table row per registered version, newest first."""
    return [[f"v{m.version}", f"v{m.parent_version}" if m.parent_version else "—", m.status,
             fmt.when(m.created), pairs_used(m), metrics_text(m.metrics),
             m.weights_sha256[:12] + "…", Path(m.path).name] for m in studio.models()]


def audit_rows(studio: Studio) -> list[list]:
    """Promotions, rollbacks and rejections, newest first."""
    return [[fmt.when(a.created), a.action, f"v{a.version}",
             f"v{a.previous_version}" if a.previous_version else "—", a.reason, a.actor]
            for a in studio.store.model_audit(limit=50)]


def package_model(model: ModelVersion) -> Path:
    """A zip of what the model needs to predict elsewhere (weights, config, card, tool
    calibration and experts) in a fresh temporary folder."""
    folder = Path(model.path)
    out = Path(tempfile.mkdtemp(prefix="semgan-model-")) / f"semgan-model-v{model.version}.zip"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in inference_files(folder):
            archive.write(folder / name, f"v{model.version}/{name}")
    return out


def layout_canvas(mask: np.ndarray | None = None) -> dict:
    """Editor value for drawing a layout: white pattern on black."""
    mask = np.zeros((DRAW_SIZE, DRAW_SIZE), bool) if mask is None else mask
    picture = np.repeat(np.where(mask, 255, 0).astype(np.uint8)[..., None], 3, axis=2)
    return {"background": render.png_file(picture), "layers": [], "composite": None}


def canvas_mask(value: dict | None) -> np.ndarray | None:
    """The drawn/uploaded layout: composite (else the untouched background) above mid-grey."""
    picture = None if not value else (value.get("composite") if value.get("composite")
                                      is not None else value.get("background"))
    if picture is None:
        return None
    composite = np.asarray(picture, np.float32)
    grey = composite[..., :3].mean(axis=2) if composite.ndim == 3 else composite
    return grey > 127


def tables_update(studio: Studio, ui: ModelsUI) -> dict:
    """The registry, the audit log and the version choices, as they are now."""
    return {ui.registry: registry_rows(studio), ui.audit: audit_rows(studio),
            ui.version: gr.Dropdown(choices=studio.model_choices())}


def _registry_column(studio: Studio, registry: gr.Dataframe, refresh_btn: gr.Button) -> ModelsUI:
    """Version, reason, promote / roll back / download, the confirm step, status, audit log."""
    parts = {"registry": registry, "refresh_btn": refresh_btn,
             "version": gr.Dropdown(studio.model_choices(), label="Model version",
                                    elem_id="models-version"),
             "reason": gr.Textbox(label="Reason (recorded in the audit log)", max_lines=2,
                                  elem_id="models-reason")}
    with gr.Row():
        parts["promote_btn"] = gr.Button("Promote to production…", elem_id="promote-btn")
        parts["rollback_btn"] = gr.Button("Roll back to this version…", elem_id="rollback-btn")
        parts["download_btn"] = gr.Button("Download weights + card (.zip)",
                                          elem_id="download-btn")
    with gr.Group(visible=False) as parts["confirm_box"]:
        parts["confirm_text"] = gr.Markdown()
        with gr.Row():
            parts["confirm_btn"] = gr.Button("Confirm", variant="stop", elem_id="confirm-btn")
            parts["cancel_btn"] = gr.Button("Cancel")
    parts["status"] = gr.Markdown(elem_id="models-status")
    parts["download"] = gr.File(label="Model package", interactive=False, visible=False)
    parts["audit"] = gr.Dataframe(headers=AUDIT_HEADERS, interactive=False, label="Audit log",
                                  elem_id="audit")
    return ModelsUI(**parts)


def _preview_column(default_nm: float) -> PreviewPanel:
    """The Layout → SEM preview."""
    gr.Markdown("#### Layout → SEM preview\nDraw a layout (white = pattern) or upload a "
                "0/255 layout PNG; the model's reverse generator predicts what the tool "
                "will image.")
    canvas = gr.ImageEditor(value=layout_canvas(), format="png", image_mode="RGB",
                            sources=("upload",), transforms=(), elem_id="layout-canvas",
                            canvas_size=editing.EDITOR_CANVAS,
                            layers=gr.LayerOptions(allow_additional_layers=False),
                            brush=gr.Brush(default_size=6, colors=["#ffffff", "#000000"],
                                           color_mode="fixed"), height=420)
    with gr.Row():
        nm_in = gr.Number(value=default_nm, label="Pixel size of the layout (nm/px)",
                          minimum=0.01)
        random_btn = gr.Button("Procedural layout", size="sm")
        sem_btn = gr.Button("Predict SEM", variant="primary", elem_id="predict-sem-btn")
    sem_out = gr.Image(label="Predicted SEM image", format="png", interactive=False,
                       elem_id="predicted-sem", buttons=["fullscreen", "download"])
    return PreviewPanel(canvas, nm_in, random_btn, sem_btn, sem_out)


def build(studio: Studio, counters: gr.HTML) -> ModelsUI:
    """Lay out the Models tab and wire its own events."""
    production = studio.store.production_model()
    default_nm = (ModelCard.from_dict(production.card).pixel_size(production.config)
                  if production else 4.0)
    registry = gr.Dataframe(headers=REGISTRY_HEADERS, interactive=False, elem_id="registry",
                            label="Model registry", wrap=True)
    refresh_btn = gr.Button("Refresh", size="sm")
    with gr.Row(equal_height=False):
        with gr.Column():
            ui = _registry_column(studio, registry, refresh_btn)
        with gr.Column():
            preview = _preview_column(default_nm)
    ui.pending = gr.State(None)
    _wire_registry(studio, ui, counters)
    _wire_preview(studio, ui, preview)
    return ui


def _ask(studio: Studio, ui: ModelsUI, action: str):
    """Promote / Roll back: check the choice and the reason, then show the confirm step."""
    def handler(choice, why):
        number = fmt.version_of(choice)
        hidden = {ui.pending: None, ui.confirm_box: gr.Group(visible=False), ui.confirm_text: ""}
        if number is None:
            return {**hidden, ui.status: "Pick a model version first."}
        if not (why or "").strip():
            return {**hidden, ui.status: "Give a reason: it goes in the audit log."}
        production = studio.store.production_model()
        now = f"v{production.version}" if production else "none"
        verb = "Promote" if action == "promote" else "Roll back to"
        text = (f"**{verb} v{number}?** Production is now {now}; it will be archived. "
                f"Reason: *{why.strip()}*")
        return {ui.pending: (action, number, why.strip()), ui.confirm_box: gr.Group(visible=True),
                ui.confirm_text: text, ui.status: ""}
    return handler


def _wire_registry(studio: Studio, ui: ModelsUI, counters: gr.HTML) -> None:
    """Refresh, promote / roll back with a confirm step, download."""
    def confirm(todo):
        done = {ui.pending: None, ui.confirm_box: gr.Group(visible=False)}
        if not todo:
            return {**done, ui.status: "Nothing to confirm.", **tables_update(studio, ui)}
        action, number, why = todo
        try:
            if action == "promote":
                studio.store.promote(number, why, studio.author)
            else:
                studio.store.rollback(number, why, studio.author)
            message = f"v{number} is now in production ({action}, by {studio.author})."
        except StoreError as exc:
            gr.Warning(str(exc))
            message = f"Not changed: {exc}"
        return {**done, ui.status: message, **tables_update(studio, ui), counters: studio.counters()}

    def package(choice):
        number = fmt.version_of(choice)
        if number is None:
            return {ui.download: None, ui.status: "Pick a model version first."}
        model = studio.store.get_model(number)
        return {ui.download: gr.File(value=str(package_model(model)), visible=True),
                ui.status: f"Packed v{number} (weights, config, card)."}

    def refresh():
        return tables_update(studio, ui)

    asked = [ui.pending, ui.confirm_box, ui.confirm_text, ui.status]
    ui.refresh_btn.click(refresh, None, ui.tables)
    ui.promote_btn.click(_ask(studio, ui, "promote"), [ui.version, ui.reason], asked)
    ui.rollback_btn.click(_ask(studio, ui, "rollback"), [ui.version, ui.reason], asked)
    ui.cancel_btn.click(lambda: {ui.pending: None, ui.confirm_box: gr.Group(visible=False),
                                 ui.status: "Cancelled."}, None,
                        [ui.pending, ui.confirm_box, ui.status])
    ui.confirm_btn.click(confirm, ui.pending, [ui.pending, ui.confirm_box, ui.status,
                                               *ui.tables, counters])
    ui.download_btn.click(package, ui.version, [ui.download, ui.status])


def _wire_preview(studio: Studio, ui: ModelsUI, panel: PreviewPanel) -> None:
    """Predict SEM from the drawn layout; a procedural layout into the canvas."""
    def preview(value, nm, choice):
        mask = canvas_mask(value)
        if mask is None:
            return {panel.sem_out: None, ui.status: "Draw or upload a layout first."}
        try:
            sem = predict_sem(studio.store, mask, nm or None, fmt.version_of(choice), studio.cache)
        except (SemganError, StoreError, LookupError) as exc:
            gr.Warning(str(exc))
            return {panel.sem_out: None, ui.status: f"No preview: {exc}"}
        return {panel.sem_out: render.png_file(sem), ui.status: ""}

    def procedural(nm):
        seed = int(np.random.default_rng().integers(2**31))
        return layout_canvas(random_clip(DRAW_SIZE, float(nm or 4.0), seed).mask)

    panel.sem_btn.click(preview, [panel.canvas, panel.nm_in, ui.version],
                        [panel.sem_out, ui.status])
    panel.random_btn.click(procedural, panel.nm_in, panel.canvas)
