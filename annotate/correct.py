"""Correct tab: paint the layout over the SEM, add/remove rectangles, clean up, save the pair."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import numpy as np

from annotate import editing, render
from annotate import format as fmt
from annotate.studio import Studio, after_removal, step_in_queue
from semgan.errors import SemganError
from semgan.polygons import clean_manhattan
from store import StoreError

BRUSH_STEPS_NM = (2, 4, 8, 16, 32, 64, 128, 256)  # stroke widths offered, kept if 2–160 px
RECT_MODES = ["Add pattern", "Remove pattern", "Threshold in box (local Otsu)"]  # two clicks
CLICK_MODES = ["Delete / fill region", "Keep only region", "Move region edges"]  # one click
PREVIEW_PX = 512  # small images are shown enlarged in the result preview (rectangle clicks)


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


def _preview(picture: np.ndarray) -> str:
    """The result preview file, small images enlarged (clicks are divided back)."""
    return render.png_file(render.enlarge(picture, render.display_factor(picture.shape,
                                                                         PREVIEW_PX)))


def _tools(width_px: int, shape: tuple[int, ...]) -> dict:
    """Brush and eraser sized for ``width_px``-wide strokes (image px) on this image's editor."""
    radius = brush_radius(max(1, round(width_px * editing.edit_scale(shape))))
    return {"brush": gr.Brush(default_size=radius, colors=[editing.BRUSH_COLOR],
                              default_color=editing.BRUSH_COLOR, color_mode="fixed"),
            "eraser": gr.Eraser(default_size=radius)}


def _reload(sem_image: np.ndarray, mask: np.ndarray) -> tuple[gr.ImageEditor, np.ndarray]:
    """(editor update, base mask) for putting a new mask into the editor."""
    return gr.ImageEditor(value=editing.editor_value(sem_image, mask)), mask


def apply_tool(mode: str, mask: np.ndarray, sem_image: np.ndarray, point: tuple[int, int],
               corner: tuple[int, int] | None, shift_nm: float, nm_per_px: float) -> np.ndarray:
    """The mask after one tool click (``corner``: the box's first corner, two-click tools)."""
    if mode == CLICK_MODES[0]:
        return editing.flip_region(mask, point)
    if mode == CLICK_MODES[1]:
        return editing.keep_region(mask, point)
    if mode == CLICK_MODES[2]:
        return editing.move_region_edges(mask, point, shift_nm, nm_per_px)
    if mode == RECT_MODES[2]:
        return editing.threshold_in_box(mask, sem_image, corner, point)
    rect = render.rectangle_mask(mask.shape, corner, point)
    return mask | rect if mode == RECT_MODES[0] else mask & ~rect


