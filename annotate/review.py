"""Review tab: the queue, the selected sample (SEM | prediction | overlay), accept/skip, upload.

An upload stores and drift-scores every file at once (a bad file gets its own message) and
predicts them in one background ``batch_predict`` job (``loop.batch.ingest_files``); a single
image is predicted at once, since it is shown right away. The queue stays usable meanwhile:
viewing a sample predicts it if the job has not reached it yet.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from annotate import format as fmt
from annotate import overlay, render
from annotate.studio import QUEUE_ORDERS, QueueFilter, Studio, after_removal, step_in_queue
from loop.batch import IngestBatch, ingest_files
from loop.uncertainty import uncertainty_map
from store import StoreError

QUEUE_HEADERS = ["id", "name", "drift", "unc. %", "state"]
ZOOM_CHOICES = ["off", "2×", "4×", "8×"]
IMAGE_HEIGHT = 360


@dataclass
class ReviewUI:
    """The Review tab's components that other tabs and app.py wire to."""

    filters: list[gr.components.Component]
    table: gr.Dataframe
    queue_note: gr.Markdown
    refresh_btn: gr.Button
    view_outputs: list[gr.components.Component]
    zoom_center: gr.State
    prev_btn: gr.Button
    next_btn: gr.Button
    accept_btn: gr.Button
    correct_btn: gr.Button
    skip_btn: gr.Button
    status: gr.Markdown
    tool_filter: gr.Dropdown
    design: overlay.OverlayUI | None = None  # the Design overlay section


def _row(sample) -> list:
    drift = "—" if sample.drift_score is None else (
        f"{sample.drift_score:.2f}{' ⚑' if sample.drift_flagged else ''}")
    uncertain = "—" if sample.uncertainty is None else f"{100 * sample.uncertainty:.1f}"
    return [sample.id, sample.name or "", drift, uncertain,
            "done" if sample.corrected else "open"]


def queue_update(studio: Studio, *filters) -> tuple[list[list], list[int], str]:
    """Rows, ids and a note for the queue table under the chosen filters."""
    samples, total = studio.queue(QueueFilter(*filters))
    note = (f"{len(samples)} of {total} samples shown" if total > len(samples)
            else f"{total} sample{'s' if total != 1 else ''} in the queue")
    for job, waiting in studio.prediction_backlog():
        note += (f" · {waiting} still waiting for prediction (batch job {job.id}, "
                 f"{job.status}; viewing one predicts it now)")
    return [_row(s) for s in samples], [s.id for s in samples], note


def show_sample(studio: Studio, sample_id: int | None, queue_ids: list[int],
                show_contour: bool, opacity: float, zoom_factor: str,
                zoom_center: tuple[int, int] | None, show_uncertainty: bool = False) -> list:
    """Outputs of ``ReviewUI.view_outputs`` (zoom centre first) for one sample, or placeholders."""
    if sample_id is None:
        return [None, None, "### The queue is empty\nUpload SEM images below, or relax the "
                "filters.", "", "", None, None, None, gr.Image(value=None, visible=False), ""]
    view = studio.view(sample_id)
    position = (f"({queue_ids.index(sample_id) + 1} of {len(queue_ids)} in the queue)"
                if sample_id in queue_ids else "(not in the filtered queue)")
    models = {m.version: m for m in studio.models()}
    model = models.get(view.prediction.model_version) if view.prediction else None
    overlay = render.overlay(view.sem_image, view.mask, opacity, show_contour)
    pixel_map = (uncertainty_map(studio.store, view.prediction.confidence_summary)
                 if show_uncertainty and view.prediction else None)
    if pixel_map is not None and pixel_map.shape == overlay.shape[:2]:
        overlay = render.uncertainty_overlay(overlay, pixel_map)
    grow = render.display_factor(overlay.shape, IMAGE_HEIGHT)  # small images shown bigger
    factor = 1 if zoom_factor == "off" else int(zoom_factor.rstrip("×"))
    zoomed = gr.Image(value=render.png_file(render.zoom(overlay, zoom_center, factor))
                      if zoom_center and factor > 1 else None,
                      visible=bool(zoom_center) and factor > 1)
    metrics = studio.truth_metrics(view)
    caption = f"Prediction vs {view.truth_label}" if view.truth_label else "Prediction vs truth"
    return [zoom_center, sample_id, fmt.sample_header(view.sample, position),
            fmt.drift_badge(view.sample),
            fmt.prediction_note(view.prediction, model),
            render.png_file(render.enlarge(view.sem_image, grow)),
            None if view.mask is None else
            render.png_file(render.enlarge(render.layout_image(view.mask), grow)),
            render.png_file(render.enlarge(overlay, grow)), zoomed,
            fmt.metrics_html(metrics, caption)]


