"""The fine-tune run: production → mixed old+new data → fit → candidate registered as vN."""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from loop.anchor import AnchorSets, ensure_anchor_sets
from loop.finetune.blend import compose_candidate
from loop.finetune.calibrate import calibrate_tools
from loop.finetune.candidate import (
    FinetuneOutcome,
    drift_reference,
    keep_for_resume,
    register_candidate,
    take_resume,
)
from loop.finetune.progress import JobProgress, LossMonitor, Reporter
from loop.finetune.recipe import (
    DEFAULT_IMAGE_SIZE,
    FinetuneConfig,
    FinetuneError,
    JobCancelled,
    JobInterrupted,
)
from loop.finetune.tools import STRATEGY, run_tool_finetune
from loop.jobs import FinetunePlan, FinetuneRequest, TrainingSummary
from loop.pair_folders import export_split
from semgan.calibration import CalibrationSet, save_calibration
from semgan.checkpoint import (
    TrainState,
    has_checkpoint,
    load_checkpoint,
    read_config,
    save_checkpoint,
)
from semgan.config import ExperimentConfig
from semgan.data import ConcatPairedDataset, PairedDataset
from semgan.model import build_models
from semgan.model_card import ModelCard
from semgan.train.loop import fit
from semgan.train.step import build_optimizers
from store import ModelVersion, Store


def cpu_threads(requested: int) -> int:
    """Threads for torch on the CPU: as requested, or the cores the load average leaves free."""
    if requested > 0:
        return requested
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = 0.0
    return max(1, min(cores, cores - round(load)))


def prepare_init(production_dir: Path, staging: Path) -> tuple[Path, str]:
    """The folder ``fit(init_from=…)`` starts from, and a note on how it was made."""
    if has_checkpoint(production_dir):
        return production_dir, ("started from the production checkpoint including its "
                                "optimizer state (Adam moments)")
    export = load_checkpoint(production_dir)
    models = build_models(export.config)  # critics freshly initialised (pix2pix init)
    loaded = ["sem_to_layout", "layout_to_sem"]
    if export.models.layout_critic is not None and models.layout_critic is not None:
        loaded += ["layout_critic", "sem_critic"]
    for name in loaded:
        getattr(models, name).load_state_dict(getattr(export.models, name).state_dict())
    save_checkpoint(staging, models, build_optimizers(models, export.config.optim),
                    export.config, export.card, TrainState())
    if len(loaded) == 4:
        return staging, ("production is an inference export with critics (no optimizer state): "
                         "generators and critics loaded from it, optimizer state started empty")
    return staging, ("production is an inference export (generators only, no critics, no "
                     "optimizer state): generators loaded from it, critics initialised fresh, "
                     "optimizer state started empty")


def mix_repeats(n_new: int, n_old: int, new_fraction: float) -> tuple[int, int]:
    """(repeats of the new pairs, repeats of the anchor) so new ≈ ``new_fraction`` of an epoch."""
    if new_fraction * n_old >= (1 - new_fraction) * n_new:
        return max(1, round(new_fraction * n_old / ((1 - new_fraction) * n_new))), 1
    return 1, max(1, round((1 - new_fraction) * n_new / (new_fraction * n_old)))


