"""What a click on the Correct tab's result image does with the selected tool, and its undo.

Handlers that change the mask return, in this order: editor, base mask, preview, first
corner, polygon vertices, status, undo history, unmarked result picture. The preview shows the zoom/pan
view's window (``annotate.viewport``); clicks are mapped back through it.
"""

from __future__ import annotations

import gradio as gr
import numpy as np

from annotate import correct_tools as tools
from annotate import editing, polygon, render, threshold, viewport, wand
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
    rect = render.rectangle_mask(mask.shape, corner, point)
    return mask | rect if mode == tools.BOX_ADD else mask & ~rect


def _box_message(mode: str, shape: tuple[int, int], corner, point, nm: float) -> str:
    rows, cols = np.nonzero(render.rectangle_mask(shape, corner, point))
    height, width = int(np.ptp(rows)) + 1, int(np.ptp(cols)) + 1
    size = f"{width}×{height} px {{}} ({width * nm:g}×{height * nm:g} nm)"
    if mode in (tools.OTSU, tools.OTSU_INVERT):
        side = "the side the mask had" if mode == tools.OTSU else "the other side"
        return f"Thresholded a {size.format('box')}, pattern on {side}"
    return f"{'Added' if mode == tools.BOX_ADD else 'Removed'} a {size.format('rectangle')}"


def _applied(view, predicted, edited, new, message, past, shown) -> list:
    """Outputs after a tool changed the mask: editor and preview reloaded, history pushed."""
    message += f": {int(np.count_nonzero(new != edited))} px changed."
    plain = render.change_picture(view.sem_image, predicted, new)
    return [*tools.reload(view.sem_image, new, edited), tools.preview_file(plain, shown), None,
            [], message, [*(past or []), edited], plain]


def finish_polygon(view, predicted, edited, vertices, mode, past, shown) -> list:
    """Fill or erase the closed polygon (outputs as after any tool)."""
    if len(vertices) < 3:
        return [gr.skip()] * 5 + ["A polygon needs at least 3 vertices.", gr.skip(), gr.skip()]
    add = mode == tools.POLY_ADD
    new = polygon.apply_polygon(edited, vertices, add)
    shape = polygon.polygon_mask(edited.shape, vertices)
    nm = view.sample.nm_per_px
    message = (f"Polygon {'added' if add else 'removed'}: "
               f"{len(polygon.closed_outline(vertices))} vertices, {int(shape.sum())} px "
               f"({shape.sum() * nm * nm:g} nm²)")
    return _applied(view, predicted, edited, new, message, past, shown)


def _polygon_step(plain, vertices, point, mode, shown) -> list | None:
    """A vertex click: outputs with the path drawn on the last result picture (the mask is not
    needed, which keeps vertex clicks quick on large images), or None when it closes."""
    radius = polygon.close_radius(plain.shape)
    vertices, closed = polygon.add_vertex([tuple(v) for v in vertices or []], point, radius)
    if closed:
        return None
    picture = polygon.draw_path(plain, vertices, mode == tools.POLY_ADD)
    x, y = vertices[-1]
    count = f"{len(vertices)} vert{'ex' if len(vertices) == 1 else 'ices'}"
    status = (f"Polygon: {count}, the last at x = {x}, y = {y} px. Click the "
              "first vertex (yellow box) or press Enter to close; Backspace drops the last.")
    return [gr.skip(), gr.skip(), tools.preview_file(picture, shown), None, vertices, status,
            gr.skip(), gr.skip()]


def locate(current, corner, vertices, mode, shown, last, pending, evt: gr.SelectData) -> list:
    """A click on the result image, first step: what needs no mask (a polygon vertex, a box's
    first corner) is done here, without the editor's canvas being uploaded; anything else is
    handed to ``act`` by storing the point and bumping ``pending``.

    Outputs: preview, first corner, vertices, status, point for ``act``, pending.
    """
    if current is None or last is None:
        return [gr.skip()] * 3 + ["Pick a sample first.", gr.skip(), gr.skip()]
    point = viewport.to_image(last.shape, shown, tools.PREVIEW_PX, evt.index)
    if mode in tools.POLYGON_TOOLS:
        step = _polygon_step(last, vertices, point, mode, shown)
        if step is None:  # it closes: the mask is needed
            return [gr.skip()] * 4 + ["close", (pending or 0) + 1]
        return [*step[2:6], gr.skip(), gr.skip()]
    if corner is None and mode in tools.BOX_TOOLS:
        picture = render.mark_point(last, point, mode != tools.BOX_REMOVE)
        return [tools.preview_file(picture, shown), point, [],
                f"First corner at x = {point[0]}, y = {point[1]} px: click the opposite "
                "corner.", gr.skip(), gr.skip()]
    return [gr.skip()] * 4 + [point, (pending or 0) + 1]


def act(studio: Studio, current, value, loaded, corner, vertices, mode, shift, tolerance,
        past, shown, point) -> list:
    """A click on the result image, second step: the selected tool changes the mask at
    ``point`` (or closes the polygon when ``point`` is "close")."""
    if current is None or point is None:
        return [gr.skip()] * 8
    view, predicted, edited = tools.masks(studio, current, value, loaded)
    if point == "close":
        return finish_polygon(view, predicted, edited, [tuple(v) for v in vertices or []],
                              mode, past, shown)
    point = tuple(point)
    nm = view.sample.nm_per_px
    new = apply_tool(mode, edited, view.sem_image, point, corner, float(shift or 0), nm,
                     float(tolerance or wand.DEFAULT_TOLERANCE))
    if mode in tools.BOX_TOOLS:
        message = _box_message(mode, edited.shape, corner, point, nm)
    elif mode == tools.MOVE_ALL:
        message = f"{name(mode)} by {float(shift or 0):g} nm"
    else:
        message = f"{name(mode)} at x = {point[0]}, y = {point[1]} px"
    return _applied(view, predicted, edited, new, message, past, shown)