def upload_report(batch: IngestBatch) -> list[str]:
    """Markdown lines for an upload: one per file, then what happens to the predictions."""
    lines = []
    for outcome in batch.files:
        if outcome.result is None:
            lines.append(f"✗ **{outcome.name}**: {outcome.error}")
            continue
        result, s = outcome.result, outcome.result.sample
        drift = ("not scored" if s.drift_scores is None else
                 "**flagged**" if s.drift_flagged else "in range")
        if result.prediction is not None:
            predicted = f"predicted in {result.prediction.seconds:.2f} s"
        elif outcome.predict_error:
            predicted = f"prediction failed ({outcome.predict_error}); it is retried on view"
        elif batch.model_version is None:
            predicted = "not predicted (no model)"
        elif batch.job is not None and s.id in batch.job.params["sample_ids"]:
            predicted = "prediction queued"
        else:
            predicted = f"already predicted by v{batch.model_version}"
        again = " (already in the workspace)" if result.already_stored else ""
        origin = "from the file" if result.nm_per_px_from == "file" else "as entered"
        lines.append(f"✓ **{outcome.name}** → sample {s.id}{again}: {s.width}×{s.height} px at "
                     f"{s.nm_per_px:g} nm/px ({origin}), drift {drift}, {predicted}")
    if batch.job is not None:
        behind = "".join(f", after {j.kind} job {j.id}" for j in batch.waiting_behind)
        lines.append(f"Stored {len(batch.stored)} images, predicting them in the background "
                     f"(job {batch.job.id}{behind}). The queue is usable meanwhile.")
    return lines


