"""What a click on the Correct tab's result image does with the selected tool, and its undo.

Handlers return a ``correct_tools.Outcome`` (what they change, by name), which ``wire``
renders onto the components. The preview shows the zoom/pan view's window
(``annotate.viewport``); clicks are mapped back through it.
"""

from __future__ import annotations

import gradio as gr
import numpy as np

from annotate import correct_tools as tools
from annotate import editing, polygon, render, stamp, threshold, viewport, wand
from annotate.correct_tools import Outcome
from annotate.studio import Studio


def name(mode: str) -> str:
    """A tool's label without its key."""
    return mode.split(" [")[0]


def apply_tool(mode: str, mask: np.ndarray, sem_image: np.ndarray, point: tuple[int, int],
               corner: tuple[int, int] | None, shift_nm: float, nm_per_px: float,
               tolerance: float = wand.DEFAULT_TOLERANCE) -> np.ndarray:
    """The mask after a one-click tool, or a box tool's second click (``corner``: the first)."""
    if mode == tools.FLIP:
        return editing.flip_region(mask, point)
    if mode == tools.KEEP:
        return editing.keep_region(mask, point)
    if mode == tools.MOVE:
        return editing.move_region_edges(mask, point, shift_nm, nm_per_px)
    if mode == tools.MOVE_ALL:
        return editing.move_all_edges(mask, shift_nm, nm_per_px)
    if mode in (tools.WAND_ADD, tools.WAND_REMOVE):
        return wand.apply_wand(mask, sem_image, point, mode == tools.WAND_ADD, tolerance)
    if mode in (tools.OTSU, tools.OTSU_INVERT):
        return threshold.threshold_in_box(mask, sem_image, corner, point,
                                          invert=mode == tools.OTSU_INVERT)
    if mode == tools.STAMP:
        try:
            return stamp.copy_to_matches(mask, sem_image, corner, point).mask
        except stamp.StampError:  # the app says why (``act``); the mask stays
            return mask.copy()
    rect = render.rectangle_mask(mask.shape, corner, point)
    return mask | rect if mode == tools.BOX_ADD else mask & ~rect


def threshold_whole(mask: np.ndarray, sem_image: np.ndarray, invert: bool = False) -> np.ndarray:
    """Threshold in box over the whole image (the G / ⇧G buttons)."""
    height, width = mask.shape
    return threshold.threshold_in_box(mask, sem_image, (0, 0), (width - 1, height - 1), invert)


def _box_size(shape: tuple[int, int], corner, point) -> tuple[int, int]:
    """(width, height) in px of the box with these two corners, as the tools draw it."""
    rows, cols = np.nonzero(render.rectangle_mask(shape, corner, point))
    return int(np.ptp(cols)) + 1, int(np.ptp(rows)) + 1


def _box_message(mode: str, shape: tuple[int, int], corner, point, nm: float) -> str:
    width, height = _box_size(shape, corner, point)
    size = f"{width}×{height} px {{}} ({width * nm:g}×{height * nm:g} nm)"
    if mode in (tools.OTSU, tools.OTSU_INVERT):
        side = "the side the mask had" if mode == tools.OTSU else "the other side"
        return f"Thresholded a {size.format('box')}, pattern on {side}"
    return f"{'Added' if mode == tools.BOX_ADD else 'Removed'} a {size.format('rectangle')}"


def _applied(view, predicted, edited, new, message, past, shown, loaded) -> Outcome:
    """After a tool changed the mask: editor and preview reloaded, history pushed."""
    message += f": {int(np.count_nonzero(new != edited))} px changed."
    plain = render.change_picture(view.sem_image, predicted, new)
    return Outcome(preview=tools.preview_file(plain, shown), first_corner=None, vertices=[],
                   status=message, history=[*(past or []), edited], plain=plain).loaded(
        tools.reload(view.sem_image, new, shown, loaded, edited))