def load(studio: Studio, sample_id: int | None, queue_ids: list[int], message: str = "",
         start_mask: np.ndarray | None = None) -> list:
    """Outputs of ``CorrectUI.load_outputs``: the sample in the editor, its prediction layered.

    ``start_mask`` (e.g. the registered design clip) replaces the prediction as the layer drawn on.
    """
    if sample_id is None:
        return [None, None, None, "### Nothing to correct\nThe queue is empty.",
                gr.ImageEditor(value=None), gr.Radio(choices=[], value=None), None, message,
                None, "Rectangle tool: pick a sample first.", None, []]
    view = studio.view(sample_id)
    steps = brush_steps(view.sample.nm_per_px)
    target = max(4, min(view.sample.height, view.sample.width) // 48)
    label, width = min(steps, key=lambda s: abs(s[1] - target))
    position = (f"({queue_ids.index(sample_id) + 1} of {len(queue_ids)} in the queue)"
                if sample_id in queue_ids else "")
    predicted = view.mask if view.mask is not None else np.zeros(view.sem_image.shape, bool)
    start = predicted if start_mask is None else start_mask
    scale = editing.edit_scale(view.sem_image.shape)
    shown_at = "" if scale == 1 else f" (edited at {scale:.0%} scale; untouched edges stay exact)"
    return [sample_id, sample_id, view.prediction.id if view.prediction else None,
            fmt.sample_header(view.sample, position) + shown_at,
            gr.ImageEditor(value=editing.editor_value(view.sem_image, start),
                           **_tools(width, view.sem_image.shape)),
            gr.Radio(choices=[s[0] for s in steps], value=label),
            _preview(render.change_picture(view.sem_image, predicted, start)), message,
            None, "Rectangle tool: click two opposite corners on the result image.", start, []]


def build(studio: Studio, sample: gr.State, queue: gr.State, counters: gr.HTML) -> CorrectUI:
    """Lay out the Correct tab and wire its own events."""
    prediction_id = gr.State(None)
    editor_sample = gr.State(None)  # the sample in the editor (stale when Review moved on)
    first_corner = gr.State(None)
    base = gr.State(None)  # full-resolution mask the editor was last loaded with
    history = gr.State([])  # masks before each click tool, for "Undo last tool"
    header = gr.Markdown(elem_id="correct-header")
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            editor = gr.ImageEditor(
                label="Layout layer over the SEM (brush adds pattern, eraser removes it; "
                      "undo/redo top right)", format="png", image_mode="RGBA", type="numpy",
                sources=(), transforms=(), elem_id="editor", height=640,
                canvas_size=editing.EDITOR_CANVAS,
                layers=gr.LayerOptions(allow_additional_layers=False, layers=["Layout"]),
                buttons=["fullscreen"], **_tools(4, (256, 256)))
            with gr.Row():
                prev_btn = gr.Button("◀ Previous [K]", elem_id="correct-prev-btn")
                revert_btn = gr.Button("↺ Revert to prediction", elem_id="revert-btn")
                save_btn = gr.Button("Save correction", variant="primary", elem_id="save-btn")
                next_btn = gr.Button("Next ▶ [J]", elem_id="correct-next-btn")
            change = gr.Markdown(elem_id="change-summary")
        with gr.Column(scale=2, min_width=360):
            brush = gr.Radio([], label="Brush and eraser width (stroke width in nm)",
                             elem_id="brush-width")
            preview = gr.Image(label="Result to save", format="png", interactive=False,
                               elem_id="result-image", buttons=["fullscreen"])
            with gr.Row():
                gr.Markdown("<span class='sg-muted'>Kept pattern blue · added green · removed "
                            "red. Click two opposite corners here to add or remove a "
                            "rectangle.</span>")
                preview_btn = gr.Button("Update from the editor", size="sm", scale=0,
                                        elem_id="preview-btn")
            with gr.Group():
                rect_mode = gr.Radio(RECT_MODES + CLICK_MODES, value=RECT_MODES[0],
                                     label="Tool on the result image (boxes: two corners; "
                                           "regions: one click)", elem_id="rect-mode")
                shift_nm = gr.Number(value=4.0, label="Move region edges by (nm, < 0 inwards)",
                                     elem_id="shift-nm")
                rect_status = gr.Markdown(elem_id="rect-status")
                with gr.Row():
                    rect_cancel = gr.Button("Cancel rectangle", size="sm")
                    undo_btn = gr.Button("↶ Undo last tool", size="sm", elem_id="undo-tool-btn")
            with gr.Group():
                with gr.Row():
                    min_area = gr.Number(value=400.0, minimum=0, label="Clean up: drop specks "
                                         "and holes smaller than (nm²)", elem_id="min-area")
                    snap = gr.Slider(0, 6, value=2, step=1, label="Straighten steps up to (px)")
                cleanup_btn = gr.Button("Clean up (Manhattan)", elem_id="cleanup-btn")
            author = gr.Textbox(value=studio.author, label="Saved as (reviewer)", max_lines=1)
    load_outputs = [sample, editor_sample, prediction_id, header, editor, brush, preview, change,
                    first_corner, rect_status, base, history]

    def current_masks(current, value, loaded):
        view = studio.view(current)
        predicted = view.mask if view.mask is not None else np.zeros(view.sem_image.shape, bool)
        start = loaded if loaded is not None and loaded.shape == predicted.shape else predicted
        return view, predicted, editing.edited_mask(value, start)

    def width_of(choice, current):
        steps = dict(brush_steps(studio.store.get_sample(current).nm_per_px))
        return steps.get(choice, 4)

    def set_brush(choice, current):
        if current is None or not choice:
            return gr.skip()
        sample = studio.store.get_sample(current)
        return gr.ImageEditor(**_tools(width_of(choice, current), (sample.height, sample.width)))

    def revert(current, ids):
        return load(studio, current, ids, "Reverted to the prediction.")

    def refresh_preview(current, value, loaded):
        if current is None:
            return gr.skip()
        view, predicted, edited = current_masks(current, value, loaded)
        return _preview(render.change_picture(view.sem_image, predicted, edited))

    def click_corner(current, value, loaded, corner, mode, shift, past, evt: gr.SelectData):
        if current is None:
            return gr.skip(), gr.skip(), gr.skip(), None, "Pick a sample first.", gr.skip()
        view, predicted, edited = current_masks(current, value, loaded)
        grow = render.display_factor(view.sem_image.shape, PREVIEW_PX)
        point = (int(evt.index[0]) // grow, int(evt.index[1]) // grow)
        if corner is None and mode not in CLICK_MODES:
            picture = _preview(render.mark_point(render.change_picture(
                view.sem_image, predicted, edited), point, mode != RECT_MODES[1]))
            return gr.skip(), gr.skip(), picture, point, (
                f"First corner at x = {point[0]}, y = {point[1]} px: click the opposite "
                "corner."), gr.skip()
        nm = view.sample.nm_per_px
        new = apply_tool(mode, edited, view.sem_image, point, corner, float(shift or 0), nm)
        message = f"{mode} at x = {point[0]}, y = {point[1]} px"
        if corner is not None:
            rows, cols = np.nonzero(render.rectangle_mask(edited.shape, corner, point))
            height, width = int(np.ptp(rows)) + 1, int(np.ptp(cols)) + 1
            size = f"{width}×{height} px {{}} ({width * nm:g}×{height * nm:g} nm)"
            message = (f"{'Added' if mode == RECT_MODES[0] else 'Removed'} a "
                       f"{size.format('rectangle')}" if mode in RECT_MODES[:2]
                       else f"Otsu threshold in a {size.format('box')}")
        message += f": {int(np.count_nonzero(new != edited))} px changed."
        return (*_reload(view.sem_image, new),
                _preview(render.change_picture(view.sem_image, predicted, new)), None,
                message, [*(past or []), edited])

    def undo(current, past):
        if current is None or not past:
            return gr.skip(), gr.skip(), gr.skip(), "Nothing to undo.", gr.skip()
        view = studio.view(current)
        predicted = view.mask if view.mask is not None else np.zeros(view.sem_image.shape, bool)
        return (*_reload(view.sem_image, past[-1]),
                _preview(render.change_picture(view.sem_image, predicted, past[-1])),
                "Undid the last tool (strokes drawn after it are undone too).", past[:-1])

    def cleanup(current, value, loaded, area_nm2, snap_px):
        if current is None:
            return gr.skip(), gr.skip(), gr.skip(), "Pick a sample first."
        view, predicted, edited = current_masks(current, value, loaded)
        try:
            cleaned = clean_manhattan(edited, view.sample.nm_per_px, float(area_nm2 or 0),
                                      snap_tolerance_px=int(snap_px))
        except SemganError as exc:
            gr.Warning(str(exc))
            return gr.skip(), gr.skip(), gr.skip(), f"Clean up failed: {exc}"
        added = int(np.count_nonzero(cleaned & ~edited))
        removed = int(np.count_nonzero(edited & ~cleaned))
        return (*_reload(view.sem_image, cleaned),
                _preview(render.change_picture(view.sem_image, predicted, cleaned)),
                f"Clean up: {added} px filled, {removed} px removed (specks, holes, stair steps)."
                " Check the result, then save.")

    def save(current, value, loaded, pred_id, who, ids):
        if current is None:
            return [gr.skip()] * (len(load_outputs) + 1)
        if editing.editor_mask(value) is None:
            gr.Warning("The editor is empty: revert to the prediction or draw the layout.")
            return [gr.skip()] * (len(load_outputs) + 1)
        mask = current_masks(current, value, loaded)[2]
        try:
            pair = studio.store.save_correction(current, mask, (who or "").strip() or
                                                studio.author, pred_id, kind="corrected")
        except StoreError as exc:
            gr.Warning(f"Not saved: {exc}")
            return [gr.skip()] * (len(load_outputs) + 1)
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

    def move(step):
        def handler(current, ids):
            return load(studio, step_in_queue(ids, current, step), ids)
        return handler

    brush.change(set_brush, [brush, editor_sample], editor, show_progress="hidden")
    revert_btn.click(revert, [editor_sample, queue], load_outputs)
    # No live preview on editor.change: each one uploads the whole canvas and blocks drawing
    # while it runs (seconds on a 2048² image). The preview refreshes on request instead.
    preview_btn.click(refresh_preview, [editor_sample, editor, base], preview)
    preview.select(click_corner, [editor_sample, editor, base, first_corner, rect_mode, shift_nm,
                                  history],
                   [editor, base, preview, first_corner, rect_status, history])
    undo_btn.click(undo, [editor_sample, history], [editor, base, preview, rect_status, history])
    rect_cancel.click(lambda: (None, "Rectangle cancelled."), None, [first_corner, rect_status])
    cleanup_btn.click(cleanup, [editor_sample, editor, base, min_area, snap],
                      [editor, base, preview, change])
    save_btn.click(save, [editor_sample, editor, base, prediction_id, author, queue],
                   [*load_outputs, counters])
    prev_btn.click(move(-1), [editor_sample, queue], load_outputs)
    next_btn.click(move(1), [editor_sample, queue], load_outputs)
    return CorrectUI(load_outputs, editor_sample, prev_btn, next_btn)