def build(studio: Studio, sample: gr.State, queue: gr.State, counters: gr.HTML) -> ReviewUI:
    """Lay out the Review tab and wire its own events."""
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=420):
            gr.Markdown("#### Queue")
            order = gr.Radio(list(QUEUE_ORDERS), value="drift score", label="Sort by")
            with gr.Row():
                uncorrected = gr.Checkbox(value=True, label="Uncorrected only")
                flagged = gr.Checkbox(value=False, label="Drift-flagged only")
            with gr.Row():
                source = gr.Dropdown(studio.sources(), value="all", label="Source")
                tool = gr.Dropdown(studio.tools(), value="all", label="Tool")
            refresh_btn = gr.Button("Refresh queue", size="sm")
            table = gr.Dataframe(headers=QUEUE_HEADERS, interactive=False, max_height=420,
                                 elem_id="queue-table", wrap=False, column_widths=[
                                     "12%", "36%", "20%", "16%", "16%"])
            queue_note = gr.Markdown("", elem_id="queue-note")
            with gr.Accordion("Upload SEM images", open=False, elem_id="upload-box"):
                files = gr.File(file_count="multiple", file_types=[".png", ".tif", ".tiff"],
                                label="PNG or TIFF, one or many", elem_id="upload-files")
                nm_in = gr.Textbox(label="Pixel size (nm/px), used when a file has none",
                                   placeholder="e.g. 2.5 (TIFF pixel-size tags win)",
                                   max_lines=1, elem_id="upload-nm")
                tool_in = gr.Textbox(label="Tool / recipe name (optional)", max_lines=1)
                upload_btn = gr.Button("Add to queue", variant="primary", elem_id="upload-btn")
                upload_status = gr.Markdown(elem_id="upload-status")
        with gr.Column(scale=3):
            header = gr.Markdown(elem_id="review-header")
            badge = gr.HTML(elem_id="drift-badge")
            note = gr.Markdown(elem_id="prediction-note")
            with gr.Row():
                sem_img = gr.Image(label="SEM input", format="png", interactive=False,
                                   elem_id="sem-image", buttons=["fullscreen", "download"],
                                   height=IMAGE_HEIGHT)
                pred_img = gr.Image(label="Predicted layout", format="png", interactive=False,
                                    elem_id="pred-image", buttons=["fullscreen", "download"],
                                    height=IMAGE_HEIGHT)
                overlay_img = gr.Image(label="Overlay (click to zoom)", format="png",
                                       interactive=False, elem_id="overlay-image",
                                       buttons=["fullscreen"], height=IMAGE_HEIGHT)
            with gr.Row():
                show_contour = gr.Checkbox(value=True, label="Show contour")
                opacity = gr.Slider(0, 1, value=0.3, step=0.05, label="Fill opacity")
                zoom_factor = gr.Radio(ZOOM_CHOICES, value="4×", label="Zoom (click the overlay)")
                show_unc = gr.Checkbox(value=False, label="Unsure pixels (magenta)",
                                       elem_id="show-uncertainty")
            with gr.Row():
                prev_btn = gr.Button("◀ Previous [K]", elem_id="prev-btn")
                accept_btn = gr.Button("✓ Accept [A]", variant="primary", elem_id="accept-btn")
                correct_btn = gr.Button("✎ Correct [C]", elem_id="correct-btn")
                skip_btn = gr.Button("Skip [S]", elem_id="skip-btn")
                next_btn = gr.Button("Next ▶ [J]", elem_id="next-btn")
            status = gr.Markdown(elem_id="review-status")
            metrics = gr.HTML(elem_id="truth-metrics")
            zoom_img = gr.Image(label="Zoom around the clicked point (nearest neighbour)",
                                format="png", interactive=False, elem_id="zoom-image",
                                visible=False, height=420, buttons=["fullscreen"],
                                elem_classes="sg-pixelated")
            design = overlay.build(studio, sample)
    zoom_center = gr.State(None)
    filters = [order, uncorrected, source, tool, flagged]
    view_outputs = [zoom_center, sample, header, badge, note, sem_img, pred_img, overlay_img,
                    zoom_img, metrics]
    look = [show_contour, opacity, zoom_factor, zoom_center, show_unc]

    def refresh(current, *chosen):
        rows, ids, text = queue_update(studio, *chosen)
        return rows, ids, text

    def goto(step: int):
        def handler(current, ids, *style):
            target = step_in_queue(ids, current, step) if step else current
            return show_sample(studio, target, ids, *style[:3], None, style[4])
        return handler

    def select_row(ids, show, alpha, factor, center, unc, evt: gr.SelectData):
        row = evt.index[0] if isinstance(evt.index, list | tuple) else evt.index
        target = ids[row] if 0 <= row < len(ids) else None
        return show_sample(studio, target, ids, show, alpha, factor, None, unc)

    def restyle(current, ids, *style):
        return show_sample(studio, current, ids, *style)

    def zoom_at(current, ids, show, alpha, factor, unc, evt: gr.SelectData):
        sample = studio.store.get_sample(current)
        grow = render.display_factor((sample.height, sample.width), IMAGE_HEIGHT)
        center = (int(evt.index[0]) // grow, int(evt.index[1]) // grow)
        return show_sample(studio, current, ids, show, alpha, factor, center, unc)

    def finish(current, ids, *chosen_and_style, accept: bool):
        chosen, style = chosen_and_style[:5], chosen_and_style[5:8]
        unc = chosen_and_style[8]
        message = ""
        if current is not None and accept:
            view = studio.view(current)
            if view.prediction is None:
                gr.Warning("There is no prediction to accept: install a model first.")
                message = "Nothing accepted: no prediction."
            else:
                try:
                    pair = studio.store.save_correction(current, view.mask, studio.author,
                                                        view.prediction.id, kind="accepted")
                    message = (f"Accepted sample {current}: stored as a confirmed pair "
                               f"(v{pair.version}, {pair.split} split).")
                except StoreError as exc:
                    gr.Warning(str(exc))
                    message = f"Not saved: {exc}"
                else:
                    fired = studio.after_pair_saved()
                    if fired:
                        gr.Info(fired)
                        message += f" {fired}"
        elif current is not None:
            studio.store.log_event("sample_skipped", f"{studio.author} skipped sample {current}",
                                   {"sample_id": current})
            message = f"Skipped sample {current}."
        target = after_removal(ids, current)
        rows, new_ids, text = queue_update(studio, *chosen)
        if target not in new_ids and new_ids:
            target = step_in_queue(new_ids, target, 0)
        return [rows, new_ids, text, message, studio.counters(),
                *show_sample(studio, target, new_ids, *style, None, unc)]

    def upload(paths, nm_text, tool_name, *chosen_and_style):
        chosen, style = chosen_and_style[:5], chosen_and_style[5:8]
        unc = chosen_and_style[8]
        if not paths:
            return ["Choose one or more PNG/TIFF files first.", *[gr.skip()] * 15]
        try:
            batch = ingest_files(studio.store, paths, (nm_text or "").strip() or None, "upload",
                                 (tool_name or "").strip() or None, cache=studio.cache)
        except (StoreError, OSError) as exc:  # the job could not be queued or no worker started
            gr.Warning(f"Upload incomplete: {exc}")
            return [f"Upload incomplete: {exc}", *[gr.skip()] * 15]
        for outcome in batch.failed:
            gr.Warning(f"{outcome.name}: not added. {outcome.error}")
        stored = batch.stored
        first = stored[0].sample.id if stored else None
        rows, ids, text = queue_update(studio, *chosen)
        shown = show_sample(studio, first, ids, *style, None, unc) if first else [gr.skip()] * 10
        return ["\n\n".join(upload_report(batch)), rows, ids, text, studio.counters(),
                gr.Dropdown(choices=studio.tools()), *shown]

    for control in filters:
        control.change(refresh, [sample, *filters], [table, queue, queue_note])
    refresh_btn.click(refresh, [sample, *filters], [table, queue, queue_note])
    table.select(select_row, [queue, *look], view_outputs)
    prev_btn.click(goto(-1), [sample, queue, *look], view_outputs)
    next_btn.click(goto(1), [sample, queue, *look], view_outputs)
    for control in (show_contour, opacity, zoom_factor, show_unc):
        control.change(restyle, [sample, queue, *look], view_outputs, show_progress="hidden")
    overlay_img.select(zoom_at, [sample, queue, show_contour, opacity, zoom_factor, show_unc],
                       view_outputs, show_progress="hidden")
    actions = [sample, queue, *filters, show_contour, opacity, zoom_factor, show_unc]
    after = [table, queue, queue_note, status, counters, *view_outputs]
    accept_btn.click(lambda *a: finish(*a, accept=True), actions, after)
    skip_btn.click(lambda *a: finish(*a, accept=False), actions, after)
    upload_btn.click(upload, [files, nm_in, tool_in, *filters, show_contour, opacity, zoom_factor,
                              show_unc],
                     [upload_status, table, queue, queue_note, counters, tool, *view_outputs])
    return ReviewUI(filters, table, queue_note, refresh_btn, view_outputs, zoom_center, prev_btn,
                    next_btn, accept_btn, correct_btn, skip_btn, status, tool, design)
