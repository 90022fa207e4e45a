"""Review tab: the queue, the selected sample (SEM | prediction | overlay), accept/skip, upload.

An upload stores and drift-scores every file, then predicts them in one background job; viewing
a sample the job has not reached yet predicts it at once, so the queue stays usable meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from annotate import overlay, render
from annotate.review_view import (
    IMAGE_HEIGHT,
    ReviewButtons,
    SampleViewer,
    build_sample_column,
    show_sample,
)
from annotate.saving import save_pair
from annotate.studio import QUEUE_ORDERS, QueueFilter, Studio, after_removal, step_in_queue
from loop.batch import IngestBatch, ingest_files
from store import StoreError

QUEUE_HEADERS = ["id", "name", "drift", "unc. %", "state"]


@dataclass
class QueuePanel:
    """The queue column: the filters (QueueFilter's fields, in its order), the table, a note."""

    filters: list[gr.components.Component]
    refresh_btn: gr.Button
    table: gr.Dataframe
    note: gr.Markdown
    ids: gr.State  # the app's queue: sample ids in the table's order

    @property
    def tool(self) -> gr.Dropdown:
        return self.filters[3]

    @property
    def outputs(self) -> list[gr.components.Component]:
        return [self.table, self.ids, self.note]

    def fill(self, found: tuple[list[list], list[int], str]) -> dict:
        """``queue_update``'s rows, ids and note as updates of the panel."""
        rows, ids, note = found
        return {self.table: rows, self.ids: ids, self.note: note}


@dataclass
class UploadPanel:
    """The "Upload SEM images" accordion."""

    files: gr.File
    nm_in: gr.Textbox
    tool_in: gr.Textbox
    button: gr.Button
    status: gr.Markdown


@dataclass
class ReviewUI:
    """The Review tab's parts that other tabs and app.py wire to."""

    queue: QueuePanel
    viewer: SampleViewer
    buttons: ReviewButtons
    upload: UploadPanel
    design: overlay.OverlayUI  # the Design overlay section


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


def accept_sample(studio: Studio, sample_id: int) -> str:
    """Store production's prediction as a confirmed pair; the status line."""
    view = studio.view(sample_id)
    if view.prediction is None:
        gr.Warning("There is no prediction to accept: install a model first.")
        return "Nothing accepted: no prediction."
    try:
        return save_pair(studio, sample_id, view.mask, studio.author, view.prediction.id,
                         "accepted", lambda pair: f"Accepted sample {sample_id}: stored as a "
                         f"confirmed pair (v{pair.version}, {pair.split} split).")
    except StoreError as exc:
        gr.Warning(str(exc))
        return f"Not saved: {exc}"


def skip_sample(studio: Studio, sample_id: int) -> str:
    """Log the skip; the status line."""
    studio.store.log_event("sample_skipped", f"{studio.author} skipped sample {sample_id}",
                           {"sample_id": sample_id})
    return f"Skipped sample {sample_id}."


def _queue_column(studio: Studio, queue: gr.State) -> tuple[QueuePanel, UploadPanel]:
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
    note = gr.Markdown("", elem_id="queue-note")
    with gr.Accordion("Upload SEM images", open=False, elem_id="upload-box"):
        upload = UploadPanel(
            gr.File(file_count="multiple", file_types=[".png", ".tif", ".tiff"],
                    label="PNG or TIFF, one or many", elem_id="upload-files"),
            gr.Textbox(label="Pixel size (nm/px), used when a file has none",
                       placeholder="e.g. 2.5 (TIFF pixel-size tags win)", max_lines=1,
                       elem_id="upload-nm"),
            gr.Textbox(label="Tool / recipe name (optional)", max_lines=1),
            gr.Button("Add to queue", variant="primary", elem_id="upload-btn"),
            gr.Markdown(elem_id="upload-status"))
    filters = [order, uncorrected, source, tool, flagged]
    return QueuePanel(filters, refresh_btn, table, note, queue), upload


def build(studio: Studio, sample: gr.State, queue: gr.State, counters: gr.HTML) -> ReviewUI:
    """Lay out the Review tab and wire its own events."""
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=420):
            panel, upload = _queue_column(studio, queue)
        with gr.Column(scale=3):
            parts, buttons, design = build_sample_column(studio, sample)
    ui = ReviewUI(panel, SampleViewer(gr.State(None), sample, **parts), buttons, upload, design)
    _wire_navigation(studio, ui)
    _wire_actions(studio, ui, counters)
    return ui


