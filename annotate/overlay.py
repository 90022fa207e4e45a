"""Review tab's "Design overlay" section: attach, register, nudge, CD cuts, export, start a correction.

Keys 4 / 6 / 8 / 2 nudge the design left / right / up / down by the step (nm) while the
section is open; every nudge is saved with the sample's registration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import gradio as gr

from annotate import overlay_view as ov
from annotate.studio import Studio
from semgan.design.epe import cd_along_cut
from semgan.design.placement import Registration
from semgan.design.site import site_markers, write_site
from semgan.errors import SemganError
from store import StoreError

DESIGN_TYPES = [".gds", ".gds2", ".oas", ".oasis", ".glp"]
NUDGES = {"left": (-1, 0), "right": (1, 0), "up": (0, 1), "down": (0, -1)}
NUDGE_LABELS = {"left": "← [4]", "right": "→ [6]", "up": "↑ [8]", "down": "↓ [2]"}


@dataclass
class OverlayUI:
    """The section's outputs; app.py wires ``start_btn`` to the Correct tab."""

    start_btn: gr.Button
    note: gr.Markdown
    over_sem: gr.Image
    over_pred: gr.Image
    epe_map: gr.Image
    summary: gr.HTML
    table: gr.Dataframe

    @property
    def show_outputs(self) -> list[gr.components.Component]:
        return [self.note, self.over_sem, self.over_pred, self.epe_map, self.summary, self.table]

    def fill(self, shown: ov.DesignShown) -> dict:
        """The outputs' updates for what ``ov.show`` found."""
        return {self.note: shown.note, self.over_sem: shown.over_sem,
                self.over_pred: shown.over_pred, self.epe_map: shown.epe_map,
                self.summary: shown.summary, self.table: shown.rows}


@dataclass
class DesignForm:
    """The section's inputs: the attach form, nudges, the CD cut, export."""

    design_file: gr.File
    cell: gr.Textbox
    layer: gr.Textbox
    center: gr.Textbox
    search: gr.Number
    signal: gr.Radio
    attach_btn: gr.Button
    step: gr.Number
    nudge_btns: dict[str, gr.Button]
    cut_axis: gr.Radio
    cut_at: gr.Number
    cut_btn: gr.Button
    cd_table: gr.Dataframe
    export_btn: gr.Button
    export_note: gr.Markdown


def nudge(studio: Studio, sample_id: int, dx_nm: float, dy_nm: float) -> str:
    """Move the stored registration by hand; a note saying so."""
    design = studio.store.sample_design(sample_id)
    if design is None or design.registration is None:
        return "Attach a design first."
    moved = Registration.from_dict(design.registration).nudged(dx_nm, dy_nm)
    studio.store.save_registration(sample_id, moved.to_dict())
    return f"Nudged by {dx_nm:+g}, {dy_nm:+g} nm."


def export(studio: Studio, sample_id: int) -> str:
    """GDS/OASIS contours, markers.lyrdb, registration.json, epe.json into workspace/exports/."""
    view = ov.site_view(studio, sample_id)
    if view is None:
        return "Attach a design first."
    label = f"sample {sample_id}"
    masks = {} if view.mask is None else {"prediction": view.mask}
    pair = studio.store.latest_pair(sample_id)
    if pair is not None and pair.kind != "accepted":
        masks["correction"] = studio.store.pair_mask(pair)
    confidence = None if view.probability is None else abs(2 * view.probability - 1)
    markers = site_markers(view.result, label, confidence)
    production = studio.view(sample_id).prediction
    for model in studio.models():  # other models that already predicted this sample
        other = studio.store.get_prediction(sample_id, model.version)
        if other is not None and production is not None and other.id != production.id:
            markers += site_markers(view.result, f"{label} v{model.version} vs "
                                    f"v{production.model_version}", None,
                                    studio.store.prediction_mask(other), view.mask, worst=0)
    folder = studio.exports_dir / f"design_sample_{sample_id}"
    files = write_site(folder, view.result, view.layout, label, masks, markers)
    return f"Wrote {len(markers)} markers and {', '.join(p.name for p in files.values())} to `{folder}`."


def _cd_rows(studio: Studio, sample_id: int | None, axis: str, position) -> list[list]:
    view = None if sample_id is None else ov.site_view(studio, sample_id)
    if view is None or view.probability is None or position is None:
        return []
    cuts = cd_along_cut(view.layout, view.result.registration, view.probability, axis,
                        float(position))
    return [[round(c.start_px, 2), round(c.stop_px, 2), round(c.design_cd_nm, 2),
             "missing" if not math.isfinite(c.predicted_cd_nm) else round(c.predicted_cd_nm, 2),
             "—" if not math.isfinite(c.error_nm) else round(c.error_nm, 2)] for c in cuts]


def _attach_form() -> dict:
    """The design file, cell, layer, centre, search and signal inputs (DesignForm fields)."""
    with gr.Row():
        form = {"design_file": gr.File(file_types=DESIGN_TYPES, elem_id="design-file",
                                       label="Design file (GDS, OASIS or GLP)")}
        with gr.Column():
            form["cell"] = gr.Textbox(label="Cell (blank: the single top cell)", max_lines=1,
                                      elem_id="design-cell")
            form["layer"] = gr.Textbox(value="34/0", label="Layer/datatype", max_lines=1,
                                       elem_id="design-layer")
            form["center"] = gr.Textbox(
                label="Site centre X,Y in nm (design coordinates)", max_lines=1,
                placeholder="blank: from the sample's name, else search the cell",
                elem_id="design-center")
            form["search"] = gr.Number(value=200, minimum=0, label="Search ± (nm)",
                                       elem_id="design-search")
            form["signal"] = gr.Radio(
                ["auto", "prediction", "edges", "both"], value="auto", elem_id="design-signal",
                label="Register on (auto: the prediction, else the SEM's edges)")
    return form


