"""Evaluate models and the classical baseline on a paired data folder, per profile and overall."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from semgan.baseline import otsu_baseline
from semgan.data import DatasetError, read_manifest
from semgan.imageio import load_image
from semgan.layouts.families import OTHER_FAMILY, family_of
from semgan.metrics import aggregate, evaluate_pair
from semgan.semsim.space import HeldOutRegion, held_out_region

BASELINE = "otsu-baseline"
TARGETS = ("layout", "printed")
# Columns of the printed table: (metric key, header, format).
TABLE_COLUMNS = (
    ("iou", "IoU", "{:.4f}"),
    ("epe_mean_nm", "EPE mean nm", "{:.2f}"),
    ("epe_p95_nm", "EPE p95 nm", "{:.2f}"),
    ("cd_abs_error_nm", "|CD err| nm", "{:.2f}"),
    ("ssim", "SSIM", "{:.4f}"),
    ("psnr", "PSNR dB", "{:.2f}"),
    ("l1", "L1", "{:.4f}"),
)

# A method maps (sem image uint8, nm/px) → (probability-like image in [0, 1], bool mask).
Method = Callable[[np.ndarray, float], tuple[np.ndarray, np.ndarray]]


def baseline_method(sem_image: np.ndarray, nm_per_px: float) -> tuple[np.ndarray, np.ndarray]:
    """The Otsu + morphology baseline as an evaluation method."""
    mask = otsu_baseline(sem_image, nm_per_px)
    return mask.astype(np.float32), mask


def predictor_method(predictor: Any) -> Method:
    """Wrap a ``semgan.infer.Predictor`` as an evaluation method."""

    def run(sem_image: np.ndarray, nm_per_px: float) -> tuple[np.ndarray, np.ndarray]:
        prediction = predictor.predict(sem_image, nm_per_px)
        return prediction.probability, prediction.mask

    return run


def evaluate_folder(
    data_dir: str | Path,
    methods: Mapping[str, Method],
    *,
    target: str = "layout",
    limit: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Score every method on every item: overall and per-profile means, plus per-item rows."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    data_dir = Path(data_dir)
    manifest = read_manifest(data_dir)
    nm_per_px = float(manifest["nm_per_px"])
    items = manifest["items"][:limit] if limit else manifest["items"]
    regions = _held_out_regions(manifest)
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in methods}
    for item in items:
        sem_image = np.rint(load_image(data_dir / item["sem"]).pixels * 255).astype(np.uint8)
        truth = load_image(data_dir / item[target]).pixels > 0.5
        for name, method in methods.items():
            probability, mask = method(sem_image, nm_per_px)
            metrics = evaluate_pair(probability, mask, truth, nm_per_px)
            rows[name].append({"name": item["name"], "profile": item.get("profile", "?"),
                               "source": item.get("source", {}).get("kind", "?"),
                               "family": family_of(item.get("source", {})),
                               "region": _region(item, regions), **metrics})
        if progress is not None:
            progress(1)
    result: dict[str, Any] = {"data": str(data_dir), "target": target, "nm_per_px": nm_per_px,
                              "items": len(items), "methods": {}}
    for name, method_rows in rows.items():
        groups: dict[str, list[dict]] = defaultdict(list)
        for row in method_rows:
            groups[f"profile:{row['profile']}"].append(row)
            groups[f"source:{row['source']}"].append(row)
            if row["family"] != OTHER_FAMILY:  # e.g. corrected pairs: no family to name
                groups[f"family:{row['family']}"].append(row)
            if row["region"] is not None:
                groups[f"region:{row['region']}"].append(row)
        result["methods"][name] = {
            "overall": _numeric_mean(method_rows),
            "groups": {key: _numeric_mean(group) for key, group in sorted(groups.items())},
            "rows": method_rows,
        }
    return result


def _held_out_regions(manifest: Mapping[str, Any]) -> dict[str, list[HeldOutRegion]]:
    """Per randomized profile of the manifest, its held-out regions of the randomization space."""
    return {name: [HeldOutRegion.from_dict(region) for region in definition.get("held_out", [])]
            for name, definition in manifest.get("profile_definitions", {}).items()
            if isinstance(definition, dict) and definition.get("kind") == "randomized"}


def _region(item: Mapping[str, Any], regions: Mapping[str, list[HeldOutRegion]]) -> str | None:
    """For a randomized tool's draw: the held-out region it lies in, or "train" outside them."""
    if item.get("profile") not in regions or not item.get("tool_params"):
        return None
    return held_out_region(item["tool_params"], regions[item["profile"]]) or "train"


