"""The Correct tab's tools on the result image: boxes, thresholds, polygons, magic wand, regions.

Every tool is one entry of the tool radio with its own key; a click on the result image
goes to the selected tool, changes the mask, reloads the editor and pushes the mask it
replaced onto the undo history. The mask operations themselves live in ``annotate.editing``,
``annotate.polygon``, ``annotate.threshold`` and ``annotate.wand``; this module only wires them to Gradio.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any

import gradio as gr
import numpy as np

from annotate import editing, polygon, render, viewport, wand
from annotate.studio import Studio

MASK_EVENTS = {"concurrency_id": "correct-mask", "concurrency_limit": 1}  # one at a time, in order
PREVIEW_PX = 512  # small images are shown enlarged in the result preview (clicks divided back)
BOX_ADD, BOX_REMOVE = "Add pattern (box) [R]", "Remove pattern (box) [⇧R]"
OTSU = "Threshold in box [T]"
OTSU_INVERT = "Threshold in box, other side [⇧T]"
POLY_ADD, POLY_REMOVE = "Polygon: add [P]", "Polygon: remove [⇧P]"
WAND_ADD, WAND_REMOVE = "Magic wand: add [W]", "Magic wand: remove [⇧W]"
FLIP, KEEP, MOVE = ("Delete / fill region [D]", "Keep only region [O]",
                    "Move region edges [M]")
MOVE_ALL = "Move all edges [⇧M]"
STAMP = "Copy box to matches [A]"
# Buttons, not modes: the whole image thresholded in one action (the usual start on an image the
# model got wrong; two corner clicks cannot reach a zoomed-in image's far corners).
WHOLE, WHOLE_INVERT = "Threshold whole image [G]", "Threshold whole image, other side [⇧G]"
BOX_TOOLS = (BOX_ADD, BOX_REMOVE, OTSU, OTSU_INVERT, STAMP)  # two clicks: opposite corners
POLYGON_TOOLS = (POLY_ADD, POLY_REMOVE)  # a click per vertex, then close
TOOLS = [BOX_ADD, BOX_REMOVE, OTSU, OTSU_INVERT, POLY_ADD, POLY_REMOVE, WAND_ADD, WAND_REMOVE,
         FLIP, KEEP, MOVE, MOVE_ALL, STAMP]
TOOL_KEYS = {"r": BOX_ADD, "R": BOX_REMOVE, "t": OTSU, "T": OTSU_INVERT, "p": POLY_ADD,
             "P": POLY_REMOVE, "w": WAND_ADD, "W": WAND_REMOVE, "d": FLIP, "o": KEEP, "m": MOVE,
             "M": MOVE_ALL, "a": STAMP}
BUTTON_KEYS = {"Enter": "polygon-close-btn", "Backspace": "polygon-undo-btn",
               "Escape": "shape-cancel-btn", "u": "undo-tool-btn", "g": "threshold-all-btn",
               "G": "threshold-all-other-btn"}
KEY_HELP = ("Keys: R/⇧R box add/remove · T/⇧T threshold in box (pattern on the side the mask "
            "had / the other side) · G/⇧G the same over the whole image, in one key · P/⇧P polygon add/remove (Enter closes, Backspace drops the "
            "last vertex, Esc cancels) · W/⇧W magic wand add/remove · D delete/fill region · "
            "O keep region · M move the region's edges · ⇧M move all edges · A copy a box around one "
            "corrected feature to every place the SEM shows it · U undo last tool · "
            "[ and ] (or - and +) brush width.")
# Hints never name the tool: a status naming it means the tool has acted (tests wait on that).
HINTS = {BOX_TOOLS[:4]: "Click two opposite corners on the result image.",
         (STAMP,): "Fix one feature of an array first, then click two opposite corners of a "
                   "box around it with some substrate: its layout is copied to every place "
                   "where the SEM looks like it.",
         POLYGON_TOOLS: "Click the vertices on the result image (each edge snaps horizontal "
                        "or vertical); click the first vertex or press Enter to close.",
         (WAND_ADD, WAND_REMOVE): "Click inside a feature (or the substrate) on the result "
                                  "image: its SEM area up to the edges is filled or erased.",
         (FLIP, KEEP, MOVE): "Click a region on the result image.",
         (MOVE_ALL,): "Click anywhere on the result image: every edge moves by the nm set "
                      "below."}

# Tool keys: only while the Correct tab is shown and never while typing in a field.
KEYS_JS = """
() => {
  const tools = TOOL_KEYS, buttons = BUTTON_KEYS;
  const typing = (t) => { const tag = (t && t.tagName || '').toLowerCase();
    const type = (t && t.type || '').toLowerCase();
    return tag === 'textarea' || tag === 'select' || (t && t.isContentEditable) ||
           (tag === 'input' && type !== 'radio' && type !== 'checkbox'); };
  const stepBrush = (step) => {
    const radios = [...document.querySelectorAll('#brush-width input[type=radio]')];
    const now = radios.findIndex((r) => r.checked);
    const next = radios[Math.max(0, Math.min(radios.length - 1, now + step))];
    if (next && !next.checked) next.click();
  };
  document.addEventListener('keydown', (event) => {
    const panel = document.getElementById('rect-mode');
    if (!panel || panel.offsetParent === null || event.ctrlKey || event.metaKey ||
        event.altKey || typing(event.target)) return;
    const key = event.key;
    if (key === 'Enter' && (event.target.tagName || '').toLowerCase() === 'button') return;
    let done = true;
    if (key in tools) {
      const input = [...panel.querySelectorAll('input[type=radio]')]
        .find((r) => r.value === tools[key]);
      if (input && !input.checked) input.click();
    } else if (key === '[' || key === '-') { stepBrush(-1);
    } else if (key === ']' || key === '+' || key === '=') { stepBrush(1);
    } else if (key in buttons) {
      const button = document.getElementById(buttons[key]);
      if (button) button.click(); else done = false;
    } else { done = false; }
    if (done) event.preventDefault();
  });
}
""".replace("TOOL_KEYS", json.dumps(TOOL_KEYS)).replace("BUTTON_KEYS", json.dumps(BUTTON_KEYS))


@dataclass
class ViewBar:
    """Zoom and pan of the result image (under it)."""

    view: gr.State  # viewport.View of the result image
    zoom: gr.Radio
    status: gr.Markdown
    pans: dict[tuple[int, int], gr.Button]  # (dx, dy) → button


@dataclass
class ToolPanel:
    """The tool panel's components and states (states are reset when a sample loads)."""

    bar: ViewBar
    mode: gr.Radio
    shift_nm: gr.Number
    tolerance: gr.Slider
    status: gr.Markdown
    first_corner: gr.State
    vertices: gr.State
    history: gr.State
    plain: gr.State  # the result picture without marks, to clear a drawn shape
    point: gr.State  # where the last click asks a tool to act (or "close")
    pending: gr.State  # bumped for each tool action: its change event runs the tool
    cancel_btn: gr.Button
    close_btn: gr.Button
    vertex_undo_btn: gr.Button
    undo_btn: gr.Button
    whole_btn: gr.Button  # threshold the whole image (WHOLE)
    whole_other_btn: gr.Button  # ... pattern on the other side (WHOLE_INVERT)


