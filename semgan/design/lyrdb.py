"""KLayout marker database (``.lyrdb``) of what an engineer should look at on the design.

Three categories: the worst EPE segments (edges), low-confidence regions of the prediction and
regions where two models disagree (boxes). Each item carries its value (a float) and a text
naming the sample. Coordinates are micrometres in the design's own frame, as KLayout expects.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from semgan.design.epe import EpeReport
from semgan.design.errors import MarkerError
from semgan.design.placement import Registration, pixels_to_design

CATEGORIES: dict[str, str] = {
    "epe_worst": "Design edge segments with the largest |EPE| of the prediction (nm)",
    "low_confidence": "Regions where the prediction's confidence |2p - 1| is low",
    "model_disagreement": "Regions where two models predict different layouts",
}
GENERATOR = "semgan overlay"


@dataclass(frozen=True)
class Marker:
    """One marker: its category, shape (``edge`` / ``box``) in nm, value and label."""

    category: str
    shape: str  # "edge": (x1, y1, x2, y2); "box": (left, bottom, right, top)
    coords_nm: tuple[float, float, float, float]
    value: float
    text: str

    def value_strings(self) -> list[str]:
        """The item's ``<value>`` texts: the shape (µm), the label, the number."""
        a, b, c, d = (v / 1000 for v in self.coords_nm)
        shape = f"edge: ({a:.6g},{b:.6g};{c:.6g},{d:.6g})" if self.shape == "edge" else \
            f"box: ({a:.6g},{b:.6g};{c:.6g},{d:.6g})"
        text = self.text.replace("'", "")
        return [shape, f"text: '{text}'", f"float: {self.value:.6g}"]


def epe_markers(report: EpeReport, sample: str, count: int = 20) -> list[Marker]:
    """The ``count`` worst EPE segments as edge markers (a missing edge has value NaN → 999)."""
    markers = []
    for segment in report.worst(count):
        value = segment.epe_nm if np.isfinite(segment.epe_nm) else 999.0
        label = f"{sample}: EPE {segment.epe_nm:+.1f} nm" if np.isfinite(segment.epe_nm) else \
            f"{sample}: no predicted edge within {report.reach_nm:g} nm"
        markers.append(Marker("epe_worst", "edge", (segment.x1_nm, segment.y1_nm, segment.x2_nm,
                                                    segment.y2_nm), float(value), label))
    return markers


def region_markers(regions: np.ndarray, registration: Registration, category: str, sample: str,
                   values: np.ndarray | None = None, min_area_px: int = 16,
                   what: str = "region") -> list[Marker]:
    """Connected regions of a (H, W) bool mask as box markers in design nm, largest first.

    The value is the region's mean of ``values`` (e.g. confidence), else its area in nm².
    """
    if category not in CATEGORIES:
        raise MarkerError(f"unknown marker category {category!r}; one of {', '.join(CATEGORIES)}")
    labels, count = ndimage.label(np.asarray(regions, bool))
    if count == 0:
        return []
    areas = np.bincount(labels.ravel(), minlength=count + 1)
    markers = []
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if areas[index] < min_area_px:
            continue
        rows, cols = box
        corners = np.array([[cols.start - 0.5, rows.stop - 0.5], [cols.stop - 0.5, rows.start - 0.5]])
        (x0, y0), (x1, y1) = pixels_to_design(corners, registration, labels.shape)
        area_nm2 = float(areas[index]) * registration.nm_per_px ** 2
        value = float(np.mean(values[labels == index])) if values is not None else area_nm2
        markers.append(Marker(category, "box", (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)),
                              value, f"{sample}: {what} {area_nm2:.0f} nm², value {value:.3g}"))
    return sorted(markers, key=lambda m: -abs(m.value) if values is None else m.value)


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    element = ET.SubElement(parent, tag)
    if text is not None:
        element.text = text
    return element


def lyrdb_tree(markers: Iterable[Marker], top_cell: str, original_file: str = "",
               description: str = "semgan design overlay markers") -> ET.ElementTree:
    """The ``<report-database>`` XML of KLayout's marker format."""
    root = ET.Element("report-database")
    _sub(root, "description", description)
    _sub(root, "original-file", original_file)
    _sub(root, "generator", GENERATOR)
    _sub(root, "top-cell", top_cell)
    _sub(root, "tags")
    categories = _sub(root, "categories")
    for name, text in CATEGORIES.items():
        category = _sub(categories, "category")
        _sub(category, "name", name)
        _sub(category, "description", text)
        _sub(category, "categories")
    cell = _sub(_sub(root, "cells"), "cell")
    _sub(cell, "name", top_cell)
    _sub(cell, "variant", "")
    _sub(cell, "references")
    items = _sub(root, "items")
    for marker in markers:
        if marker.category not in CATEGORIES:
            raise MarkerError(f"unknown marker category {marker.category!r}")
        item = _sub(items, "item")
        _sub(item, "tags")
        _sub(item, "category", f"'{marker.category}'")
        _sub(item, "cell", top_cell)
        _sub(item, "visited", "false")
        _sub(item, "multiplicity", "1")
        _sub(item, "image")
        values = _sub(item, "values")
        for text in marker.value_strings():
            _sub(values, "value", text)
    ET.indent(root)
    return ET.ElementTree(root)


def write_lyrdb(path: str | Path, markers: Sequence[Marker], top_cell: str,
                original_file: str = "") -> Path:
    """Write the marker database; returns its path."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lyrdb_tree(markers, top_cell, original_file).write(path, encoding="utf-8", xml_declaration=True)
    except OSError as error:
        raise MarkerError(f"cannot write the marker database {path}: {error}") from None
    return path
