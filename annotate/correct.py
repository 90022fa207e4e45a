"""Correct tab: paint the layout over the SEM, correct it with tools, clean up, save the pair.

The result-image tools (boxes, polygons, magic wand, region clicks) and their keys are in
``annotate.correct_tools`` / ``annotate.correct_clicks``; this module lays out the tab and wires
the editor, brush, clean-up, save and navigation.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import numpy as np

from annotate import correct_clicks, editing, render, viewport
from annotate import correct_tools as tools
from annotate import format as fmt
from annotate.studio import Studio, after_removal, step_in_queue
from semgan.errors import SemganError
from semgan.polygons import clean_manhattan
from store import StoreError

BRUSH_STEPS_NM = (2, 4, 8, 16, 32, 64, 128, 256)  # stroke widths offered, kept if 2–160 px
PREVIEW_PX = tools.PREVIEW_PX
apply_tool = correct_clicks.apply_tool  # the one-click and box tools, for scripts and tests


@dataclass
class CorrectUI:
    """The Correct tab's components that app.py wires to."""

    load_outputs: list[gr.components.Component]
    editor_sample: gr.State
    prev_btn: gr.Button
    next_btn: gr.Button


def brush_steps(nm_per_px: float) -> list[tuple[str, int]]:
    """(label, width in px) of brush widths in round nm that make sense at this pixel size."""
    steps = []
    for width_nm in BRUSH_STEPS_NM:
        pixels = width_nm / nm_per_px
        if 2 <= pixels <= 160:
            steps.append((f"{width_nm} nm ({pixels:.0f} px)", max(1, round(pixels))))
    return steps or [(f"{2 * nm_per_px:g} nm (2 px)", 2)]


def brush_radius(width_px: int) -> int:
    """gr.Brush/gr.Eraser ``default_size`` (a radius) for a stroke ``width_px`` wide."""
    return max(1, round(width_px / 2))


def _tools(width_px: int, shape: tuple[int, ...]) -> dict:
    """Brush and eraser sized for ``width_px``-wide strokes (image px) on this image's editor."""
    radius = brush_radius(max(1, round(width_px * editing.edit_scale(shape))))
    return {"brush": gr.Brush(default_size=radius, colors=[editing.BRUSH_COLOR],
                              default_color=editing.BRUSH_COLOR, color_mode="fixed"),
            "eraser": gr.Eraser(default_size=radius)}


