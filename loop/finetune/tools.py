"""Adaptation per tool: every tool with corrected pairs gets its own SEM→layout generator.

The candidate is production's folder with production's shared generator bit for bit, plus one
adaptation per corrected tool (``calibration.json``: the tool's grey-level map, identity when its
levels are close to the training tools', and its expert file). Images tagged with a tool use that
tool's adaptation; every other tool keeps exactly what production gave it, so forgetting
elsewhere is zero by construction. Each expert starts from the tool's current generator (its
previous expert, else the shared one), trains on the tool's corrected train-split pairs only
(``loop.finetune.expert``) and keeps the weights that scored best on its held-out pairs; the gate
(``loop.toolgate``) then keeps each tool's new adaptation only where it is better.
"""

from __future__ import annotations

import copy
import json
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from loop.anchor import AnchorSets
from loop.finetune.calibrate import MIN_LEVEL_SHIFT
from loop.finetune.candidate import (
    FinetuneOutcome,
    drift_reference,
    keep_for_resume,
    register_candidate,
)
from loop.finetune.expert import ExpertRecipe, train_expert
from loop.finetune.progress import Reporter
from loop.finetune.recipe import FinetuneConfig, FinetuneError, JobCancelled, JobInterrupted
from loop.jobs import FinetunePlan, FinetuneRequest, ToolTraining, TrainingSummary
from loop.pair_folders import ExportedPairs, export_split
from semgan.calibration import (
    HISTOGRAM_BINS,
    MAX_EXAMPLES,
    CalibrationError,
    CalibrationSet,
    ToolCalibration,
    fit_tool,
    load_calibration,
    material_levels,
    mean_histogram,
    reference_set,
    save_calibration,
)
from semgan.checkpoint import load_checkpoint, read_config
from semgan.config import ExperimentConfig
from semgan.device import pick_device
from semgan.drift import grey_histogram
from semgan.experts import expert_file, load_experts, save_expert
from semgan.imageio import load_image
from store import ModelVersion, Store

STRATEGY = "tools"
MIN_BUDGET_S = 30.0  # no tool gets less training time than this


@dataclass(frozen=True)
class ToolPairs:
    """One tool's corrected pairs at the model's pixel size."""

    tool: str  # the adaptation key, ``tool:NAME``
    train: list[tuple[np.ndarray, np.ndarray]]
    holdout: list[tuple[np.ndarray, np.ndarray]]


def group_by_tool(train: ExportedPairs, holdout: ExportedPairs) -> dict[str, ToolPairs]:
    """The exported train and held-out pairs, grouped by their tool (the items' ``profile``)."""
    groups: dict[str, tuple[list, list]] = {}
    for exported, index in ((train, 0), (holdout, 1)):
        if exported.path is None:
            continue
        for item in json.loads((exported.path / "manifest.json").read_text())["items"]:
            pair = (load_image(exported.path / item["sem"]).pixels,
                    load_image(exported.path / item["layout"]).pixels > 0.5)
            groups.setdefault(str(item.get("profile", "tool:unknown")), ([], []))[index].append(pair)
    return {tool: ToolPairs(tool, *lists) for tool, lists in sorted(groups.items())}


def tool_entry(tool: str, pairs: list[tuple[np.ndarray, np.ndarray]],
               reference: CalibrationSet) -> tuple[ToolCalibration, str]:
    """The tool's grey-level map (identity unless its levels are far off) and why."""
    try:
        fitted = fit_tool(tool, pairs, reference)
    except CalibrationError as error:
        identity = ToolCalibration(tool, 1.0, 0.0, mean_histogram(s for s, _ in pairs), len(pairs),
                                   _levels_or_reference(pairs, reference))
        return identity, f"grey levels used as they are ({error})"
    target = reference.reference_levels
    shift = max(abs(fitted.levels.pattern - target.pattern),
                abs(fitted.levels.background - target.background))
    if shift <= MIN_LEVEL_SHIFT:
        return replace(fitted, gain=1.0, offset=0.0), (
            f"grey levels within {shift:.3f} of the training tools': used as they are")
    return fitted, (f"pattern {fitted.levels.pattern:.3f} / background {fitted.levels.background:.3f}"
                    f" mapped by gain {fitted.gain:+.3f}, offset {fitted.offset:+.3f}")


def _levels_or_reference(pairs: list, reference: CalibrationSet):
    try:
        return material_levels(pairs)
    except CalibrationError:
        return reference.reference_levels


