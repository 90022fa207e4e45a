"""Correct tab: paint the layout over the SEM, correct it with tools, clean up, save the pair.

The result-image tools (boxes, polygons, magic wand, region clicks) and their keys are in
``annotate.correct_tools`` / ``annotate.correct_clicks``; this module lays out the tab and wires
the editor, brush, clean-up, save and navigation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
import numpy as np

from annotate import correct_clicks, editing, render, viewport
from annotate import correct_tools as tools
from annotate import format as fmt
from annotate.correct_layout import brush_steps, brush_tools, layout
from annotate.saving import save_pair
from annotate.studio import Studio, after_removal, step_in_queue
from semgan.errors import SemganError
from semgan.manhattan import clean_manhattan
from store import StoreError


@dataclass
class Loaded(tools.Outcome):
    """A sample put into the tab: the tool outcome's fields and the tab's own."""

    sample: Any = tools.KEEP
    editor_sample: Any = tools.KEEP
    prediction_id: Any = tools.KEEP
    header: Any = tools.KEEP
    brush: Any = tools.KEEP  # the brush width radio
    zoom: Any = tools.KEEP
    counters: Any = tools.KEEP


# What loading a sample sets (``load``'s fields, the outputs of every event that loads one).
LOADED = ("sample", "editor_sample", "prediction_id", "header", "editor", "brush", "preview",
          "change", "first_corner", "status", "base", "history", "vertices", "plain", "view",
          "zoom", "view_status")


@dataclass
class CorrectUI:
    """The Correct tab's components that app.py wires to."""

    targets: tools.Targets  # Loaded field → component
    editor_sample: gr.State
    prev_btn: gr.Button
    next_btn: gr.Button

    @property
    def load_outputs(self) -> list[gr.components.Component]:
        """The components ``load`` fills: the outputs of an event that ends in ``fill``."""
        return self.targets.outputs(*LOADED)

    def fill(self, loaded: tools.Outcome) -> dict:
        """Gradio's output dict for ``load``'s result."""
        return self.targets.render(loaded)


