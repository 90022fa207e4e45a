"""The fit loop shared by the CLI and background fine-tuning: resume, DDP, callbacks, checkpoints."""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.optim.lr_scheduler import LambdaLR

import semgan
from semgan.checkpoint import (
    CheckpointError,
    TrainState,
    has_checkpoint,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from semgan.config import ExperimentConfig
from semgan.data import ConcatPairedDataset, PairedDataset, iterate_batches, standardize_sem
from semgan.device import (
    Distributed,
    describe_device,
    distributed_from_env,
    make_precision,
    process_group,
    training_device,
)
from semgan.errors import SemganError
from semgan.model import GanModels, build_models
from semgan.train.callbacks import Callback, JsonlLogger, ProgressBar, RunInfo, SampleGrid
from semgan.train.step import Networks, build_optimizers, train_step

# Sections that define the networks and their training objective: a resumed or fine-tuned run
# must match them; data and train settings (steps, batch, crop) may change between sittings.
MODEL_SECTIONS = ("generator", "discriminator", "loss", "optim")


class TrainingError(SemganError):
    """Training cannot continue (diverged, or an incompatible checkpoint)."""


@dataclass
class FitResult:
    """How a ``fit`` call ended."""

    model_dir: Path
    start_step: int
    step: int
    stop_reason: str  # "completed", "stopped" (a callback asked) or "interrupted" (SIGINT/SIGTERM)
    wall_seconds: float
    losses: dict[str, float] = field(default_factory=dict)


def lr_factor(step: int, total_steps: int, decay_start_fraction: float) -> float:
    """1 until ``decay_start_fraction`` of the run, then linearly down to 0 at ``total_steps``."""
    decay_start = int(decay_start_fraction * total_steps)
    if step < decay_start:
        return 1.0
    return max(0.0, (total_steps - step) / max(1, total_steps - decay_start))


def check_compatible(saved: ExperimentConfig, wanted: ExperimentConfig, source: Path) -> None:
    """Raise TrainingError when ``wanted`` describes other networks or losses than ``saved``."""
    for section in MODEL_SECTIONS:
        old, new = getattr(saved, section), getattr(wanted, section)
        if old != new:
            diff = next(k for k in old.__dataclass_fields__ if getattr(old, k) != getattr(new, k))
            raise TrainingError(f"{source} was trained with {section}.{diff} = {getattr(old, diff)!r}, the "
                                f"requested config has {getattr(new, diff)!r}; use the same preset or a new --out")


@contextmanager
def _stop_on_signals(enabled: bool) -> Iterator[dict[str, bool]]:
    """SIGINT/SIGTERM set a flag: the loop saves a checkpoint and returns instead of dying mid-step."""
    flag = {"stop": False}
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum: int, frame: Any) -> None:
        if flag["stop"] and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C aborts without waiting
        flag["stop"] = True

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def fit(config: ExperimentConfig, dataset: PairedDataset | ConcatPairedDataset, out_dir: str | Path,
        callbacks: Sequence[Callback] = (), resume: bool = True, *, init_from: str | Path | None = None,
        lr_scale: float = 1.0, command: str | None = None, data_recipe: dict | None = None,
        progress: bool = False, handle_signals: bool = True) -> FitResult:
    """Train ``config`` on ``dataset`` into ``out_dir``; resume from ``out_dir``'s checkpoint when present.

    ``init_from``: start from another model's weights and optimizer states (fine-tuning), with
    the learning rate multiplied by ``lr_scale`` (e.g. 0.1). ``data_recipe`` replaces the card's
    description of the data (default: ``dataset.recipe()``). Under torchrun (WORLD_SIZE > 1)
    every rank trains on its shard with DDP and only rank 0 writes files.
    """
    dist_info = distributed_from_env()
    device = training_device(config.train.device, dist_info)
    with process_group(dist_info, device), _stop_on_signals(handle_signals) as signal_flag:
        recipe = data_recipe if data_recipe is not None else dataset.recipe()
        return _fit(config, dataset, Path(out_dir), list(callbacks), resume, init_from, lr_scale,
                    {"command": command, "data_recipe": recipe}, progress, dist_info, device, signal_flag)


