"""How a candidate's weights are composed: tool experts, and the shared generator blended back.

Blending, ``base + w × (tuned − base)``, keeps most of a fine-tune's gain on the new tool and little
of its cost on the old ones (Wortsman et al., CVPR 2022; figures: docs/RESULTS.md).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from semgan.calibration import CalibrationSet
from semgan.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from semgan.experts import expert_file, save_expert


def blend_checkpoint(tuned_dir: Path, base_dir: Path, weight: float, lr_scale: float = 1.0) -> int:
    """Rewrite the full checkpoint ``tuned_dir`` as ``base + weight × (tuned − base)``.

    Every floating tensor the two models share is blended (weights, biases, BatchNorm running
    statistics); integer counters and tensors ``base`` lacks (fresh critics next to an export
    without them) keep the tuned values. Optimizer moments stay as trained. Returns the number
    of tensors blended.
    """
    if not 0.0 <= weight <= 1.0:
        raise CheckpointError(f"blend weight must be in [0, 1], got {weight}")
    tuned = load_checkpoint(tuned_dir)
    if not tuned.is_full:
        raise CheckpointError(f"{tuned_dir}: blending needs a full checkpoint (with optimizer state)")
    base_state = load_checkpoint(base_dir).models.state_dict()
    blended = 0
    mixed: dict[str, torch.Tensor] = {}
    for name, value in tuned.models.state_dict().items():
        start = base_state.get(name)
        if start is None or not value.is_floating_point() or start.shape != value.shape:
            mixed[name] = value
            continue
        start = start.to(value.dtype)
        mixed[name] = start + weight * (value - start)
        blended += 1
    tuned.models.load_state_dict(mixed)
    save_checkpoint(tuned_dir, tuned.models, tuned.optimizers(lr_scale), tuned.config, tuned.card,
                    tuned.state)
    return blended


def compose_candidate(candidate_dir: Path, production_dir: Path, calibration: CalibrationSet | None,
                      job_tools: dict[str, int], blend: float, experts: bool, lr_scale: float,
                      log: Callable[[str], None]) -> tuple[CalibrationSet | None, dict]:
    """Turn the trained folder into the candidate: tool experts first, then the shared blend.

    ``job_tools`` counts the corrected pairs of each tool in this fine-tune. Every calibrated tool
    with pairs here gets the fine-tuned SEM→layout generator as its expert (``experts`` on);
    calibrated tools without pairs keep production's expert. The shared generator is blended
    with ``blend``, or left as production's when every pair came from a tool that now has an
    expert: the tools it serves got no new information. Returns the calibration to save (with
    expert file names) and a summary for the card.
    """
    with_expert = {t.tool for t in calibration.tools} if experts and calibration is not None else set()
    shared_pairs = sum(count for tool, count in job_tools.items() if tool not in with_expert)
    named: list[str] = []
    if experts and calibration is not None:
        tuned = load_checkpoint(candidate_dir, generators_only=True).models.sem_to_layout
        tools = []
        for index, tool in enumerate(calibration.tools):
            target = expert_file(index)
            if job_tools.get(tool.tool):
                save_expert(tuned, candidate_dir / target)
                log(f"{tool.tool}: its images get the fine-tuned generator as a tool expert ({target})")
            elif tool.expert and (production_dir / tool.expert).is_file():
                shutil.copyfile(production_dir / tool.expert, candidate_dir / target)
            else:
                target = ""
            tools.append(replace(tool, expert=target))
            named += [tool.tool] if target else []
        calibration = CalibrationSet(calibration.reference_histogram, calibration.reference_levels,
                                     tuple(tools))
    weight = blend if (shared_pairs or not named) else 0.0
    if weight < 1.0:
        count = blend_checkpoint(candidate_dir, production_dir, weight, lr_scale)
        log(f"blended {count} tensors: shared generator = production + {weight:g} × (fine-tuned − "
            f"production)" + ("" if weight else ", i.e. production's: every pair came from a tool "
                              "with its own expert"))
    return calibration, {"blend": weight, "experts": named, "shared_pairs": shared_pairs}
