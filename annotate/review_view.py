"""What the Review tab shows of the selected sample: its panels, drawn for one sample.

``show_sample`` computes a ``Shown``; ``SampleViewer.fill`` maps it onto the panels.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from annotate import format as fmt
from annotate import overlay, render
from annotate.studio import Studio
from loop.prediction_uncertainty import uncertainty_map

ZOOM_CHOICES = ["off", "2×", "4×", "8×"]
IMAGE_HEIGHT = 360
EMPTY_QUEUE = "### The queue is empty\nUpload SEM images below, or relax the filters."


@dataclass(frozen=True)
class Shown:
    """What the sample panels show (``SampleViewer.fill`` maps it onto them)."""

    sample_id: int | None
    header: str
    zoom_center: tuple[int, int] | None = None
    badge: str = ""
    note: str = ""
    sem: str | None = None  # PNG paths
    prediction: str | None = None
    overlay: str | None = None
    zoom: str | None = None
    zoom_visible: bool = False
    metrics: str = ""


@dataclass
class SampleViewer:
    """The selected sample's panels and the controls of how it is drawn."""

    zoom_center: gr.State
    sample: gr.State  # the app's current sample
    header: gr.Markdown
    badge: gr.HTML
    note: gr.Markdown
    sem_img: gr.Image
    pred_img: gr.Image
    overlay_img: gr.Image
    zoom_img: gr.Image
    metrics: gr.HTML
    show_contour: gr.Checkbox
    opacity: gr.Slider
    zoom_factor: gr.Radio
    show_unc: gr.Checkbox

    @property
    def outputs(self) -> list[gr.components.Component]:
        return [self.zoom_center, self.sample, self.header, self.badge, self.note, self.sem_img,
                self.pred_img, self.overlay_img, self.zoom_img, self.metrics]

    @property
    def look(self) -> list[gr.components.Component]:
        """``show_sample``'s drawing arguments, in its order."""
        return [self.show_contour, self.opacity, self.zoom_factor, self.zoom_center,
                self.show_unc]

    def fill(self, shown: Shown) -> dict:
        """The panels' updates for one shown sample."""
        return {self.zoom_center: shown.zoom_center, self.sample: shown.sample_id,
                self.header: shown.header, self.badge: shown.badge, self.note: shown.note,
                self.sem_img: shown.sem, self.pred_img: shown.prediction,
                self.overlay_img: shown.overlay,
                self.zoom_img: gr.Image(value=shown.zoom, visible=shown.zoom_visible),
                self.metrics: shown.metrics}


@dataclass
class ReviewButtons:
    """Previous / Accept / Correct / Skip / Next and the status line under them."""

    prev: gr.Button
    accept: gr.Button
    correct: gr.Button
    skip: gr.Button
    next: gr.Button
    status: gr.Markdown


def show_sample(studio: Studio, sample_id: int | None, queue_ids: list[int],
                show_contour: bool, opacity: float, zoom_factor: str,
                zoom_center: tuple[int, int] | None, show_uncertainty: bool = False) -> Shown:
    """What the sample panels show for one sample, or the empty queue's placeholder."""
    if sample_id is None:
        return Shown(None, EMPTY_QUEUE)
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
    zoomed = bool(zoom_center) and factor > 1
    metrics = studio.truth_metrics(view)
    caption = f"Prediction vs {view.truth_label}" if view.truth_label else "Prediction vs truth"
    return Shown(
        sample_id, fmt.sample_header(view.sample, position), zoom_center,
        fmt.drift_badge(view.sample), fmt.prediction_note(view.prediction, model),
        render.png_file(render.enlarge(view.sem_image, grow)),
        None if view.mask is None else
        render.png_file(render.enlarge(render.layout_image(view.mask), grow)),
        render.png_file(render.enlarge(overlay, grow)),
        render.png_file(render.zoom(overlay, zoom_center, factor)) if zoomed else None, zoomed,
        fmt.metrics_html(metrics, caption))


def build_sample_column(studio: Studio, sample: gr.State) -> tuple[dict, ReviewButtons,
                                                              overlay.OverlayUI]:
    """The sample's panels (SampleViewer fields by name), the buttons, the Design section."""
    image = {"format": "png", "interactive": False, "height": IMAGE_HEIGHT}
    parts = {"header": gr.Markdown(elem_id="review-header"),
             "badge": gr.HTML(elem_id="drift-badge"),
             "note": gr.Markdown(elem_id="prediction-note")}
    with gr.Row():
        parts["sem_img"] = gr.Image(label="SEM input", elem_id="sem-image",
                                    buttons=["fullscreen", "download"], **image)
        parts["pred_img"] = gr.Image(label="Predicted layout", elem_id="pred-image",
                                     buttons=["fullscreen", "download"], **image)
        parts["overlay_img"] = gr.Image(label="Overlay (click to zoom)", elem_id="overlay-image",
                                        buttons=["fullscreen"], **image)
    with gr.Row():
        parts["show_contour"] = gr.Checkbox(value=True, label="Show contour")
        parts["opacity"] = gr.Slider(0, 1, value=0.3, step=0.05, label="Fill opacity")
        parts["zoom_factor"] = gr.Radio(ZOOM_CHOICES, value="4×",
                                        label="Zoom (click the overlay)")
        parts["show_unc"] = gr.Checkbox(value=False, label="Unsure pixels (magenta)",
                                        elem_id="show-uncertainty")
    with gr.Row():
        buttons = [gr.Button("◀ Previous [K]", elem_id="prev-btn"),
                   gr.Button("✓ Accept [A]", variant="primary", elem_id="accept-btn"),
                   gr.Button("✎ Correct [C]", elem_id="correct-btn"),
                   gr.Button("Skip [S]", elem_id="skip-btn"),
                   gr.Button("Next ▶ [J]", elem_id="next-btn")]
    status = gr.Markdown(elem_id="review-status")
    parts["metrics"] = gr.HTML(elem_id="truth-metrics")
    parts["zoom_img"] = gr.Image(label="Zoom around the clicked point (nearest neighbour)",
                                 format="png", interactive=False, elem_id="zoom-image",
                                 visible=False, height=420, buttons=["fullscreen"],
                                 elem_classes="sg-pixelated")
    return parts, ReviewButtons(*buttons, status), overlay.build(studio, sample)