def _numeric_mean(rows: list[dict[str, Any]]) -> dict[str, float]:
    numeric = [{k: v for k, v in row.items() if isinstance(v, int | float)} for row in rows]
    return aggregate(numeric)


def format_table(result: Mapping[str, Any], group: str = "overall") -> str:
    """Render one group of an ``evaluate_folder`` result as a fixed-width text table."""
    headers = ["method", *(header for _, header, _ in TABLE_COLUMNS)]
    lines = []
    for name, scores in result["methods"].items():
        values = scores["overall"] if group == "overall" else scores["groups"].get(group, {})
        cells = [name]
        for key, _, fmt in TABLE_COLUMNS:
            value = values.get(key, math.nan)
            cells.append(fmt.format(value) if math.isfinite(value) else str(value))
        lines.append(cells)
    widths = [max(len(row[i]) for row in [headers, *lines]) for i in range(len(headers))]
    render = [" | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
              for row in [headers, *lines]]
    render.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(render)


def pick_examples(manifest: Mapping[str, Any], count: int, names: Sequence[str] = ()
                  ) -> list[dict[str, Any]]:
    """Up to ``count`` items spread over (profile, source kind) groups, first of each group first,
    then the items named in ``names`` (``DatasetError`` for a name the manifest lacks)."""
    by_name = {item["name"]: item for item in manifest["items"]}
    if unknown := [name for name in names if name not in by_name]:
        raise DatasetError(f"no items named {', '.join(unknown)} in the data's manifest")
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for item in manifest["items"]:
        groups[(item.get("profile", "?"), item.get("source", {}).get("kind", "?"))].append(item)
    chosen: list[dict[str, Any]] = []
    depth = 0
    while len(chosen) < count and any(len(group) > depth for group in groups.values()):
        for key in sorted(groups):
            if depth < len(groups[key]) and len(chosen) < count:
                chosen.append(groups[key][depth])
        depth += 1
    return chosen + [by_name[name] for name in names if by_name[name] not in chosen]


def examples_figure(data_dir: str | Path, methods: Mapping[str, Method], count: int = 6,
                    target: str = "layout", names: Sequence[str] = ()) -> np.ndarray:
    """RGB grid, one row per example: SEM | truth | each method's mask (errors tinted red/blue).

    ``count`` items spread over the (profile, source) groups, then the items named in ``names``."""
    import cv2  # local: drawing only

    data_dir = Path(data_dir)
    manifest = read_manifest(data_dir)
    nm_per_px = float(manifest["nm_per_px"])
    items = pick_examples(manifest, count, names)
    size, label_h, gap = int(manifest["size"]), 22, 4
    columns = ["SEM", f"truth ({target})", *methods]
    width = len(columns) * (size + gap)
    sheet = np.full((label_h + len(items) * (size + gap + label_h), width, 3), 255, np.uint8)
    for col, title in enumerate(columns):
        cv2.putText(sheet, title, (col * (size + gap) + 4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    (0, 0, 0), 1, cv2.LINE_AA)
    for row, item in enumerate(items):
        top = label_h + row * (size + gap + label_h)
        sem_image = np.rint(load_image(data_dir / item["sem"]).pixels * 255).astype(np.uint8)
        truth = load_image(data_dir / item[target]).pixels > 0.5
        caption = f"{item['name']}  {item.get('profile', '?')}  {item.get('source', {}).get('kind', '?')}"
        cv2.putText(sheet, caption, (4, top + 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (60, 60, 60), 1,
                    cv2.LINE_AA)
        top += label_h
        panels = [np.repeat(sem_image[..., None], 3, 2), _mask_rgb(truth, truth)]
        for method in methods.values():
            _, mask = method(sem_image, nm_per_px)
            panels.append(_mask_rgb(mask, truth))
        for col, panel in enumerate(panels):
            left = col * (size + gap)
            sheet[top:top + size, left:left + size] = panel[:size, :size]
    return sheet


def _mask_rgb(mask: np.ndarray, truth: np.ndarray) -> np.ndarray:
    # White = correct pattern, red = extra pattern (false positive), blue = missed pattern.
    rgb = np.zeros((*mask.shape, 3), np.uint8)
    rgb[mask & truth] = (235, 235, 235)
    rgb[mask & ~truth] = (230, 50, 50)
    rgb[~mask & truth] = (60, 110, 240)
    return rgb