def run_finetune(store: Store, params: dict, reporter: Reporter,
                 job_id: int | None = None) -> FinetuneOutcome:
    """Fine-tune production per ``params["config"]`` and register the candidate (no gate)."""
    started = time.perf_counter()
    request = FinetuneRequest.from_params(params, job_id)
    config = FinetuneConfig.from_dict(request.config)
    production = store.production_model()
    if production is None:
        raise FinetuneError("there is no production model to fine-tune")
    threads = cpu_threads(config.cpu_threads)
    torch.set_num_threads(threads)
    work = store.models_dir / f".finetune-job{job_id or os.getpid()}.partial"
    resumed = take_resume(store, job_id, production.version, work, reporter)
    cutoff = resumed["cutoff"] if resumed else \
        max((p.id for p in store.list_pairs(include_history=True)), default=0)
    model_config = read_config(production.path)
    card = ModelCard.from_dict(production.card)
    nm_per_px = card.pixel_size(model_config)
    tile = config.tile_size or card.image_size(DEFAULT_IMAGE_SIZE)
    anchors = ensure_anchor_sets(store.workspace, nm_per_px, tile, config.anchor_train,
                                 config.anchor_test)
    reporter.log(f"anchor sets at {nm_per_px:g} nm/px, {tile} px: {anchors.train} "
                 f"({config.anchor_train}), {anchors.test} ({config.anchor_test})"
                 + (f", generated {', '.join(anchors.created)}" if anchors.created else ""))
    if not resumed:
        shutil.rmtree(work, ignore_errors=True)
    if config.strategy == STRATEGY:
        return run_tool_finetune(store, request, config, production, anchors, work, resumed,
                                 reporter, started, cutoff, nm_per_px, tile, job_id)
    job = _SharedJob(store, request, config, production, model_config, anchors, work, reporter,
                     started, cutoff, nm_per_px, tile, threads, job_id)
    try:
        candidate, summary = run_shared_finetune(job, resumed)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    reporter.log(f"registered candidate v{candidate.version} (parent v{production.version}) "
                 f"after {summary.steps} steps in {summary.train_seconds:.0f} s")
    return FinetuneOutcome(candidate, summary, anchors.test, tile)


@dataclass(frozen=True)
class _SharedJob:
    """What the ``shared`` strategy works with, fixed before it starts."""

    store: Store
    request: FinetuneRequest
    config: FinetuneConfig
    production: ModelVersion
    model_config: ExperimentConfig
    anchors: AnchorSets
    work: Path
    reporter: Reporter
    started: float
    cutoff: int
    nm_per_px: float
    tile: int
    threads: int
    job_id: int | None


