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
    Checkpoint,
    CheckpointError,
    TrainState,
    has_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from semgan.config import ExperimentConfig
from semgan.data import ConcatPairedDataset, PairedDataset, iterate_batches, standardize_sem
from semgan.device import (
    Distributed,
    Precision,
    describe_device,
    distributed_from_env,
    make_precision,
    process_group,
    training_device,
)
from semgan.errors import SemganError
from semgan.model import build_models
from semgan.model_card import ModelCard
from semgan.train.callbacks import Callback, JsonlLogger, ProgressBar, RunInfo, SampleGrid
from semgan.train.distributed import agree, average_batchnorm_stats, ddp_wrapper
from semgan.train.step import Networks, Optimizers, build_optimizers, train_step

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
    checkpoint, resuming = _starting_point(config, dataset, out_dir, resume, init_from, device)
    state = checkpoint.state if resuming else TrainState()
    models = checkpoint.models if checkpoint is not None else build_models(config, seed=config.train.seed)
    # channels_last: the layout the fast bf16/AMX and cuDNN conv kernels work in (bench_model).
    models.to(device).to(memory_format=torch.channels_last).train()
    if resuming:
        scale = 1.0 if checkpoint.card.lr_scale is None else checkpoint.card.lr_scale
    else:
        scale = lr_scale
    if checkpoint is None or not checkpoint.is_full:
        # From scratch, or from an export with critics (the shipped default): fresh Adam moments.
        optimizers = build_optimizers(models, config.optim, scale)
    else:
        # Fine-tuning keeps Adam's moments and restarts the schedule at lr·scale; a resumed
        # scheduler below resets the LR for its step.
        optimizers = checkpoint.optimizers(scale)
    schedulers = _schedulers(optimizers, config, state.step)
    precision = make_precision(device, config.train.amp, config.train.precision)
    if resuming and state.scaler and precision.scaler is not None:
        precision.scaler.load_state_dict(state.scaler)
    # Dropout randomness: restore the saved stream on a single-process resume, else seed per rank.
    seed_seq = np.random.SeedSequence([config.train.seed, dist_info.rank, state.step])
    torch.manual_seed(int(seed_seq.generate_state(1)[0]))
    if resuming and not dist_info.enabled:
        set_rng_state(state.rng)

    wrap = ddp_wrapper(device) if dist_info.enabled else (lambda module: module)
    networks = Networks.of(models, wrap)
    card = _card(checkpoint.card if resuming else None, config, provenance, init_from, scale)
    if dist_info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        callbacks = _default_callbacks(config, dataset, progress) + callbacks
    run = RunInfo(config, out_dir, state.step, config.train.steps, models, optimizers, device,
                  dist_info.rank, dist_info.world_size)
    for callback in callbacks:
        callback.on_start(run)
    saver = _Saver(out_dir, config, card, state, run, schedulers, precision, dist_info, callbacks)
    batches = iterate_batches(dataset, config.data.batch_size, seed=config.train.seed, start_step=state.step,
                              rank=dist_info.rank, world_size=dist_info.world_size,
                              num_workers=config.data.num_workers)
    step, losses, reason = state.step, {}, "completed"
    while step < run.total_steps:
        losses = train_step(networks, optimizers, next(batches), config.loss, precision)
        for scheduler in schedulers.values():
            scheduler.step()
        step += 1
        if not math.isfinite(losses["g_loss"] + losses["d_loss"]) and precision.scaler is None:
            raise TrainingError(f"losses became non-finite at step {step} ({losses}); the last checkpoint "
                                f"in {out_dir} is intact — lower optim.lr or check the data")
        for callback in callbacks:
            callback.on_step(step, losses)
        stop = agree(signal_flag["stop"] or any(c.stop_requested for c in callbacks), dist_info, device)
        if step % config.train.checkpoint_every == 0 or step == run.total_steps or stop:
            saver.save(step)
        if stop:
            reason = "interrupted" if signal_flag["stop"] else "stopped"
            break
    if step == run.start_step and not resuming:
        saver.save(step)  # a zero-step run still leaves a loadable model folder
    result = FitResult(out_dir, run.start_step, step, reason, round(state.wall_seconds, 3), losses)
    for callback in callbacks:
        callback.on_end(result)
    return result


