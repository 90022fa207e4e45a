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
from store import ModelVersion, StoreError

REGISTRY_HEADERS = ["version", "parent", "status", "created", "pairs used", "held-out metrics",
                    "weights sha256", "folder"]
AUDIT_HEADERS = ["when", "action", "version", "previous", "reason", "by"]
METRIC_KEYS = (("iou", "IoU", "{:.3f}"), ("epe_mean_nm", "EPE", "{:.2f} nm"),
               ("ssim", "SSIM", "{:.3f}"), ("cd_abs_error_nm", "|CD|", "{:.2f} nm"))
DRAW_SIZE = 256


@dataclass
class ModelsUI:
    """The Models tab's components that app.py refreshes."""

    registry: gr.Dataframe
    audit: gr.Dataframe
    version: gr.Dropdown
    refresh_btn: gr.Button


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
    items = (model.card.get("data_recipe") or {}).get("items")
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


def build(studio: Studio, counters: gr.HTML) -> ModelsUI:
    """Lay out the Models tab and wire its own events."""
    production = studio.store.production_model()
    default_nm = float(production.card.get("nm_per_px", 4.0)) if production else 4.0
    registry = gr.Dataframe(headers=REGISTRY_HEADERS, interactive=False, elem_id="registry",
                            label="Model registry", wrap=True)
    refresh_btn = gr.Button("Refresh", size="sm")
    with gr.Row(equal_height=False):
        with gr.Column():
            version = gr.Dropdown(studio.model_choices(), label="Model version",
                                  elem_id="models-version")
            reason = gr.Textbox(label="Reason (recorded in the audit log)", max_lines=2,
                                elem_id="models-reason")
            with gr.Row():
                promote_btn = gr.Button("Promote to production…", elem_id="promote-btn")
                rollback_btn = gr.Button("Roll back to this version…", elem_id="rollback-btn")
                download_btn = gr.Button("Download weights + card (.zip)", elem_id="download-btn")
            with gr.Group(visible=False) as confirm_box:
                confirm_text = gr.Markdown()
                with gr.Row():
                    confirm_btn = gr.Button("Confirm", variant="stop", elem_id="confirm-btn")
                    cancel_btn = gr.Button("Cancel")
            status = gr.Markdown(elem_id="models-status")
            download = gr.File(label="Model package", interactive=False, visible=False)
            audit = gr.Dataframe(headers=AUDIT_HEADERS, interactive=False, label="Audit log",
                                 elem_id="audit")
        with gr.Column():
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
    pending = gr.State(None)

    def refresh():
        choices = studio.model_choices()
        return registry_rows(studio), audit_rows(studio), gr.Dropdown(choices=choices)

    def ask(action):
        def handler(choice, why):
            number = fmt.version_of(choice)
            if number is None:
                return None, gr.Group(visible=False), "", "Pick a model version first."
            if not (why or "").strip():
                return None, gr.Group(visible=False), "", "Give a reason: it goes in the audit log."
            production = studio.store.production_model()
            now = f"v{production.version}" if production else "none"
            verb = "Promote" if action == "promote" else "Roll back to"
            text = (f"**{verb} v{number}?** Production is now {now}; it will be archived. "
                    f"Reason: *{why.strip()}*")
            return (action, number, why.strip()), gr.Group(visible=True), text, ""
        return handler

    def confirm(todo):
        if not todo:
            return [None, gr.Group(visible=False), "Nothing to confirm.", *refresh(), gr.skip()]
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
        return [None, gr.Group(visible=False), message, *refresh(), studio.counters()]

    def package(choice):
        number = fmt.version_of(choice)
        if number is None:
            return None, "Pick a model version first."
        model = studio.store.get_model(number)
        return (gr.File(value=str(package_model(model)), visible=True),
                f"Packed v{number} (weights, config, card).")

    def preview(value, nm, choice):
        mask = canvas_mask(value)
        if mask is None:
            return None, "Draw or upload a layout first."
        try:
            sem = predict_sem(studio.store, mask, nm or None, fmt.version_of(choice), studio.cache)
        except (SemganError, StoreError, LookupError) as exc:
            gr.Warning(str(exc))
            return None, f"No preview: {exc}"
        return render.png_file(sem), ""

    def procedural(nm):
        seed = int(np.random.default_rng().integers(2**31))
        return layout_canvas(random_clip(DRAW_SIZE, float(nm or 4.0), seed).mask)

    refresh_btn.click(refresh, None, [registry, audit, version])
    promote_btn.click(ask("promote"), [version, reason], [pending, confirm_box, confirm_text,
                                                          status])
    rollback_btn.click(ask("rollback"), [version, reason], [pending, confirm_box, confirm_text,
                                                            status])
    cancel_btn.click(lambda: (None, gr.Group(visible=False), "Cancelled."), None,
                     [pending, confirm_box, status])
    confirm_btn.click(confirm, pending, [pending, confirm_box, status, registry, audit, version,
                                         counters])
    download_btn.click(package, version, [download, status])
    sem_btn.click(preview, [canvas, nm_in, version], [sem_out, status])
    random_btn.click(procedural, nm_in, canvas)
    return ModelsUI(registry, audit, version, refresh_btn)