def _layout() -> tuple[DesignForm, OverlayUI]:
    """The section's components, in page order."""
    form = _attach_form()
    form["attach_btn"] = gr.Button("Attach and register", variant="primary",
                                   elem_id="design-attach-btn")
    note = gr.Markdown(elem_id="design-note")
    with gr.Row():
        form["step"] = gr.Number(value=4, minimum=0.1, label="Nudge step (nm)",
                                 elem_id="design-step")
        form["nudge_btns"] = {name: gr.Button(NUDGE_LABELS[name], size="sm",
                                              elem_id=f"design-nudge-{name}") for name in NUDGES}
    picture = {"format": "png", "interactive": False}
    with gr.Row():
        pictures = [
            gr.Image(label="Design (magenta) and prediction (cyan) over the SEM",
                     elem_id="design-over-sem", **picture),
            gr.Image(label="Design over the predicted layout", elem_id="design-over-pred",
                     **picture),
            gr.Image(label="Signed EPE per segment (blue shrunk, red grown, yellow missing)",
                     elem_id="design-epe-map", **picture)]
    summary = gr.HTML(elem_id="design-epe-summary")
    table = gr.Dataframe(headers=ov.EPE_HEADERS, interactive=False, label="Worst EPE segments",
                         elem_id="design-epe-table")
    with gr.Row():
        form["cut_axis"] = gr.Radio(["row", "col"], value="row", label="CD cut line along a")
        form["cut_at"] = gr.Number(value=None, label="at (px)", elem_id="design-cut-at")
        form["cut_btn"] = gr.Button("Measure CD", size="sm", elem_id="design-cut-btn")
    form["cd_table"] = gr.Dataframe(headers=ov.CD_HEADERS, interactive=False,
                                    label="CD at the cut", elem_id="design-cd-table")
    with gr.Row():
        start_btn = gr.Button("✎ Start correction from the design", elem_id="design-correct-btn")
        form["export_btn"] = gr.Button("Export contours (GDS/OASIS) + markers (.lyrdb)",
                                       elem_id="design-export-btn")
    form["export_note"] = gr.Markdown(elem_id="design-export-note")
    return DesignForm(**form), OverlayUI(start_btn, note, *pictures, summary, table)


def build(studio: Studio, sample: gr.State) -> OverlayUI:
    """Lay out the section (an accordion in the Review tab) and wire its own events."""
    with gr.Accordion("Design overlay (GDS/OASIS): registration, EPE and CD against design",
                      open=False, elem_id="design-box"):
        form, ui = _layout()
    _wire(studio, form, ui, sample)
    return ui


def _wire(studio: Studio, form: DesignForm, ui: OverlayUI, sample: gr.State) -> None:
    """Attach, nudge, measure, export; a new sample redraws the section."""
    def guarded(action):
        def handler(current, *args):
            if current is None:
                return ui.fill(ov.show(studio, None, "Pick a sample first."))
            try:
                message = action(current, *args)
            except (SemganError, StoreError, OSError) as exc:
                gr.Warning(str(exc))
                return {ui.note: f"Not done: {exc}"}
            return ui.fill(ov.show(studio, current, message))
        return handler

    def do_attach(current, upload, cell_name, layer_text, centre, radius, use):
        if not upload:
            raise SemganError("choose a design file (GDS, OASIS or GLP) first")
        path = upload if isinstance(upload, str) else upload.name
        return ov.attach(studio, current, path, cell_name, layer_text, centre, float(radius or 0),
                         use or "auto")

    def do_export(current):
        if current is None:
            return "Pick a sample first."
        try:
            return export(studio, current)
        except (SemganError, StoreError, OSError) as exc:
            gr.Warning(str(exc))
            return f"Export failed: {exc}"

    form.attach_btn.click(guarded(do_attach), [sample, form.design_file, form.cell, form.layer,
                                               form.center, form.search, form.signal],
                          ui.show_outputs)
    for name, (sx, sy) in NUDGES.items():
        form.nudge_btns[name].click(guarded(lambda current, size, sx=sx, sy=sy: nudge(
            studio, current, sx * float(size or 0), sy * float(size or 0))),
            [sample, form.step], ui.show_outputs, show_progress="hidden")
    form.cut_btn.click(lambda current, axis, at: _cd_rows(studio, current, axis, at),
                       [sample, form.cut_axis, form.cut_at], form.cd_table)
    form.export_btn.click(do_export, [sample], form.export_note)
    sample.change(lambda current: ui.fill(ov.show(studio, current)), [sample], ui.show_outputs,
                  show_progress="hidden")


def start_mask(studio: Studio, sample_id: int | None):
    """The registered design clip on the sample's pixels, or None without one."""
    view = None if sample_id is None else ov.site_view(studio, sample_id)
    return None if view is None else view.result.design_mask


def wire_correction(studio: Studio, design: OverlayUI, correct_ui, tabs: gr.Tabs, queue: gr.State,
                    sample: gr.State) -> None:
    """"Start correction from the design": the registered clip into the editor, then its tab."""
    from annotate import correct

    def start(current, ids):
        mask = start_mask(studio, current)
        if mask is None:
            raise gr.Error("Attach and register a design to this sample first.")
        return correct_ui.fill(correct.load(
            studio, current, ids, "Started from the registered design clip: edit it to what "
            "printed, then save.", start_mask=mask))

    # Load first, then switch: the Correct tab's select sees the editor loaded and skips.
    design.start_btn.click(start, [sample, queue], correct_ui.load_outputs).success(
        lambda: gr.Tabs(selected="correct"), None, tabs)
