"""The Correct tab's layout and its brush: widths in round nm, sized for the editor's scale."""

from __future__ import annotations

import gradio as gr

from annotate import correct_tools as tools
from annotate import editing
from annotate.studio import Studio

BRUSH_STEPS_NM = (2, 4, 8, 16, 32, 64, 128, 256)  # stroke widths offered, kept if 2–160 px


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


def brush_tools(width_px: int, shape: tuple[int, ...]) -> dict:
    """Brush and eraser sized for ``width_px``-wide strokes (image px) on this image's editor."""
    radius = brush_radius(max(1, round(width_px * editing.edit_scale(shape))))
    return {"brush": gr.Brush(default_size=radius, colors=[editing.BRUSH_COLOR],
                              default_color=editing.BRUSH_COLOR, color_mode="fixed"),
            "eraser": gr.Eraser(default_size=radius)}


def layout(studio: Studio) -> dict:
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
                buttons=["fullscreen"], **brush_tools(4, (256, 256)))
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