def _starting_point(config: ExperimentConfig, dataset: PairedDataset, out_dir: Path, resume: bool,
                    init_from: str | Path | None, device: torch.device) -> tuple[Checkpoint | None, bool]:
    """The checkpoint a run starts from (its own to resume, else ``init_from``'s) and whether it resumes."""
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
    return checkpoint, checkpoint is not None and source == out_dir


def _schedulers(optimizers: Optimizers, config: ExperimentConfig, step: int) -> dict[str, LambdaLR]:
    """LR schedulers at ``step``: the LR is a pure function of the step, so a resume rebuilds them."""
    total = config.train.steps
    schedule = lambda at: lr_factor(at, total, config.optim.decay_start_fraction)  # noqa: E731
    return {name: LambdaLR(opt, schedule, last_epoch=step - 1 if step else -1)
            for name, opt in (("generator", optimizers.generator), ("discriminator", optimizers.discriminator))
            if opt is not None}


class _Saver:
    """Writes the run's checkpoint (rank 0) with the train state as of a step; all ranks wait for it."""

    def __init__(self, out_dir: Path, config: ExperimentConfig, card: ModelCard, state: TrainState,
                 run: RunInfo, schedulers: dict[str, LambdaLR], precision: Precision,
                 dist_info: Distributed, callbacks: list[Callback]) -> None:
        self.out_dir, self.config, self.card, self.state, self.run = out_dir, config, card, state, run
        self.schedulers, self.precision, self.dist_info, self.callbacks = schedulers, precision, dist_info, callbacks
        self.started, self.previous_wall = time.perf_counter(), state.wall_seconds

    def save(self, step: int) -> None:
        """Checkpoint at ``step``; the card gets the steps, wall time, device and world size."""
        state, dist_info = self.state, self.dist_info
        state.step, state.wall_seconds = step, self.previous_wall + (time.perf_counter() - self.started)
        state.schedulers = {name: s.state_dict() for name, s in self.schedulers.items()}
        state.rng = rng_state()
        state.scaler = self.precision.scaler.state_dict() if self.precision.scaler is not None else None
        if dist_info.enabled:
            average_batchnorm_stats(self.run.models, dist_info.world_size)
        if dist_info.is_main:
            self.card.update(steps=step, wall_seconds=round(state.wall_seconds, 1),
                             device=describe_device(self.run.device), world_size=dist_info.world_size,
                             updated=datetime.now(UTC).isoformat(timespec="seconds"))
            save_checkpoint(self.out_dir, self.run.models, self.run.optimizers, self.config, self.card, state)
            for callback in self.callbacks:
                callback.on_checkpoint(step, self.out_dir)
        if dist_info.enabled:
            torch.distributed.barrier()  # nobody races ahead while rank 0 writes


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


def _card(previous: ModelCard | None, config: ExperimentConfig, provenance: dict, init_from: str | Path | None,
          lr_scale: float) -> ModelCard:
    command = provenance["command"]
    if previous is not None:
        card = previous.copy()
        if "resumed_with" not in card:
            card.resumed_with = []
        if command and command != card.command:
            card.resumed_with.append(command)
        return card
    return ModelCard.new(
        preset=config.preset, nm_per_px=config.data.nm_per_px, data_recipe=provenance["data_recipe"],
        command=command, fine_tuned_from=str(Path(init_from).resolve()) if init_from else None,
        lr_scale=lr_scale, created=datetime.now(UTC).isoformat(timespec="seconds"),
        torch_version=torch.__version__, semgan_version=semgan.__version__)


def rng_state() -> dict[str, Any]:
    """The torch RNG states (CPU and every CUDA device) as JSON-able lists."""
    state: dict[str, Any] = {"torch_cpu": torch.get_rng_state().tolist()}
    if torch.cuda.is_available():
        state["torch_cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``rng_state`` captured (CUDA states only when the device count matches)."""
    if "torch_cpu" in state:
        torch.set_rng_state(torch.tensor(state["torch_cpu"], dtype=torch.uint8))
    cuda = state.get("torch_cuda")
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in cuda])
