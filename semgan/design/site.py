"""One site end to end: rasterise the design around it, register, measure EPE, write the exports.

The CLI (``python -m semgan overlay``) and the Review tab both go through here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semgan.design.clip import DesignLayout, rasterize_clip, registered_mask
from semgan.design.contours import write_contours
from semgan.design.epe import DEFAULT_STEP_NM, EpeReport, edge_placement
from semgan.design.lyrdb import Marker, epe_markers, region_markers, write_lyrdb
from semgan.design.placement import Registration
from semgan.design.register import RegistrationConfig, register

LOW_CONFIDENCE = 0.3  # |2p − 1| below this is a low-confidence pixel


@dataclass(frozen=True)
class SiteResult:
    """A registered site: the registration, the design on the image's pixels and the EPE."""

    registration: Registration
    design_mask: np.ndarray  # (H, W) bool, the registered design on the image's pixels
    epe: EpeReport


def measure(layout: DesignLayout, registration: Registration, image_shape: tuple[int, int],
            prediction: np.ndarray | None, step_nm: float = DEFAULT_STEP_NM) -> SiteResult:
    """The registered design mask and (with a prediction) the per-segment EPE."""
    design = registered_mask(layout, registration.true_center_nm, image_shape, registration.nm_per_px)
    epe = edge_placement(layout, registration, prediction, step_nm) if prediction is not None else \
        EpeReport((), float(step_nm), 0.0)
    return SiteResult(registration, design, epe)


def register_site(layout: DesignLayout, sem_image: np.ndarray, nm_per_px: float,
                  center_nm: tuple[float, float], search_nm: float,
                  prediction: np.ndarray | None = None,
                  config: RegistrationConfig | None = None,
                  step_nm: float = DEFAULT_STEP_NM) -> SiteResult:
    """Rasterise the design around ``center_nm`` ± ``search_nm``, register and measure."""
    clip = rasterize_clip(layout, center_nm, sem_image.shape, nm_per_px, search_nm)
    registration = register(clip, prediction, sem_image, config or RegistrationConfig())
    return measure(layout, registration, sem_image.shape, prediction, step_nm)


def site_markers(result: SiteResult, sample: str, confidence: np.ndarray | None = None,
                 other_mask: np.ndarray | None = None, prediction_mask: np.ndarray | None = None,
                 worst: int = 20) -> list[Marker]:
    """Worst EPE segments, low-confidence regions and (with a second model) disagreements."""
    markers = epe_markers(result.epe, sample, worst)
    if confidence is not None:
        markers += region_markers(np.asarray(confidence) < LOW_CONFIDENCE, result.registration,
                                  "low_confidence", sample, np.asarray(confidence),
                                  what="low-confidence region")
    if other_mask is not None and prediction_mask is not None:
        markers += region_markers(np.asarray(other_mask, bool) ^ np.asarray(prediction_mask, bool),
                                  result.registration, "model_disagreement", sample,
                                  what="disagreement")
    return markers


def write_site(folder: str | Path, result: SiteResult, layout: DesignLayout, sample: str,
               masks: dict[str, np.ndarray], markers: list[Marker]) -> dict[str, Path]:
    """registration.json, epe.json, markers.lyrdb, contours.gds/.oas into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = {"registration": folder / "registration.json", "epe": folder / "epe.json"}
    files["registration"].write_text(json.dumps(result.registration.to_dict(), indent=2) + "\n")
    files["epe"].write_text(json.dumps({"sample": sample, **result.epe.to_dict()}, indent=1) + "\n")
    files["markers"] = write_lyrdb(folder / "markers.lyrdb", markers, layout.cell_name,
                                   layout.source.path)
    if masks:
        files["gds"], files["oas"] = write_contours(folder, masks, result.registration,
                                                    f"{layout.cell_name}_SEMGAN", layout.source.layer[0])
    return files