def finish_polygon(view, predicted, edited, vertices, mode, past, shown, loaded=None) -> Outcome:
    """Fill or erase the closed polygon."""
    if len(vertices) < 3:
        return Outcome(status="A polygon needs at least 3 vertices.")
    add = mode == tools.POLY_ADD
    new = polygon.apply_polygon(edited, vertices, add)
    shape = polygon.polygon_mask(edited.shape, vertices)
    nm = view.sample.nm_per_px
    message = (f"Polygon {'added' if add else 'removed'}: "
               f"{len(polygon.closed_outline(vertices))} vertices, {int(shape.sum())} px "
               f"({shape.sum() * nm * nm:g} nm²)")
    return _applied(view, predicted, edited, new, message, past, shown, loaded)


def _polygon_step(plain, vertices, point, mode, shown) -> Outcome | None:
    """A vertex click: the path drawn on the last result picture (the mask is not needed,
    which keeps vertex clicks quick on large images), or None when it closes."""
    radius = polygon.close_radius(plain.shape)
    vertices, closed = polygon.add_vertex([tuple(v) for v in vertices or []], point, radius)
    if closed:
        return None
    picture = polygon.draw_path(plain, vertices, mode == tools.POLY_ADD)
    x, y = vertices[-1]
    count = f"{len(vertices)} vert{'ex' if len(vertices) == 1 else 'ices'}"
    status = (f"Polygon: {count}, the last at x = {x}, y = {y} px. Click the "
              "first vertex (yellow box) or press Enter to close; Backspace drops the last.")
    return Outcome(preview=tools.preview_file(picture, shown), first_corner=None,
                   vertices=vertices, status=status)


def locate(current, corner, vertices, mode, shown, last, pending, evt: gr.SelectData) -> Outcome:
    """A click on the result image, first step: what needs no mask (a polygon vertex, a box's
    first corner) is done here, without the editor's canvas being uploaded; anything else is
    handed to ``act`` by storing the point and bumping ``pending``."""
    if current is None or last is None:
        return Outcome(status="Pick a sample first.")
    point = viewport.to_image(last.shape, shown, tools.PREVIEW_PX, evt.index)
    if mode in tools.POLYGON_TOOLS:
        step = _polygon_step(last, vertices, point, mode, shown)
        if step is None:  # it closes: the mask is needed
            return Outcome(point="close", pending=(pending or 0) + 1)
        return step
    if corner is None and mode in tools.BOX_TOOLS:
        picture = render.mark_point(last, point, mode != tools.BOX_REMOVE)
        return Outcome(preview=tools.preview_file(picture, shown), first_corner=point, vertices=[],
                       status=f"First corner at x = {point[0]}, y = {point[1]} px: click the "
                              "opposite corner.")
    return Outcome(point=point, pending=(pending or 0) + 1)


def act(studio: Studio, current, value, loaded, corner, vertices, mode, shift, tolerance,
        past, shown, point) -> Outcome:
    """A click on the result image, second step: the selected tool changes the mask at
    ``point`` (or closes the polygon when ``point`` is "close")."""
    if current is None or point is None:
        return Outcome()
    view, predicted, edited = tools.masks(studio, current, value, loaded)
    if point == "close":
        return finish_polygon(view, predicted, edited, [tuple(v) for v in vertices or []],
                              mode, past, shown, loaded)
    point = tuple(point)
    nm = view.sample.nm_per_px
    if mode == tools.STAMP:
        return _copied(view, predicted, edited, corner, point, past, shown, loaded)
    new = apply_tool(mode, edited, view.sem_image, point, corner, float(shift or 0), nm,
                     float(tolerance or wand.DEFAULT_TOLERANCE))
    if mode in tools.BOX_TOOLS:
        message = _box_message(mode, edited.shape, corner, point, nm)
    elif mode == tools.MOVE_ALL:
        message = f"{name(mode)} by {float(shift or 0):g} nm"
    else:
        message = f"{name(mode)} at x = {point[0]}, y = {point[1]} px"
    return _applied(view, predicted, edited, new, message, past, shown, loaded)