def close_polygon(studio: Studio, current, value, loaded, vertices, mode, past, shown) -> list:
    """The Close polygon button (or Enter)."""
    if current is None or not vertices or mode not in tools.POLYGON_TOOLS:
        return [gr.skip()] * 5 + ["No polygon to close.", gr.skip(), gr.skip()]
    view, predicted, edited = tools.masks(studio, current, value, loaded)
    return finish_polygon(view, predicted, edited, [tuple(v) for v in vertices], mode, past,
                          shown)


def undo_vertex(vertices, mode, plain, shown) -> tuple:
    """Drop the polygon's last vertex: (preview, vertices, status)."""
    if not vertices or plain is None:
        return gr.skip(), gr.skip(), "No vertex to undo."
    vertices = [tuple(v) for v in vertices[:-1]]
    picture = polygon.draw_path(plain, vertices, mode == tools.POLY_ADD)
    return (tools.preview_file(picture, shown), vertices,
            f"Polygon: {len(vertices)} vertices left." if vertices else "Polygon emptied.")


def cancel_shape(plain, shown, message: str = "Shape cancelled.") -> tuple:
    """Forget a half-drawn box or polygon: (preview, first corner, vertices, status)."""
    return (tools.preview_file(plain, shown) if plain is not None else gr.skip(), None, [],
            message)


def tool_changed(mode, plain, vertices, corner, shown) -> tuple:
    """A new tool: any half-drawn shape is dropped and the tool's hint is shown."""
    if vertices or corner is not None:
        return cancel_shape(plain, shown, tools.hint(mode))
    return gr.skip(), None, [], tools.hint(mode)


def change_view(plain, shown, vertices, corner, mode, zoom=None, step=None) -> tuple:
    """Zoom (a ZOOMS label) or pan (dx, dy) the result image: (preview, view, view line)."""
    if plain is None:
        return gr.skip(), gr.skip(), gr.skip()
    if zoom is not None:
        shown = viewport.zoomed(plain.shape, shown, viewport.zoom_of(zoom))
    if step is not None:
        shown = viewport.panned(plain.shape, shown, *step)
    return (tools.preview_file(tools.marked(plain, vertices, corner, mode), shown), shown,
            viewport.describe(plain.shape, shown))


def undo_tool(studio: Studio, current, past, shown,
              loaded: editing.EditorBase | None = None) -> tuple:
    """Put back the mask from before the last tool: (editor, base, preview, status, history,
    unmarked picture)."""
    if current is None or not past:
        return gr.skip(), gr.skip(), gr.skip(), "Nothing to undo.", gr.skip(), gr.skip()
    view = studio.view(current)
    predicted = view.mask if view.mask is not None else np.zeros(view.sem_image.shape, bool)
    plain = render.change_picture(view.sem_image, predicted, past[-1])
    replaced = loaded.mask if loaded is not None else None
    return (*tools.reload(view.sem_image, past[-1], replaced), tools.preview_file(plain, shown),
            "Undid the last tool (strokes drawn after it are undone too).", past[:-1], plain)


def wire(studio: Studio, panel: tools.ToolPanel, editor_sample, editor, base, preview) -> None:
    """Connect the tool panel, the view bar and the result image's clicks."""
    outputs = [editor, base, preview, panel.first_corner, panel.vertices, panel.status,
               panel.history, panel.plain]
    shown = panel.bar.view

    preview.select(locate, [editor_sample, panel.first_corner, panel.vertices, panel.mode, shown,
                            panel.plain, panel.pending],
                   [preview, panel.first_corner, panel.vertices, panel.status, panel.point,
                    panel.pending])
    # Only a change of ``pending`` (a tool to apply) uploads the editor's canvas.
    panel.pending.change(lambda *args: act(studio, *args),
                         [editor_sample, editor, base, panel.first_corner, panel.vertices,
                          panel.mode, panel.shift_nm, panel.tolerance, panel.history, shown,
                          panel.point], outputs)
    panel.close_btn.click(lambda *args: close_polygon(studio, *args),
                          [editor_sample, editor, base, panel.vertices, panel.mode,
                           panel.history, shown], outputs)
    panel.vertex_undo_btn.click(undo_vertex, [panel.vertices, panel.mode, panel.plain, shown],
                                [preview, panel.vertices, panel.status])
    shape_outputs = [preview, panel.first_corner, panel.vertices, panel.status]
    panel.cancel_btn.click(cancel_shape, [panel.plain, shown], shape_outputs)
    panel.mode.change(tool_changed, [panel.mode, panel.plain, panel.vertices, panel.first_corner,
                                     shown], shape_outputs)
    panel.undo_btn.click(lambda *args: undo_tool(studio, *args),
                         [editor_sample, panel.history, shown, base],
                         [editor, base, preview, panel.status, panel.history, panel.plain])
    marks = [panel.plain, shown, panel.vertices, panel.first_corner, panel.mode]
    view_outputs = [preview, shown, panel.bar.status]
    panel.bar.zoom.input(lambda plain, view, vertices, corner, mode, zoom: change_view(
        plain, view, vertices, corner, mode, zoom=zoom), [*marks, panel.bar.zoom], view_outputs)

    def pan(step):
        return lambda plain, view, vertices, corner, mode: change_view(
            plain, view, vertices, corner, mode, step=step)

    for step, button in panel.bar.pans.items():
        button.click(pan(step), marks, view_outputs)