def examples_of(images: list[np.ndarray]) -> tuple[tuple[float, ...], ...]:
    """Grey-level histograms of (up to MAX_EXAMPLES of) these images, for routing."""
    step = max(1, len(images) // MAX_EXAMPLES)
    return tuple(tuple(float(v) for v in grey_histogram(image, HISTOGRAM_BINS))
                 for image in images[::step][:MAX_EXAMPLES])


def _reference(production_dir: Path, anchor_train: Path) -> CalibrationSet:
    """Production's calibration (or one measured on the anchor pairs), with the training tools'
    example histograms."""
    calibration = load_calibration(production_dir)
    items = json.loads((anchor_train / "manifest.json").read_text())["items"]
    pairs = [(load_image(anchor_train / i["sem"]).pixels,
              load_image(anchor_train / i["layout"]).pixels > 0.5) for i in items]
    calibration = calibration or reference_set(pairs)
    if calibration.reference_examples:
        return calibration
    return replace(calibration, reference_examples=examples_of([s for s, _ in pairs]))


def copy_production(production_dir: Path, target: Path) -> None:
    """The candidate starts as a copy of production's folder (shared weights bit for bit)."""
    shutil.copytree(production_dir, target, ignore=shutil.ignore_patterns("*.partial", "*.tmp"))


def recipe_for(config: FinetuneConfig, model_config: ExperimentConfig, budget_s: float,
               seed: int) -> ExpertRecipe:
    """The expert recipe of this fine-tune's config."""
    return ExpertRecipe(crop=config.expert_crop, batch=config.batch_size, lr=config.expert_lr,
                        max_steps=config.expert_max_steps, time_budget_s=budget_s,
                        row_drift=model_config.data.row_drift_augment, seed=seed,
                        precision="auto")


def train_tool_experts(production_dir: Path, anchor_train: Path, groups: dict[str, ToolPairs],
                       config: FinetuneConfig, candidate_dir: Path, reporter: Reporter,
                       done: dict[str, dict], device: torch.device) -> dict[str, dict]:
    """Train one expert per tool into ``candidate_dir``; returns a summary per tool.

    ``done`` holds the summaries of tools an interrupted run already finished (their expert
    files are in ``candidate_dir``); they are kept, not retrained. Raises JobInterrupted (with
    the finished tools in ``resume``) or JobCancelled when the reporter asks to stop.
    """
    checkpoint = load_checkpoint(production_dir, "cpu", generators_only=True)
    model_config = checkpoint.config
    reference = _reference(production_dir, anchor_train)
    calibration = load_calibration(candidate_dir) or reference
    calibration = replace(calibration, reference_examples=reference.reference_examples)
    current = load_experts(production_dir, load_calibration(production_dir), model_config)
    todo = _tools_to_train(groups, done, config, reporter)
    summaries = dict(done)
    started = time.perf_counter()
    total_steps = config.expert_max_steps * len(todo)
    reporter.plan(FinetunePlan(total_steps, total_steps, config.expert_max_steps,
                               sum(len(g.train) for g in todo), sum(len(g.train) for g in todo), 0,
                               1.0, config.expert_lr, torch.get_num_threads()))
    for position, group in enumerate(todo):
        left = config.time_budget_s - (time.perf_counter() - started)
        share = len(group.train) / sum(len(g.train) for g in todo[position:])
        budget = max(MIN_BUDGET_S, left * share)
        entry, how = tool_entry(group.tool, group.train, reference)
        generator = copy.deepcopy(current.get(group.tool, checkpoint.models.sem_to_layout))
        start_from = "its previous expert" if group.tool in current else "the shared generator"
        reporter.log(f"{group.tool}: {len(group.train)} train / {len(group.holdout)} held-out "
                     f"pairs; {how}; expert from {start_from}, up to {config.expert_max_steps} "
                     f"steps or {budget:.0f} s")
        offset = position * config.expert_max_steps

        def on_step(step: int, loss: float, offset: int = offset) -> None:
            elapsed = time.perf_counter() - started
            eta = max(0.0, config.time_budget_s - elapsed)
            reporter.progress(offset + step, total_steps, eta, {"loss": loss})

        result = train_expert(generator.float(), [(entry.apply(s), m) for s, m in group.train],
                              [(entry.apply(s), m) for s, m in group.holdout],
                              recipe_for(config, model_config, budget, config.seed + position),
                              multiple=2 ** model_config.generator.n_down, device=device,
                              on_step=on_step, should_stop=lambda: reporter.cancelled)
        if result.stop_reason == "cancelled":
            if reporter.interrupted:
                raise JobInterrupted(f"the worker shut down during {group.tool}'s expert; "
                                     f"{len(summaries)} finished expert(s) are kept",
                                     {"tools": summaries})
            raise JobCancelled(f"cancelled while training {group.tool}'s expert")
        generator.load_state_dict(result.state)
        calibration, name = _store_expert(generator, group, entry, calibration, candidate_dir)
        summaries[group.tool] = {
            "train_pairs": len(group.train), "holdout_pairs": len(group.holdout), "expert": name,
            "grey_levels": how, "gain": round(entry.gain, 4), "offset": round(entry.offset, 4),
            "started_from": start_from, "holdout_iou_start": result.start_iou,
            "holdout_iou_best": result.best_iou, "best_step": result.best_step,
            "steps": result.steps, "seconds": result.seconds, "stop_reason": result.stop_reason,
            "history": result.history}
        gain = ("" if result.start_iou is None else
                f", held-out IoU {result.start_iou:.4f} → {result.best_iou:.4f}")
        reporter.log(f"{group.tool}: {result.steps} steps in {result.seconds:.0f} s "
                     f"({result.stop_reason}), best at step {result.best_step}{gain}")
        if reporter.cancelled:
            raise (JobInterrupted(f"the worker shut down after {group.tool}'s expert",
                                  {"tools": summaries}) if reporter.interrupted else
                   JobCancelled(f"cancelled after {group.tool}'s expert"))
    return summaries


def _tools_to_train(groups: dict[str, ToolPairs], done: dict[str, dict], config: FinetuneConfig,
                    reporter: Reporter) -> list[ToolPairs]:
    """The tools not yet done with enough corrected train pairs (the others are logged)."""
    todo = [g for g in groups.values() if g.tool not in done]
    skipped = [g for g in todo if len(g.train) < config.min_tool_pairs]
    for group in skipped:
        reporter.log(f"{group.tool}: {len(group.train)} corrected train pair(s), fewer than "
                     f"{config.min_tool_pairs}: no adaptation yet, production's generator stays")
    todo = [g for g in todo if len(g.train) >= config.min_tool_pairs]
    if not todo and not done:
        raise FinetuneError("no tool has enough corrected train pairs "
                            f"(need {config.min_tool_pairs} of one tool)")
    return todo


def _store_expert(generator: torch.nn.Module, group: ToolPairs, entry: ToolCalibration,
                  calibration: CalibrationSet, candidate_dir: Path) -> tuple[CalibrationSet, str]:
    """Save the tool's expert (under its previous file name, else a free one) and its calibration."""
    existing = calibration.get(group.tool)
    index = len(calibration.tools) if existing is None else calibration.tools.index(existing)
    if existing is not None and existing.expert:
        name = existing.expert
    else:
        name = next(expert_file(i) for i in range(index, index + 1000)
                    if not (candidate_dir / expert_file(i)).exists())
    save_expert(generator, candidate_dir / name)
    calibration = calibration.with_tool(
        replace(entry, expert=name, examples=examples_of([s for s, _ in group.train])))
    save_calibration(calibration, candidate_dir)
    return calibration, name


def run_tool_finetune(store: Store, request: FinetuneRequest, config: FinetuneConfig,
                      production: ModelVersion, anchors: AnchorSets, work: Path,
                      resumed: dict | None, reporter: Reporter, started: float, cutoff: int,
                      nm_per_px: float, tile: int, job_id: int | None) -> FinetuneOutcome:
    """The ``tools`` strategy: an adaptation per corrected tool, registered as a candidate."""
    try:
        train = export_split(store, work / "corrected_train", "train", nm_per_px, tile, cutoff)
        holdout = export_split(store, work / "corrected_holdout", "holdout", nm_per_px, tile, cutoff)
        for line in (*train.skipped, *holdout.skipped):
            reporter.log(f"skipped {line}")
        if train.path is None:
            raise FinetuneError("no usable corrected pairs in the train split")
        candidate_dir = work / "candidate"
        if not resumed:
            copy_production(Path(production.path), candidate_dir)
        done = dict((resumed or {}).get("tools", {}))
        if done:
            reporter.log(f"resuming: {len(done)} tool expert(s) already trained "
                         f"({', '.join(done)})")
        groups = group_by_tool(train, holdout)
        device = pick_device(config.device)
        try:
            tools = train_tool_experts(Path(production.path), anchors.train, groups, config,
                                       candidate_dir, reporter, done, device)
        except JobInterrupted as exc:
            finished = (exc.resume or {}).get("tools", {})
            keep_for_resume(store, job_id, work, {"cutoff": cutoff, "step": len(finished),
                                                  "tools": finished,
                                                  "production_version": production.version})
            raise JobInterrupted(f"{exc}; the checkpoint is kept and the next worker resumes "
                                 "from it") from None
        model_config = read_config(production.path)
        summary = TrainingSummary(
            job_id=job_id, trigger=request.trigger, reason=request.reason, strategy=STRATEGY,
            parent_version=production.version,
            init=f"production v{production.version}'s folder; shared generator unchanged",
            tools={tool: ToolTraining(**t) for tool, t in tools.items()},
            pairs_used={"size": tile, "max_pair_id": cutoff, "corrected_pairs": len(train.pair_ids),
                        "holdout_pairs": len(holdout.pair_ids)},
            steps=sum(t["steps"] for t in tools.values()),
            train_seconds=round(sum(t["seconds"] for t in tools.values()), 1),
            wall_seconds=round(time.perf_counter() - started, 1), stop_reason="done",
            device=str(device), cpu_threads=torch.get_num_threads(), config=config.to_dict(),
            max_pair_id=cutoff)
        candidate = register_candidate(store, candidate_dir, model_config.to_dict(), summary,
                                       drift_reference((anchors.train, train.path), nm_per_px),
                                       production, cutoff, nm_per_px, job_id)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    reporter.log(f"registered candidate v{candidate.version} (parent v{production.version}): "
                 f"adaptations for {', '.join(tools)}")
    return FinetuneOutcome(candidate, summary, anchors.test, tile)
