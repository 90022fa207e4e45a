"""Tool calibration inside a fine-tune: which corrected tools get a grey-level map (semgan.calibration)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from semgan.calibration import (
    CalibrationError,
    CalibrationSet,
    fit_tool,
    load_calibration,
    mean_histogram,
    reference_set,
)
from semgan.drift import DriftConfig, kl_divergence
from semgan.imageio import load_image

# Fewer pairs than this give levels too noisy to trust; the tool is trained on uncalibrated.
MIN_PAIRS_PER_TOOL = 5
# A tool whose pattern and background levels both lie within this of the reference's (on the
# [0, 1] scale, ≈ 25 grey levels) is left alone: the generator already copes with such spread.
MIN_LEVEL_SHIFT = 0.1


def _pairs(folder: Path, items: list[dict]) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(load_image(folder / item["sem"]).pixels, load_image(folder / item["layout"]).pixels > 0.5)
            for item in items]


def _items(folder: Path) -> list[dict]:
    return list(json.loads((folder / "manifest.json").read_text())["items"])


def calibrate_tools(production_dir: Path, anchor_train: Path, corrected: Path,
                    log: Callable[[str], None],
                    kl_threshold: float = DriftConfig().kl_threshold) -> CalibrationSet | None:
    """Production's calibrations plus one per foreign tool among the corrected pairs, or None.

    A tool is foreign when the mean grey-level histogram of its corrected images is further than
    the drift monitor's ``kl_threshold`` from the reference (the anchor pairs, i.e. the training
    tools) and its pattern or background level is more than ``MIN_LEVEL_SHIFT`` away from the
    reference's. Tools are the ``profile`` of the exported items (``tool:NAME``).
    """
    calibration = load_calibration(production_dir)
    if calibration is None:
        calibration = reference_set(_pairs(anchor_train, _items(anchor_train)))
    groups: dict[str, list[dict]] = {}
    for item in _items(corrected):
        groups.setdefault(str(item.get("profile", "tool:unknown")), []).append(item)
    for tool, items in sorted(groups.items()):
        pairs = _pairs(corrected, items)
        divergence = kl_divergence(np.array(mean_histogram(s for s, _ in pairs)),
                                   np.array(calibration.reference_histogram))
        if divergence <= kl_threshold:
            log(f"{tool}: grey levels match the training tools (histogram KL {divergence:.2f} ≤ "
                f"{kl_threshold:g}); no calibration")
            continue
        if len(pairs) < MIN_PAIRS_PER_TOOL:
            log(f"{tool}: foreign grey levels (KL {divergence:.2f}) but only {len(pairs)} pairs, fewer "
                f"than {MIN_PAIRS_PER_TOOL}; trained on uncalibrated")
            continue
        try:
            fitted = fit_tool(tool, pairs, calibration)
        except CalibrationError as error:
            log(f"{tool}: not calibrated: {error}")
            continue
        reference = calibration.reference_levels
        shift = max(abs(fitted.levels.pattern - reference.pattern),
                    abs(fitted.levels.background - reference.background))
        if shift <= MIN_LEVEL_SHIFT:
            log(f"{tool}: grey levels within {shift:.3f} of the training tools' (histogram KL "
                f"{divergence:.2f}); no calibration")
            continue
        calibration = calibration.with_tool(fitted)
        log(f"{tool}: calibrated from {len(pairs)} pairs (histogram KL {divergence:.2f}): pattern "
            f"{fitted.levels.pattern:.3f} / background {fitted.levels.background:.3f} → gain "
            f"{fitted.gain:+.3f}, offset {fitted.offset:+.3f}")
    return calibration if calibration.tools else None
