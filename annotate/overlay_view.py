"""What the Design overlay shows: a sample's registered design, its pictures, EPE rows, notes.

Calls ``semgan.design`` (registration, EPE) and the store's designs; the pictures are numpy
drawings like ``annotate.render``. The section's layout and events are in ``annotate.overlay``.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from annotate import render
from annotate.studio import Studio
from loop.predictions import probability_of
from semgan.design.clip import (
    MAX_SEARCH_PX,
    DesignLayout,
    DesignSource,
    center_from_text,
    load_design,
    parse_center,
    parse_layer,
    search_window,
)
from semgan.design.placement import Registration, design_to_pixels
from semgan.design.register import RegistrationConfig
from semgan.design.site import SiteResult, measure, register_site
from semgan.errors import SemganError
from store import StoreError

DESIGN_RGB = (255, 40, 200)  # magenta outline: the design
PREDICTED_RGB = (0, 220, 255)  # cyan outline: the prediction
EPE_SCALE_NM = 10.0  # full colour at ±10 nm
EPE_HEADERS = ["#", "x (nm)", "y (nm)", "EPE (nm)", "outward normal"]
CD_HEADERS = ["from (px)", "to (px)", "design CD (nm)", "predicted CD (nm)", "error (nm)"]
WORST_SHOWN = 15
SHOW_PX = 360


@dataclass(frozen=True)
class SiteView:
    """A sample with its attached design, registered and measured."""

    layout: DesignLayout
    result: SiteResult
    sem_image: np.ndarray
    probability: np.ndarray | None  # P(feature) of production's prediction
    mask: np.ndarray | None


@dataclass(frozen=True)
class DesignShown:
    """What the section shows (``overlay.OverlayUI.fill`` maps it onto its components)."""

    note: str
    over_sem: str | None = None  # PNG paths
    over_pred: str | None = None
    epe_map: str | None = None
    summary: str = ""
    rows: list[list] = field(default_factory=list)


def _outline(picture: np.ndarray, mask: np.ndarray, rgb: tuple[int, int, int]) -> np.ndarray:
    picture = picture.copy()
    picture[render.contour(mask, render.line_width(mask.shape))] = rgb
    return picture


def epe_color(epe_nm: float) -> tuple[int, int, int]:
    """Blue (shrunk) … white … red (grown); yellow for a missing edge."""
    if not math.isfinite(epe_nm):
        return (255, 220, 0)
    t = float(np.clip(epe_nm / EPE_SCALE_NM, -1, 1))
    fade = round(255 * (1 - abs(t)))
    return (255, fade, fade) if t > 0 else (fade, fade, 255)


def epe_picture(view: SiteView) -> np.ndarray:
    """Dimmed SEM with every design edge segment drawn in its signed EPE colour."""
    grow = max(2, render.display_factor(view.sem_image.shape, SHOW_PX))
    base = render.enlarge((render.grey_rgb(view.sem_image) * 0.5).astype(np.uint8), grow)
    registration = view.result.registration
    for segment in view.result.epe.segments:
        ends = design_to_pixels(np.array([[segment.x1_nm, segment.y1_nm],
                                          [segment.x2_nm, segment.y2_nm]]),
                                registration, view.sem_image.shape)
        (c1, r1), (c2, r2) = ((ends + 0.5) * grow).round().astype(int)
        cv2.line(base, (int(c1), int(r1)), (int(c2), int(r2)), epe_color(segment.epe_nm),
                 max(1, grow // 2))
    return base


def pictures(view: SiteView) -> tuple[str, str | None, str]:
    """(design over SEM with the predicted outline, design over the prediction, EPE map) files."""
    design = view.result.design_mask
    grow = render.display_factor(view.sem_image.shape, SHOW_PX)
    over_sem = render.grey_rgb(view.sem_image)
    if view.mask is not None:
        over_sem = _outline(over_sem, view.mask, PREDICTED_RGB)
    over_sem = _outline(over_sem, design, DESIGN_RGB)
    over_pred = None
    if view.mask is not None:
        over_pred = render.png_file(render.enlarge(_outline(render.grey_rgb(
            render.layout_image(view.mask)), design, DESIGN_RGB), grow))
    return (render.png_file(render.enlarge(over_sem, grow)), over_pred,
            render.png_file(epe_picture(view)))


def registration_note(design, registration: Registration) -> str:
    """Markdown: where the design sits, how sure that is, the nudges so far."""
    verdict = ("**ambiguous** — a repetitive pattern fits about as well elsewhere"
               if registration.ambiguous else "unambiguous")
    rivals = "; ".join(f"({dx:+.0f}, {dy:+.0f}) nm at {s:.3f}" for dx, dy, s in
                       registration.alternatives[:3])
    cx, cy = registration.true_center_nm
    lines = [f"**{html.escape(design.file_name)}** · cell {html.escape(design.cell or 'top')} · "
             f"layer {design.layer[0]}/{design.layer[1]}",
             f"Offset **dx {registration.dx_nm:+.1f} nm, dy {registration.dy_nm:+.1f} nm** "
             f"(image centre at {cx:.1f}, {cy:.1f} nm) · rotation {registration.rotation_deg:g}° · "
             f"scale {registration.scale:g} · score {registration.score:.3f} · confidence "
             f"{registration.confidence:.2f}, {verdict} (signal: {registration.signal})"]
    if rivals:
        lines.append(f"Other fits: {rivals}")
    if registration.nudge_x_nm or registration.nudge_y_nm:
        lines.append(f"Nudged by hand: {registration.nudge_x_nm:+g}, {registration.nudge_y_nm:+g} nm")
    return "\n\n".join(lines)


def epe_rows(view: SiteView) -> list[list]:
    """The worst segments for the EPE table."""
    rows = []
    for index, segment in enumerate(view.result.epe.worst(WORST_SHOWN), start=1):
        x, y = segment.midpoint_nm
        value = f"{segment.epe_nm:+.1f}" if math.isfinite(segment.epe_nm) else "missing"
        rows.append([index, round(x, 1), round(y, 1), value,
                     f"({segment.normal[0]:+.0f}, {segment.normal[1]:+.0f})"])
    return rows


def epe_summary_html(view: SiteView) -> str:
    """One line of EPE against the design."""
    if view.probability is None:
        return "<div class='sg-muted'>No prediction: EPE needs a model.</div>"
    s = view.result.epe.summary()

    def nm(key: str, sign: str = "") -> str:
        return "—" if not math.isfinite(s[key]) else f"{s[key]:{sign}.2f} nm"
    return (f"<table class='sg-metrics' id='design-epe-summary-table'><caption>EPE vs design "
            f"(signed, per {view.result.epe.step_nm:g} nm segment)</caption><tr><th>mean |EPE|</th>"
            f"<th>p95 |EPE|</th><th>max |EPE|</th><th>bias</th><th>segments</th><th>missing</th>"
            f"</tr><tr><td>{nm('mean_abs_nm')}</td><td>{nm('p95_abs_nm')}</td>"
            f"<td>{nm('max_abs_nm')}</td><td>{nm('mean_nm', '+')}</td>"
            f"<td>{s['segments']}</td><td>{s['missing']}</td></tr></table>")


def _prediction(studio: Studio, sample_id: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    view = studio.view(sample_id)
    if view.prediction is None:
        return None, None
    return probability_of(studio.store, view.prediction), view.mask


def site_view(studio: Studio, sample_id: int) -> SiteView | None:
    """The sample's stored design and registration, measured now; None without a design."""
    design = studio.store.sample_design(sample_id)
    if design is None or design.registration is None:
        return None
    layout = load_design(DesignSource(str(studio.store.design_file(design)), design.cell,
                                      design.layer))
    registration = Registration.from_dict(design.registration)
    sem = studio.store.sample_image(sample_id)
    probability, mask = _prediction(studio, sample_id)
    return SiteView(layout, measure(layout, registration, sem.shape, probability), sem,
                    probability, mask)