def run_shared_finetune(job: _SharedJob, resumed: dict | None) -> tuple[ModelVersion, TrainingSummary]:
    """The ``shared`` strategy: fit the whole GAN on corrected + anchor pairs, blend, register."""
    config, reporter, production = job.config, job.reporter, job.production
    exported = export_split(job.store, job.work / "corrected_train", "train", job.nm_per_px, job.tile,
                            job.cutoff)
    for line in exported.skipped:
        reporter.log(f"skipped {line}")
    if exported.path is None:
        raise FinetuneError("no usable corrected pairs in the train split")
    init_dir, init_note = prepare_init(Path(production.path), job.work / "init")
    reporter.log(init_note)
    reporter.check_cancel()
    n_new, n_old = exported.tiles, config.anchor_train
    new_repeats, old_repeats = mix_repeats(n_new, n_old, config.new_fraction)
    calibration = calibrate_tools(Path(production.path), job.anchors.train, exported.path, reporter.log)
    dataset = _mixed_dataset(job, exported.path, calibration, new_repeats, old_repeats)
    planned = math.ceil(config.epochs * len(dataset) / (new_repeats * config.batch_size))
    steps = min(planned, config.max_steps)
    steps_per_epoch = max(1, planned // config.epochs)
    train_config = (job.model_config
                    .replace("data", crop_size=config.crop_size, batch_size=config.batch_size,
                             nm_per_px=job.nm_per_px, holdout_fraction=0.0, num_workers=0)
                    .replace("train", steps=steps, log_every=10, sample_every=steps,
                             checkpoint_every=steps, seed=config.seed, device=config.device))
    new_share = n_new * new_repeats / len(dataset)
    capped = f" (capped from {planned})" if steps < planned else ""
    reporter.log(f"training {steps} steps{capped} = {steps / steps_per_epoch:.1f} epochs of "
                 f"{steps_per_epoch} on {exported.tiles} tiles of {len(exported.pair_ids)} "
                 f"corrected pairs (×{new_repeats}) + {n_old} anchor pairs (×{old_repeats}); "
                 f"{new_share:.0%} new per epoch, LR × {config.lr_scale:g}, {job.threads} CPU "
                 f"thread{'s' if job.threads > 1 else ''}")
    reporter.plan(FinetunePlan(steps, planned, steps_per_epoch, len(exported.pair_ids),
                               n_new, n_old, round(new_share, 4), config.lr_scale, job.threads))
    monitor = LossMonitor(warmup=min(50, max(5, steps // 10)),
                          recover_steps=max(10, 2 * steps_per_epoch))
    progress = JobProgress(reporter, monitor, config.time_budget_s, steps_per_epoch)
    recipe = {"size": job.tile, "anchor_train": str(job.anchors.train), "anchor_pairs": n_old,
              "corrected_pairs": len(exported.pair_ids), "corrected_tiles": n_new,
              "repeats": {"corrected": new_repeats, "anchor": old_repeats},
              "new_fraction": round(new_share, 4), "max_pair_id": job.cutoff,
              "calibrated_tools": {t.tool: {"gain": round(t.gain, 4), "offset": round(t.offset, 4)}
                                   for t in (calibration.tools if calibration else ())}}
    result = fit(train_config, dataset, job.work / "candidate", [progress], resume=bool(resumed),
                 init_from=init_dir, lr_scale=config.lr_scale, data_recipe=recipe,
                 command=f"python -m loop finetune (job {job.job_id})")
    if result.stop_reason == "interrupted" or (progress.cancelled and reporter.interrupted):
        keep_for_resume(job.store, job.job_id, job.work, {"cutoff": job.cutoff, "step": result.step,
                                                          "production_version": production.version})
        raise JobInterrupted(f"the worker shut down at step {result.step} of {steps}; the "
                             "checkpoint is kept and the next worker resumes from it")
    if progress.cancelled:
        raise JobCancelled(f"cancelled at step {result.step} of {steps}")
    composition = _compose(job, exported.path, calibration)
    summary = TrainingSummary(
        job_id=job.job_id, trigger=job.request.trigger, reason=job.request.reason,
        parent_version=production.version, init=init_note,
        pairs_used={**recipe, "new_since_production": len(
            [p for p in exported.pair_ids if p > production.data_cutoff_pair_id])},
        composition=composition, epochs_planned=config.epochs,
        epochs=round(result.step / steps_per_epoch, 2), steps=result.step, steps_planned=planned,
        stop_reason=result.stop_reason, train_seconds=result.wall_seconds,
        seconds_per_step=round(result.wall_seconds / max(1, result.step), 4),
        wall_seconds=round(time.perf_counter() - job.started, 1),
        device=ModelCard.read(job.work / "candidate").device,
        cpu_threads=job.threads, warnings=tuple(progress.warnings), final_losses=result.losses,
        config=config.to_dict(), max_pair_id=job.cutoff)
    candidate = register_candidate(job.store, job.work / "candidate", train_config.to_dict(), summary,
                                   drift_reference((job.anchors.train, exported.path), job.nm_per_px),
                                   production, job.cutoff, job.nm_per_px, job.job_id)
    return candidate, summary


def _mixed_dataset(job: _SharedJob, corrected: Path, calibration: CalibrationSet | None,
                   new_repeats: int, old_repeats: int) -> ConcatPairedDataset:
    """Anchor pairs ×``old_repeats`` + corrected pairs ×``new_repeats``, as the model's data."""
    config = job.config
    data = replace(job.model_config.data, nm_per_px=job.nm_per_px, holdout_fraction=0.0)
    crop = dict(crop_size=config.crop_size, calibration=calibration)
    parts = [PairedDataset.for_training(job.anchors.train, data, seed=config.seed + k, **crop)
             for k in range(old_repeats)]
    # Distinct seeds: each repeat of a new pair gets its own crop and flips.
    parts += [PairedDataset.for_training(corrected, data, seed=config.seed + 100 + k, **crop)
              for k in range(new_repeats)]
    dataset = ConcatPairedDataset(parts)
    if len(dataset) < config.batch_size:
        raise FinetuneError(f"{len(dataset)} pairs are too few for batch size "
                            f"{config.batch_size}")
    return dataset


def _compose(job: _SharedJob, corrected: Path, calibration: CalibrationSet | None) -> dict:
    """Blend the trained candidate back / add tool experts (``compose_candidate``); its summary."""
    job_tools = Counter(str(item.get("profile", "tool:unknown")) for item in
                        json.loads((corrected / "manifest.json").read_text())["items"])
    calibration, composition = compose_candidate(
        job.work / "candidate", Path(job.production.path), calibration, job_tools, job.config.blend,
        job.config.tool_experts, job.config.lr_scale, job.reporter.log)
    if calibration is not None:
        save_calibration(calibration, job.work / "candidate")
    return composition