def _copied(view, predicted, edited, corner, point, past, shown, loaded) -> Outcome:
    """Copy box to matches: the box's layout put wherever the SEM matches it."""
    try:
        result = stamp.copy_to_matches(edited, view.sem_image, corner, point)
    except stamp.StampError as error:
        return Outcome(status=str(error), first_corner=None,
                       preview=tools.preview_file(render.change_picture(
                           view.sem_image, predicted, edited), shown))
    matches = len(result.places) - 1
    width, height = _box_size(edited.shape, corner, point)
    message = (f"{name(tools.STAMP)}: a {width}×{height} px box, "
               f"{matches} match{'' if matches == 1 else 'es'}")
    return _applied(view, predicted, edited, result.mask, message, past, shown, loaded)


def whole_image(studio: Studio, current, value, loaded, past, shown, invert: bool) -> Outcome:
    """The Threshold whole image buttons: any half-drawn shape is dropped."""
    if current is None:
        return Outcome(status="Pick a sample first.")
    view, predicted, edited = tools.masks(studio, current, value, loaded)
    new = threshold_whole(edited, view.sem_image, invert)
    height, width = edited.shape
    side = "the other side" if invert else "the side the mask had"
    message = f"Thresholded the whole image ({width}×{height} px), pattern on {side}"
    return _applied(view, predicted, edited, new, message, past, shown, loaded)


def close_polygon(studio: Studio, current, value, loaded, vertices, mode, past, shown) -> Outcome:
    """The Close polygon button (or Enter)."""
    if current is None or not vertices or mode not in tools.POLYGON_TOOLS:
        return Outcome(status="No polygon to close.")
    view, predicted, edited = tools.masks(studio, current, value, loaded)
    return finish_polygon(view, predicted, edited, [tuple(v) for v in vertices], mode, past,
                          shown, loaded)


def undo_vertex(vertices, mode, plain, shown) -> Outcome:
    """Drop the polygon's last vertex."""
    if not vertices or plain is None:
        return Outcome(status="No vertex to undo.")
    vertices = [tuple(v) for v in vertices[:-1]]
    picture = polygon.draw_path(plain, vertices, mode == tools.POLY_ADD)
    return Outcome(preview=tools.preview_file(picture, shown), vertices=vertices,
                   status=f"Polygon: {len(vertices)} vertices left." if vertices
                   else "Polygon emptied.")


def cancel_shape(plain, shown, message: str = "Shape cancelled.") -> Outcome:
    """Forget a half-drawn box or polygon."""
    preview = tools.preview_file(plain, shown) if plain is not None else tools.KEEP
    return Outcome(preview=preview, first_corner=None, vertices=[], status=message)


def tool_changed(mode, plain, vertices, corner, shown) -> Outcome:
    """A new tool: any half-drawn shape is dropped and the tool's hint is shown."""
    if vertices or corner is not None:
        return cancel_shape(plain, shown, tools.hint(mode))
    return Outcome(first_corner=None, vertices=[], status=tools.hint(mode))


def change_view(plain, shown, vertices, corner, mode, zoom=None, step=None) -> Outcome:
    """Zoom (a ZOOMS label) or pan (dx, dy) the result image."""
    if plain is None:
        return Outcome()
    if zoom is not None:
        shown = viewport.zoomed(plain.shape, shown, viewport.zoom_of(zoom))
    if step is not None:
        shown = viewport.panned(plain.shape, shown, *step)
    return Outcome(preview=tools.preview_file(tools.marked(plain, vertices, corner, mode), shown),
                   view=shown, view_status=viewport.describe(plain.shape, shown))