def attach(studio: Studio, sample_id: int, path: str, cell: str, layer: str, center: str,
           search_nm: float, signal: str = "auto") -> str:
    """Store the design with the sample and register it; a note on where the centre came from."""
    sample = studio.store.get_sample(sample_id)
    source = DesignSource(path, (cell or "").strip() or None, parse_layer(layer or "34/0"))
    layout = load_design(source)
    origin = "as typed"
    if (center or "").strip():
        site = parse_center(center)
    elif (found := center_from_text(sample.name or "")) is not None:
        site, origin = found, "from the sample's name"
    else:
        site, search_nm = search_window(layout)
        search_nm = min(search_nm, MAX_SEARCH_PX * sample.nm_per_px)
        origin = "searched over the cell"
    design = studio.store.attach_design(sample_id, path, cell=layout.cell_name if source.cell else None,
                                        layer=source.layer, center_nm=site,
                                        search_nm=float(search_nm), file_name=Path(path).name)
    probability, _ = _prediction(studio, sample_id)
    result = register_site(layout, studio.store.sample_image(sample_id), sample.nm_per_px, site,
                           float(search_nm), probability, RegistrationConfig(signal=signal))
    studio.store.save_registration(sample_id, result.registration.to_dict())
    return f"Site centre {site[0]:g}, {site[1]:g} nm ({origin}), searched ±{design.search_nm:g} nm."


def show(studio: Studio, sample_id: int | None, message: str = "") -> DesignShown:
    """The section's note, three pictures, EPE summary and table for the sample."""
    if sample_id is None:
        return DesignShown("")
    try:
        view = site_view(studio, sample_id)
    except (SemganError, StoreError) as exc:
        return DesignShown(f"The attached design cannot be shown: {exc}")
    if view is None:
        return DesignShown(message or "No design attached to this sample: choose a GDS/OASIS "
                           "file above.")
    design = studio.store.sample_design(sample_id)
    note = registration_note(design, view.result.registration)
    return DesignShown(f"{message}\n\n{note}" if message else note, *pictures(view),
                       epe_summary_html(view), epe_rows(view))