def load(studio: Studio, sample_id: int | None, queue_ids: list[int], message: str = "",
         start_mask: np.ndarray | None = None) -> list:
    """Outputs of ``CorrectUI.load_outputs``: the sample in the editor, its prediction layered,
    the tools' half-drawn shapes and undo history cleared.

    ``start_mask`` (e.g. the registered design clip) replaces the prediction as the layer drawn on.
    """
    if sample_id is None:
        return [None, None, None, "### Nothing to correct\nThe queue is empty.",
                gr.ImageEditor(value=None), gr.Radio(choices=[], value=None), None, message,
                None, "Tools: pick a sample first.", None, [], [], None, None,
                gr.Radio(value="Fit"), ""]
    view = studio.view(sample_id)
    steps = brush_steps(view.sample.nm_per_px)
    target = max(4, min(view.sample.height, view.sample.width) // 48)
    label, width = min(steps, key=lambda s: abs(s[1] - target))
    position = (f"({queue_ids.index(sample_id) + 1} of {len(queue_ids)} in the queue)"
                if sample_id in queue_ids else "")
    predicted = view.mask if view.mask is not None else np.zeros(view.sem_image.shape, bool)
    start = predicted if start_mask is None else start_mask
    scale = editing.edit_scale(view.sem_image.shape)
    shown_at = "" if scale == 1 else (f" (brush edits at {scale:.0%} scale, untouched edges "
                                      "stay exact; the tools work at full resolution: zoom in "
                                      "on the result image)")
    plain = render.change_picture(view.sem_image, predicted, start)
    return [sample_id, sample_id, view.prediction.id if view.prediction else None,
            fmt.sample_header(view.sample, position) + shown_at,
            gr.ImageEditor(value=editing.editor_value(view.sem_image, start),
                           **_tools(width, view.sem_image.shape)),
            gr.Radio(choices=[s[0] for s in steps], value=label), tools.preview_file(plain),
            message, None, "Pick a tool (its key in brackets) and click on the result image.",
            editing.EditorBase(start), [], [], plain, viewport.fit(plain.shape),
            gr.Radio(value="Fit"), viewport.describe(plain.shape, None)]


def _layout(studio: Studio) -> dict:
    """The tab's components, by name (the tool panel under "panel")."""
    parts: dict = {"header": gr.Markdown(elem_id="correct-header")}
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            parts["editor"] = gr.ImageEditor(
                label="Layout layer over the SEM (brush adds pattern, eraser removes it; "
                      "undo/redo top right)", format="png", image_mode="RGBA", type="numpy",
                sources=(), transforms=(), elem_id="editor", height=640,
                canvas_size=editing.EDITOR_CANVAS,
                layers=gr.LayerOptions(allow_additional_layers=False, layers=["Layout"]),
                buttons=["fullscreen"], **_tools(4, (256, 256)))
            with gr.Row():
                parts["prev"] = gr.Button("◀ Previous [K]", elem_id="correct-prev-btn")
                parts["revert"] = gr.Button("↺ Revert to prediction", elem_id="revert-btn")
                parts["save"] = gr.Button("Save correction", variant="primary",
                                          elem_id="save-btn")
                parts["next"] = gr.Button("Next ▶ [J]", elem_id="correct-next-btn")
            parts["change"] = gr.Markdown(elem_id="change-summary")
        with gr.Column(scale=2, min_width=360):
            parts["brush"] = gr.Radio([], label="Brush and eraser width (stroke width in nm; "
                                      "keys [ and ])", elem_id="brush-width")
            parts["preview"] = gr.Image(label="Result to save", format="png", interactive=False,
                                        elem_id="result-image", buttons=["fullscreen"])
            bar = tools.build_view_bar()
            with gr.Row():
                gr.Markdown("<span class='sg-muted'>Kept pattern blue · added green · removed "
                            "red. The tools below act on clicks here.</span>")
                parts["refresh"] = gr.Button("Update from the editor", size="sm", scale=0,
                                             elem_id="preview-btn")
            parts["panel"] = tools.build_panel(bar)
            with gr.Group():
                with gr.Row():
                    parts["min_area"] = gr.Number(
                        value=400.0, minimum=0, label="Clean up: drop specks and holes smaller "
                        "than (nm²)", elem_id="min-area")
                    parts["snap"] = gr.Slider(0, 6, value=2, step=1,
                                              label="Straighten steps up to (px)",
                                              elem_id="cleanup-snap")
                parts["cleanup"] = gr.Button("Clean up (Manhattan)", elem_id="cleanup-btn")
            parts["author"] = gr.Textbox(value=studio.author, label="Saved as (reviewer)",
                                         max_lines=1)
    return parts


def _cleanup(studio: Studio, current, value, loaded, area_nm2, snap_px, shown) -> tuple:
    """Clean up (Manhattan): (editor, base, preview, change summary, unmarked picture)."""
    if current is None:
        return gr.skip(), gr.skip(), gr.skip(), "Pick a sample first.", gr.skip()
    view, predicted, edited = tools.masks(studio, current, value, loaded)
    try:
        cleaned = clean_manhattan(edited, view.sample.nm_per_px, float(area_nm2 or 0),
                                  snap_tolerance_px=int(snap_px))
    except SemganError as exc:
        gr.Warning(str(exc))
        return gr.skip(), gr.skip(), gr.skip(), f"Clean up failed: {exc}", gr.skip()
    added = int(np.count_nonzero(cleaned & ~edited))
    removed = int(np.count_nonzero(edited & ~cleaned))
    plain = render.change_picture(view.sem_image, predicted, cleaned)
    return (*tools.reload(view.sem_image, cleaned, edited), tools.preview_file(plain, shown),
            f"Clean up: {added} px filled, {removed} px removed (specks, holes, stair steps)."
            " Check the result, then save.", plain)


def _save(studio: Studio, skip: list, current, value, loaded, pred_id, who, ids) -> list:
    """Save the correction, run the automatic trigger, load the next sample (+ counters)."""
    if current is None:
        return skip
    if editing.editor_mask(value) is None:
        gr.Warning("The editor is empty: revert to the prediction or draw the layout.")
        return skip
    mask = tools.masks(studio, current, value, loaded)[2]
    try:
        pair = studio.store.save_correction(current, mask, (who or "").strip() or
                                            studio.author, pred_id, kind="corrected")
    except StoreError as exc:
        gr.Warning(f"Not saved: {exc}")
        return skip
    nm = studio.store.get_sample(current).nm_per_px
    if pair.iou_vs_prediction is not None:
        what = fmt.change_summary(pair.pixels_added, pair.pixels_removed,
                                  pair.iou_vs_prediction, nm)
    else:
        what = f"{int(mask.sum()):,} px of pattern (no prediction to compare with)"
    message = (f"Saved sample {current} as corrected pair v{pair.version} "
               f"({pair.split} split): {what}.")
    fired = studio.after_pair_saved()  # the automatic trigger: threshold / drift alarm
    if fired:
        gr.Info(fired)
        message += f" {fired}"
    target = after_removal(ids, current)  # the Review tab refreshes the queue itself
    return [*load(studio, target, ids, message), studio.counters()]


def build(studio: Studio, sample: gr.State, queue: gr.State, counters: gr.HTML) -> CorrectUI:
    """Lay out the Correct tab and wire its own events."""
    prediction_id = gr.State(None)
    editor_sample = gr.State(None)  # the sample in the editor (stale when Review moved on)
    base = gr.State(None)  # editing.EditorBase: the mask the editor was last loaded with
    parts = _layout(studio)
    panel: tools.ToolPanel = parts["panel"]
    editor, preview = parts["editor"], parts["preview"]
    load_outputs = [sample, editor_sample, prediction_id, parts["header"], editor,
                    parts["brush"], preview, parts["change"], panel.first_corner, panel.status,
                    base, panel.history, panel.vertices, panel.plain, panel.bar.view,
                    panel.bar.zoom, panel.bar.status]

    def set_brush(choice, current):
        if current is None or not choice:
            return gr.skip()
        got = studio.store.get_sample(current)
        width = dict(brush_steps(got.nm_per_px)).get(choice, 4)
        return gr.ImageEditor(**_tools(width, (got.height, got.width)))

    def refresh_preview(current, value, loaded, shown):
        if current is None:
            return gr.skip(), gr.skip()
        view, predicted, edited = tools.masks(studio, current, value, loaded)
        plain = render.change_picture(view.sem_image, predicted, edited)
        return tools.preview_file(plain, shown), plain

    def move(step):
        return lambda current, ids: load(studio, step_in_queue(ids, current, step), ids)

    skip = [gr.skip()] * (len(load_outputs) + 1)
    parts["brush"].change(set_brush, [parts["brush"], editor_sample], editor,
                          show_progress="hidden")
    parts["revert"].click(lambda current, ids: load(studio, current, ids, "Reverted to the "
                                                    "prediction."), [editor_sample, queue],
                          load_outputs)
    # No live preview on editor.change: each one uploads the whole canvas and blocks drawing
    # while it runs (seconds on a 2048² image). The preview refreshes on request instead.
    parts["refresh"].click(refresh_preview, [editor_sample, editor, base, panel.bar.view],
                           [preview, panel.plain])
    correct_clicks.wire(studio, panel, editor_sample, editor, base, preview)
    parts["cleanup"].click(lambda *args: _cleanup(studio, *args),
                           [editor_sample, editor, base, parts["min_area"], parts["snap"],
                            panel.bar.view], [editor, base, preview, parts["change"], panel.plain])
    parts["save"].click(lambda *args: _save(studio, skip, *args),
                        [editor_sample, editor, base, prediction_id, parts["author"], queue],
                        [*load_outputs, counters])
    parts["prev"].click(move(-1), [editor_sample, queue], load_outputs)
    parts["next"].click(move(1), [editor_sample, queue], load_outputs)
    return CorrectUI(load_outputs, editor_sample, parts["prev"], parts["next"])