def undo_tool(studio: Studio, current, past, shown,
              loaded: editing.EditorBase | None = None) -> Outcome:
    """Put back the mask from before the last tool."""
    if current is None or not past:
        return Outcome(status="Nothing to undo.")
    view = studio.view(current)
    predicted = view.mask if view.mask is not None else np.zeros(view.sem_image.shape, bool)
    plain = render.change_picture(view.sem_image, predicted, past[-1])
    return Outcome(preview=tools.preview_file(plain, shown),
                   status="Undid the last tool (strokes drawn after it are undone too).",
                   history=past[:-1], plain=plain).loaded(
        tools.reload(view.sem_image, past[-1], shown, loaded))


def wire(studio: Studio, panel: tools.ToolPanel, targets: tools.Targets, editor_sample) -> None:
    """Connect the tool panel, the view bar and the result image's clicks."""
    editor, base, preview, shown = targets["editor"], targets["base"], targets["preview"], \
        panel.bar.view
    render = targets.render
    mask_outputs = targets.outputs("editor", "base", "preview", "first_corner", "vertices",
                                   "status", "history", "plain")
    def on_select(current, corner, vertices, mode, shown_view, last, pending,
                  evt: gr.SelectData) -> dict:  # named: Gradio passes evt by its annotation
        return render(locate(current, corner, vertices, mode, shown_view, last, pending, evt))

    preview.select(on_select,
                   [editor_sample, panel.first_corner, panel.vertices, panel.mode, shown,
                    panel.plain, panel.pending],
                   targets.outputs("preview", "first_corner", "vertices", "status", "point",
                                   "pending"))
    # Only a change of ``pending`` (a tool to apply) uploads the editor's canvas.
    panel.pending.change(lambda *args: render(act(studio, *args)),
                         [editor_sample, editor, base, panel.first_corner, panel.vertices,
                          panel.mode, panel.shift_nm, panel.tolerance, panel.history, shown,
                          panel.point], mask_outputs, **tools.MASK_EVENTS)
    panel.close_btn.click(lambda *args: render(close_polygon(studio, *args)),
                          [editor_sample, editor, base, panel.vertices, panel.mode,
                           panel.history, shown], mask_outputs, **tools.MASK_EVENTS)
    def whole(invert: bool):
        return lambda *args: render(whole_image(studio, *args, invert))

    for button, invert in ((panel.whole_btn, False), (panel.whole_other_btn, True)):
        button.click(whole(invert), [editor_sample, editor, base, panel.history, shown],
                     mask_outputs, **tools.MASK_EVENTS)
    panel.vertex_undo_btn.click(lambda *args: render(undo_vertex(*args)),
                                [panel.vertices, panel.mode, panel.plain, shown],
                                targets.outputs("preview", "vertices", "status"))
    shape_outputs = targets.outputs("preview", "first_corner", "vertices", "status")
    panel.cancel_btn.click(lambda *args: render(cancel_shape(*args)), [panel.plain, shown],
                           shape_outputs)
    panel.mode.change(lambda *args: render(tool_changed(*args)),
                      [panel.mode, panel.plain, panel.vertices, panel.first_corner, shown],
                      shape_outputs)
    panel.undo_btn.click(lambda *args: render(undo_tool(studio, *args)),
                         [editor_sample, panel.history, shown, base],
                         targets.outputs("editor", "base", "preview", "status", "history",
                                         "plain"), **tools.MASK_EVENTS)
    marks = [panel.plain, shown, panel.vertices, panel.first_corner, panel.mode]
    view_outputs = targets.outputs("preview", "view", "view_status")
    panel.bar.zoom.input(lambda plain, view, vertices, corner, mode, zoom: render(change_view(
        plain, view, vertices, corner, mode, zoom=zoom)), [*marks, panel.bar.zoom], view_outputs)

    def pan(step):
        return lambda plain, view, vertices, corner, mode: render(change_view(
            plain, view, vertices, corner, mode, step=step))

    for step, button in panel.bar.pans.items():
        button.click(pan(step), marks, view_outputs)