KEEP: Any = object()  # an Outcome field left as it is


@dataclass
class Outcome:
    """What a Correct-tab handler changes, by name; a field left ``KEEP`` is not sent."""

    editor: Any = KEEP  # gr.ImageEditor update
    base: Any = KEEP  # editing.EditorBase
    preview: Any = KEEP  # result image file
    first_corner: Any = KEEP
    vertices: Any = KEEP
    status: Any = KEEP  # the tool status line
    history: Any = KEEP  # undo stack of masks
    plain: Any = KEEP  # result picture without marks
    point: Any = KEEP  # where ``act`` should apply the tool (or "close")
    pending: Any = KEEP
    view: Any = KEEP  # viewport.View of the result image
    view_status: Any = KEEP
    change: Any = KEEP  # the change summary under the editor

    def loaded(self, editor_and_base: tuple[gr.ImageEditor, editing.EditorBase]) -> Outcome:
        """This outcome with the editor and its base from ``reload``."""
        self.editor, self.base = editor_and_base
        return self


class Targets(dict):
    """Outcome field → the component it fills; renders an Outcome as Gradio's output dict."""

    def render(self, outcome: Outcome) -> dict:
        """{component: value} of the fields the outcome sets (gr.skip() when none)."""
        out = {}
        for item in fields(outcome):
            value = getattr(outcome, item.name)
            if value is not KEEP:
                out[self[item.name]] = value
        return out or gr.skip()

    def outputs(self, *names: str) -> list:
        """The components of ``names`` (an event's outputs)."""
        return [self[name] for name in names]


def hint(mode: str) -> str:
    """The status line that tells what the selected tool expects."""
    return next((text for tools, text in HINTS.items() if mode in tools), "")


def preview_file(picture: np.ndarray, view: viewport.View | None = None) -> str:
    """The result preview file: the view's window, small ones enlarged (clicks mapped back)."""
    return render.png_file(viewport.show(picture, view, PREVIEW_PX))