def _fit(config: ExperimentConfig, dataset: PairedDataset, out_dir: Path, callbacks: list[Callback],
         resume: bool, init_from: str | Path | None, lr_scale: float, provenance: dict, progress: bool,
         dist_info: Distributed, device: torch.device, signal_flag: dict[str, bool]) -> FitResult:
    if not np.isclose(dataset.nm_per_px, config.data.nm_per_px, rtol=1e-6):
        raise TrainingError(f"{dataset.data_dir} is at {dataset.nm_per_px} nm/px, the config expects "
                            f"{config.data.nm_per_px} nm/px")
    source = out_dir if resume and has_checkpoint(out_dir) else (Path(init_from) if init_from else None)
    checkpoint = load_checkpoint(source, device) if source is not None else None
    if checkpoint is not None and not checkpoint.is_full and (
            source == out_dir or (config.loss.adversarial and checkpoint.models.layout_critic is None)):
        raise CheckpointError(f"{source}: an inference export without critics cannot be trained on; start "
                              "from a full checkpoint or an export made with --critics")
    if checkpoint is not None:
        check_compatible(checkpoint.config, config, source)
    resuming = checkpoint is not None and source == out_dir
    state = checkpoint.state if resuming else TrainState()
    models = checkpoint.models if checkpoint is not None else build_models(config, seed=config.train.seed)
    # channels_last: the layout the fast bf16/AMX and cuDNN conv kernels work in (bench_model).
    models.to(device).to(memory_format=torch.channels_last).train()
    scale = checkpoint.card.get("lr_scale", 1.0) if resuming else lr_scale
    if checkpoint is None or not checkpoint.is_full:
        # From scratch, or from an export with critics (the shipped default): fresh Adam moments.
        optimizers = build_optimizers(models, config.optim, scale)
    else:
        # Fine-tuning keeps Adam's moments and restarts the schedule at lr·scale; a resumed
        # scheduler below resets the LR for its step.
        optimizers = checkpoint.optimizers(scale)
    total = config.train.steps
    schedule = lambda step: lr_factor(step, total, config.optim.decay_start_fraction)  # noqa: E731
    # The LR is a pure function of the step, so a resumed scheduler is rebuilt at that step.
    schedulers = {name: LambdaLR(opt, schedule, last_epoch=state.step - 1 if state.step else -1)
                  for name, opt in (("generator", optimizers.generator), ("discriminator", optimizers.discriminator))
                  if opt is not None}
    precision = make_precision(device, config.train.amp, config.train.precision)
    if resuming and state.scaler and precision.scaler is not None:
        precision.scaler.load_state_dict(state.scaler)
    # Dropout randomness: restore the saved stream on a single-process resume, else seed per rank.
    seed_seq = np.random.SeedSequence([config.train.seed, dist_info.rank, state.step])
    torch.manual_seed(int(seed_seq.generate_state(1)[0]))
    if resuming and not dist_info.enabled:
        set_rng_state(state.rng)

    wrap = _ddp_wrapper(device) if dist_info.enabled else (lambda module: module)
    networks = Networks.of(models, wrap)
    card = _card(checkpoint.card if resuming else None, config, provenance, init_from, scale)
    if dist_info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        callbacks = _default_callbacks(config, dataset, progress) + callbacks
    run = RunInfo(config, out_dir, state.step, total, models, optimizers, device, dist_info.rank,
                  dist_info.world_size)
    for callback in callbacks:
        callback.on_start(run)

    def checkpoint_now(step: int) -> None:
        state.step, state.wall_seconds = step, previous_wall + (time.perf_counter() - started)
        state.schedulers = {name: s.state_dict() for name, s in schedulers.items()}
        state.rng = rng_state()
        state.scaler = precision.scaler.state_dict() if precision.scaler is not None else None
        if dist_info.enabled:
            _average_batchnorm_stats(models, dist_info.world_size)
        if dist_info.is_main:
            card.update(steps=step, wall_seconds=round(state.wall_seconds, 1), device=describe_device(device),
                        world_size=dist_info.world_size, updated=datetime.now(UTC).isoformat(timespec="seconds"))
            save_checkpoint(out_dir, models, optimizers, config, card, state)
            for callback in callbacks:
                callback.on_checkpoint(step, out_dir)
        if dist_info.enabled:
            torch.distributed.barrier()  # nobody races ahead while rank 0 writes

    started, previous_wall = time.perf_counter(), state.wall_seconds
    step, losses, reason = state.step, {}, "completed"
    batches = iterate_batches(dataset, config.data.batch_size, seed=config.train.seed, start_step=step,
                              rank=dist_info.rank, world_size=dist_info.world_size,
                              num_workers=config.data.num_workers)
    while step < total:
        losses = train_step(networks, optimizers, next(batches), config.loss, precision)
        for scheduler in schedulers.values():
            scheduler.step()
        step += 1
        if not math.isfinite(losses["g_loss"] + losses["d_loss"]) and precision.scaler is None:
            raise TrainingError(f"losses became non-finite at step {step} ({losses}); the last checkpoint "
                                f"in {out_dir} is intact — lower optim.lr or check the data")
        for callback in callbacks:
            callback.on_step(step, losses)
        stop = _agree(signal_flag["stop"] or any(c.stop_requested for c in callbacks), dist_info, device)
        if step % config.train.checkpoint_every == 0 or step == total or stop:
            checkpoint_now(step)
        if stop:
            reason = "interrupted" if signal_flag["stop"] else "stopped"
            break
    if step == run.start_step and not resuming:
        checkpoint_now(step)  # a zero-step run still leaves a loadable model folder
    result = FitResult(out_dir, run.start_step, step, reason, round(state.wall_seconds, 3), losses)
    for callback in callbacks:
        callback.on_end(result)
    return result