def _wire_navigation(studio: Studio, ui: ReviewUI) -> None:
    """Filters fill the queue; a row, ◀ / ▶, the look controls and an overlay click show one."""
    panel, viewer, buttons = ui.queue, ui.viewer, ui.buttons

    def refresh(current, *chosen):
        return panel.fill(queue_update(studio, *chosen))

    def goto(step: int):
        def handler(current, ids, *look):
            target = step_in_queue(ids, current, step) if step else current
            return viewer.fill(show_sample(studio, target, ids, *look[:3], None, look[4]))
        return handler

    def select_row(ids, show, alpha, factor, center, unc, evt: gr.SelectData):
        row = evt.index[0] if isinstance(evt.index, list | tuple) else evt.index
        target = ids[row] if 0 <= row < len(ids) else None
        return viewer.fill(show_sample(studio, target, ids, show, alpha, factor, None, unc))

    def restyle(current, ids, *look):
        return viewer.fill(show_sample(studio, current, ids, *look))

    def zoom_at(current, ids, show, alpha, factor, unc, evt: gr.SelectData):
        sample = studio.store.get_sample(current)
        grow = render.display_factor((sample.height, sample.width), IMAGE_HEIGHT)
        center = (int(evt.index[0]) // grow, int(evt.index[1]) // grow)
        return viewer.fill(show_sample(studio, current, ids, show, alpha, factor, center, unc))

    for control in panel.filters:
        control.change(refresh, [viewer.sample, *panel.filters], panel.outputs)
    panel.refresh_btn.click(refresh, [viewer.sample, *panel.filters], panel.outputs)
    panel.table.select(select_row, [panel.ids, *viewer.look], viewer.outputs)
    buttons.prev.click(goto(-1), [viewer.sample, panel.ids, *viewer.look], viewer.outputs)
    buttons.next.click(goto(1), [viewer.sample, panel.ids, *viewer.look], viewer.outputs)
    for control in (viewer.show_contour, viewer.opacity, viewer.zoom_factor, viewer.show_unc):
        control.change(restyle, [viewer.sample, panel.ids, *viewer.look], viewer.outputs,
                       show_progress="hidden")
    viewer.overlay_img.select(zoom_at, [viewer.sample, panel.ids, viewer.show_contour,
                                        viewer.opacity, viewer.zoom_factor, viewer.show_unc],
                              viewer.outputs, show_progress="hidden")


def _wire_actions(studio: Studio, ui: ReviewUI, counters: gr.HTML) -> None:
    """Accept, Skip and Upload: act, then refill the queue and show the next sample."""
    panel, viewer, up = ui.queue, ui.viewer, ui.upload
    style = [viewer.show_contour, viewer.opacity, viewer.zoom_factor, viewer.show_unc]

    def finish(current, ids, *chosen_and_style, accept: bool):
        chosen, look, unc = chosen_and_style[:5], chosen_and_style[5:8], chosen_and_style[8]
        message = ""
        if current is not None:
            message = accept_sample(studio, current) if accept else skip_sample(studio, current)
        target = after_removal(ids, current)
        found = queue_update(studio, *chosen)
        if target not in found[1] and found[1]:
            target = step_in_queue(found[1], target, 0)
        return {**panel.fill(found), ui.buttons.status: message, counters: studio.counters(),
                **viewer.fill(show_sample(studio, target, found[1], *look, None, unc))}

    def upload(paths, nm_text, tool_name, *chosen_and_style):
        chosen, look, unc = chosen_and_style[:5], chosen_and_style[5:8], chosen_and_style[8]
        if not paths:
            return {up.status: "Choose one or more PNG/TIFF files first."}
        try:
            batch = ingest_files(studio.store, paths, (nm_text or "").strip() or None, "upload",
                                 (tool_name or "").strip() or None, cache=studio.cache)
        except (StoreError, OSError) as exc:  # the job could not be queued or no worker started
            gr.Warning(f"Upload incomplete: {exc}")
            return {up.status: f"Upload incomplete: {exc}"}
        for outcome in batch.failed:
            gr.Warning(f"{outcome.name}: not added. {outcome.error}")
        first = batch.stored[0].sample.id if batch.stored else None
        found = queue_update(studio, *chosen)
        shown = viewer.fill(show_sample(studio, first, found[1], *look, None, unc)) if first \
            else {}
        return {up.status: "\n\n".join(upload_report(batch)), **panel.fill(found),
                counters: studio.counters(), panel.tool: gr.Dropdown(choices=studio.tools()),
                **shown}

    actions = [viewer.sample, panel.ids, *panel.filters, *style]
    after = [*panel.outputs, ui.buttons.status, counters, *viewer.outputs]
    ui.buttons.accept.click(lambda *a: finish(*a, accept=True), actions, after)
    ui.buttons.skip.click(lambda *a: finish(*a, accept=False), actions, after)
    up.button.click(upload, [up.files, up.nm_in, up.tool_in, *panel.filters, *style],
                    [up.status, *panel.outputs, counters, panel.tool, *viewer.outputs])