def marked(plain: np.ndarray, vertices, corner, mode: str) -> np.ndarray:
    """The result picture with the half-drawn shape on it (polygon path or first corner)."""
    if vertices:
        return polygon.draw_path(plain, [tuple(v) for v in vertices], mode == POLY_ADD)
    if corner is not None:
        return render.mark_point(plain, tuple(corner), mode != BOX_REMOVE)
    return plain


def editor_window(shape: tuple[int, ...], view: viewport.View | None) -> editing.Window | None:
    """The part of the image the editor shows: the result image's window when zoomed in (at full
    resolution up to ``editing.EDIT_MAX_PX`` a side), else the whole image."""
    if view is None or view[0] == 1:
        return None
    return viewport.window(shape, view)


def reload(sem_image: np.ndarray, mask: np.ndarray, view: viewport.View | None = None,
           replaced: editing.EditorBase | None = None,
           held: np.ndarray | None = None, **editor: object
           ) -> tuple[gr.ImageEditor, editing.EditorBase]:
    """(editor update, base) for putting ``mask`` into the editor, showing the view's window,
    in place of what the editor held: ``held`` (default: ``replaced``'s mask) in ``replaced``'s
    window. ``editor``: more gr.ImageEditor settings (brush sizes)."""
    window = editor_window(mask.shape, view)
    if held is None and replaced is not None:
        held = replaced.mask
    return (gr.ImageEditor(value=editing.editor_value(sem_image, mask, window), **editor),
            editing.EditorBase(mask, held, window, replaced.window if replaced else None))


def masks(studio: Studio, current: int, value: dict | None, loaded: editing.EditorBase | None):
    """(sample view, predicted mask, mask as edited now) of the sample in the editor."""
    view = studio.view(current)
    predicted = view.mask if view.mask is not None else np.zeros(view.sem_image.shape, bool)
    if loaded is None or loaded.mask.shape != predicted.shape:
        return view, predicted, editing.edited_mask(value, predicted)
    return view, predicted, loaded.edited(value)


def build_view_bar() -> ViewBar:
    """Zoom choices, pan buttons and the line saying what part of the image is shown."""
    with gr.Row(equal_height=True):
        zoom = gr.Radio(list(viewport.ZOOMS), value="Fit", show_label=False, scale=3,
                        elem_id="view-zoom", container=False)
        pans = {step: gr.Button(arrow, size="sm", scale=0, min_width=36, elem_id=f"view-{name}")
                for step, arrow, name in (((-1, 0), "◀", "left"), ((0, -1), "▲", "up"),
                                          ((0, 1), "▼", "down"), ((1, 0), "▶", "right"))}
    status = gr.Markdown(elem_id="view-status")
    return ViewBar(gr.State(None), zoom, status, pans)


def build_panel(bar: ViewBar) -> ToolPanel:
    """The tool radio, its settings, the status line and the shape/undo buttons."""
    with gr.Group():
        mode = gr.Radio(TOOLS, value=BOX_ADD, elem_id="rect-mode",
                        label="Tool on the result image (key in brackets)")
        with gr.Row():
            shift_nm = gr.Number(value=4.0, label="Move edges by (nm, < 0 inwards)",
                                 elem_id="shift-nm")
            tolerance = gr.Slider(2, 12, value=wand.DEFAULT_TOLERANCE, step=0.5,
                                  label="Magic wand stops at edges above (× noise gradient)",
                                  elem_id="wand-tolerance")
        status = gr.Markdown(elem_id="rect-status")
        with gr.Row():
            whole_btn = gr.Button(WHOLE, size="sm", elem_id="threshold-all-btn")
            whole_other_btn = gr.Button(WHOLE_INVERT, size="sm", elem_id="threshold-all-other-btn")
        with gr.Row():
            cancel_btn = gr.Button("Cancel shape [Esc]", size="sm", elem_id="shape-cancel-btn")
            close_btn = gr.Button("Close polygon [Enter]", size="sm",
                                  elem_id="polygon-close-btn")
            vertex_undo_btn = gr.Button("Undo vertex [Backspace]", size="sm",
                                        elem_id="polygon-undo-btn")
            undo_btn = gr.Button("↶ Undo last tool [U]", size="sm", elem_id="undo-tool-btn")
        gr.Markdown(f"<span class='sg-muted'>{KEY_HELP}</span>", elem_id="tool-keys")
    return ToolPanel(bar, mode, shift_nm, tolerance, status, gr.State(None), gr.State([]),
                     gr.State([]), gr.State(None), gr.State(None), gr.State(0), cancel_btn,
                     close_btn, vertex_undo_btn, undo_btn, whole_btn, whole_other_btn)