def load(studio: Studio, sample_id: int | None, queue_ids: list[int], message: str = "",
         start_mask: np.ndarray | None = None) -> Loaded:
    """The sample in the editor, its prediction layered, the tools' half-drawn shapes and undo
    history cleared (every ``LOADED`` field set).

    ``start_mask`` (e.g. the registered design clip) replaces the prediction as the layer drawn on.
    """
    if sample_id is None:
        return Loaded(sample=None, editor_sample=None, prediction_id=None,
                      header="### Nothing to correct\nThe queue is empty.",
                      editor=gr.ImageEditor(value=None), brush=gr.Radio(choices=[], value=None),
                      preview=None, change=message, first_corner=None,
                      status="Tools: pick a sample first.", base=None, history=[], vertices=[],
                      plain=None, view=None, zoom=gr.Radio(value="Fit"), view_status="")
    view = studio.view(sample_id)
    steps = brush_steps(view.sample.nm_per_px)
    target = max(4, min(view.sample.height, view.sample.width) // 48)
    label, width = min(steps, key=lambda s: abs(s[1] - target))
    position = (f"({queue_ids.index(sample_id) + 1} of {len(queue_ids)} in the queue)"
                if sample_id in queue_ids else "")
    predicted = view.mask if view.mask is not None else np.zeros(view.sem_image.shape, bool)
    start = predicted if start_mask is None else start_mask
    scale = editing.edit_scale(view.sem_image.shape)
    shown_at = "" if scale == 1 else (f" (the whole image is brushed at {scale:.0%} scale, "
                                      "untouched edges stay exact: zoom in on the result image "
                                      "and the editor shows that part at full resolution; the "
                                      "tools always work at full resolution)")
    plain = render.change_picture(view.sem_image, predicted, start)
    return Loaded(
        sample=sample_id, editor_sample=sample_id,
        prediction_id=view.prediction.id if view.prediction else None,
        header=fmt.sample_header(view.sample, position) + shown_at,
        editor=gr.ImageEditor(value=editing.editor_value(view.sem_image, start),
                              **brush_tools(width, view.sem_image.shape)),
        brush=gr.Radio(choices=[s[0] for s in steps], value=label),
        preview=tools.preview_file(plain), change=message, first_corner=None,
        status="Pick a tool (its key in brackets) and click on the result image.",
        base=editing.EditorBase(start), history=[], vertices=[], plain=plain,
        view=viewport.fit(plain.shape), zoom=gr.Radio(value="Fit"),
        view_status=viewport.describe(plain.shape, None))


def _cleanup(studio: Studio, current, value, loaded, area_nm2, snap_px, shown) -> tools.Outcome:
    """Clean up (Manhattan): editor, base, preview, change summary and unmarked picture."""
    if current is None:
        return tools.Outcome(change="Pick a sample first.")
    view, predicted, edited = tools.masks(studio, current, value, loaded)
    try:
        cleaned = clean_manhattan(edited, view.sample.nm_per_px, float(area_nm2 or 0),
                                  snap_tolerance_px=int(snap_px))
    except SemganError as exc:
        gr.Warning(str(exc))
        return tools.Outcome(change=f"Clean up failed: {exc}")
    added = int(np.count_nonzero(cleaned & ~edited))
    removed = int(np.count_nonzero(edited & ~cleaned))
    plain = render.change_picture(view.sem_image, predicted, cleaned)
    return tools.Outcome(
        preview=tools.preview_file(plain, shown), plain=plain,
        change=f"Clean up: {added} px filled, {removed} px removed (specks, holes, stair steps)."
               " Check the result, then save.").loaded(
        tools.reload(view.sem_image, cleaned, shown, loaded, edited))


def _edited_shape(sample, loaded: editing.EditorBase | None) -> tuple[int, int]:
    """(rows, cols) of the part of the sample the editor shows."""
    window = loaded.window if loaded is not None else None
    return (window[2], window[3]) if window else (sample.height, sample.width)


def _refit(studio: Studio, current, value, loaded, shown, brush_choice) -> tools.Outcome:
    """The editor follows the result image's zoom and pan (editor, base, view line). Strokes
    drawn in the old window are kept; the new window is shown at full resolution when it fits."""
    if current is None or loaded is None:
        return tools.Outcome()
    view, _, edited = tools.masks(studio, current, value, loaded)
    window = tools.editor_window(edited.shape, shown)
    if window == loaded.window:
        return tools.Outcome()
    width = dict(brush_steps(view.sample.nm_per_px)).get(brush_choice, 4)
    shape = editing.crop(edited, window).shape
    scale = editing.edit_scale(shape)
    line = viewport.describe(edited.shape, shown) + (
        " · the editor shows this window " +
        ("at full resolution" if scale == 1 else f"at {scale:.0%} scale"))
    return tools.Outcome(view_status=line).loaded(
        tools.reload(view.sem_image, edited, shown, loaded, edited, **brush_tools(width, shape)))


def _save(studio: Studio, current, value, loaded, pred_id, who, ids) -> tools.Outcome:
    """Save the correction, run the automatic trigger, load the next sample (+ counters)."""
    if current is None:
        return tools.Outcome()
    if editing.editor_mask(value) is None:
        gr.Warning("The editor is empty: revert to the prediction or draw the layout.")
        return tools.Outcome()
    mask = tools.masks(studio, current, value, loaded)[2]

    def describe(pair) -> str:
        if pair.iou_vs_prediction is not None:
            what = fmt.change_summary(pair.pixels_added, pair.pixels_removed,
                                      pair.iou_vs_prediction,
                                      studio.store.get_sample(current).nm_per_px)
        else:
            what = f"{int(mask.sum()):,} px of pattern (no prediction to compare with)"
        return (f"Saved sample {current} as corrected pair v{pair.version} "
                f"({pair.split} split): {what}.")
    try:
        message = save_pair(studio, current, mask, (who or "").strip() or studio.author,
                            pred_id, "corrected", describe)
    except StoreError as exc:
        gr.Warning(f"Not saved: {exc}")
        return tools.Outcome()
    target = after_removal(ids, current)  # the Review tab refreshes the queue itself
    loaded_next = load(studio, target, ids, message)
    loaded_next.counters = studio.counters()
    return loaded_next


def _targets(parts: dict, states: dict[str, gr.State], counters: gr.HTML) -> tools.Targets:
    """Every Loaded field's component."""
    panel: tools.ToolPanel = parts["panel"]
    return tools.Targets(
        **states, header=parts["header"], editor=parts["editor"], brush=parts["brush"],
        preview=parts["preview"], change=parts["change"], first_corner=panel.first_corner,
        status=panel.status, history=panel.history, vertices=panel.vertices, plain=panel.plain,
        point=panel.point, pending=panel.pending, view=panel.bar.view, zoom=panel.bar.zoom,
        view_status=panel.bar.status, counters=counters)


def _wire_editor(studio: Studio, parts: dict, targets: tools.Targets) -> None:
    """Brush width, the editor following the zoom, and the preview refresh."""
    editor, base, sample = targets["editor"], targets["base"], targets["editor_sample"]
    view = targets["view"]

    def set_brush(choice, current, loaded):
        if current is None or not choice:
            return gr.skip()
        got = studio.store.get_sample(current)
        width = dict(brush_steps(got.nm_per_px)).get(choice, 4)
        return gr.ImageEditor(**brush_tools(width, _edited_shape(got, loaded)))

    def refresh_preview(current, value, loaded, shown):
        if current is None:
            return tools.Outcome()
        got, predicted, edited = tools.masks(studio, current, value, loaded)
        plain = render.change_picture(got.sem_image, predicted, edited)
        return tools.Outcome(preview=tools.preview_file(plain, shown), plain=plain)

    parts["brush"].change(set_brush, [parts["brush"], sample, base], editor,
                          show_progress="hidden")
    view.change(lambda *args: targets.render(_refit(studio, *args)),
                [sample, editor, base, view, parts["brush"]],
                targets.outputs("editor", "base", "view_status"), show_progress="hidden",
                **tools.MASK_EVENTS)
    # No live preview on editor.change: each one uploads the whole canvas and blocks drawing
    # while it runs (seconds on a 2048² image). The preview refreshes on request instead.
    parts["refresh"].click(lambda *args: targets.render(refresh_preview(*args)),
                           [sample, editor, base, view], targets.outputs("preview", "plain"),
                           **tools.MASK_EVENTS)


def build(studio: Studio, sample: gr.State, queue: gr.State, counters: gr.HTML) -> CorrectUI:
    """Lay out the Correct tab and wire its own events."""
    states = {"sample": sample, "prediction_id": gr.State(None),
              "editor_sample": gr.State(None),  # the sample in the editor (stale when Review moved on)
              "base": gr.State(None)}  # editing.EditorBase: what the editor was last loaded with
    parts = layout(studio)
    targets = _targets(parts, states, counters)
    ui = CorrectUI(targets, states["editor_sample"], parts["prev"], parts["next"])
    editor_sample, editor, base = states["editor_sample"], parts["editor"], states["base"]

    def move(step):
        return lambda current, ids: ui.fill(load(studio, step_in_queue(ids, current, step), ids))

    _wire_editor(studio, parts, targets)
    parts["revert"].click(lambda current, ids: ui.fill(load(
        studio, current, ids, "Reverted to the prediction.")), [editor_sample, queue],
        ui.load_outputs)
    correct_clicks.wire(studio, parts["panel"], targets, editor_sample)
    parts["cleanup"].click(lambda *args: targets.render(_cleanup(studio, *args)),
                           [editor_sample, editor, base, parts["min_area"], parts["snap"],
                            targets["view"]],
                           targets.outputs("editor", "base", "preview", "change", "plain"),
                           **tools.MASK_EVENTS)
    parts["save"].click(lambda *args: targets.render(_save(studio, *args)),
                        [editor_sample, editor, base, states["prediction_id"], parts["author"],
                         queue], [*ui.load_outputs, counters], **tools.MASK_EVENTS)
    parts["prev"].click(move(-1), [editor_sample, queue], ui.load_outputs)
    parts["next"].click(move(1), [editor_sample, queue], ui.load_outputs)
    return ui