def _agree(stop: bool, dist_info: Distributed, device: torch.device) -> bool:
    """Every rank stops at the same step: a lone rank stopping would hang the others' all-reduce."""
    if not dist_info.enabled:
        return stop
    flag = torch.tensor([1.0 if stop else 0.0], device=device)
    torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
    return bool(flag.item())


def _average_batchnorm_stats(models: GanModels, world_size: int) -> None:
    """Average BatchNorm running stats over ranks: each rank saw only its shard of the data."""
    for module in models.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
            for buffer in (module.running_mean, module.running_var):
                torch.distributed.all_reduce(buffer)
                buffer.div_(world_size)


def _ddp_wrapper(device: torch.device) -> Any:
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index] if device.type == "cuda" else None
    # Wrapping broadcasts rank 0's parameters and buffers, so every rank starts identical.
    return lambda module: DistributedDataParallel(module, device_ids=device_ids)


def _default_callbacks(config: ExperimentConfig, dataset: PairedDataset, progress: bool) -> list[Callback]:
    pairs = [dataset.load_pair(i) for i in range(min(4, len(dataset)))]
    multiple = 2**config.generator.n_down
    side = min(min(s.shape) for s, _ in pairs) // multiple * multiple
    standardization = config.data.sem_standardization()
    if standardization is not None:
        pairs = [(standardize_sem(s, *standardization), m) for s, m in pairs]
    sem = torch.stack([torch.from_numpy(s[:side, :side] * 2 - 1)[None] for s, _ in pairs])  # (N, 1, S, S)
    layout = torch.stack([torch.from_numpy(np.where(m[:side, :side], 1.0, -1.0).astype(np.float32))[None]
                          for _, m in pairs])
    callbacks: list[Callback] = [JsonlLogger(config.train.log_every),
                                 SampleGrid(config.train.sample_every, sem.float(), layout)]
    return [*callbacks, ProgressBar()] if progress else callbacks


def _card(previous: dict | None, config: ExperimentConfig, provenance: dict, init_from: str | Path | None,
          lr_scale: float) -> dict[str, Any]:
    command = provenance["command"]
    if previous is not None:
        card = dict(previous)
        card.setdefault("resumed_with", [])
        if command and command != card.get("command"):
            card["resumed_with"].append(command)
        return card
    return {
        "format": "semgan-model-card", "version": 1, "preset": config.preset,
        "nm_per_px": config.data.nm_per_px, "data_recipe": provenance["data_recipe"], "steps": 0, "wall_seconds": 0.0,
        "device": None, "metrics": {}, "command": command,
        "fine_tuned_from": str(Path(init_from).resolve()) if init_from else None, "lr_scale": lr_scale,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "torch_version": torch.__version__, "semgan_version": semgan.__version__,
    }
