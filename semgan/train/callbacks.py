"""Fit-loop callbacks: loss log, sample grids, progress bar. Hooks are no-ops unless overridden."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from semgan.config import ExperimentConfig
    from semgan.model import GanModels
    from semgan.train.loop import FitResult
    from semgan.train.step import Optimizers


@dataclass
class RunInfo:
    """What a callback may look at: given to ``on_start``."""

    config: ExperimentConfig
    out_dir: Path
    start_step: int
    total_steps: int
    models: GanModels  # unwrapped (no DDP), on the training device
    optimizers: Optimizers
    device: torch.device
    rank: int = 0
    world_size: int = 1


class Callback:
    """Base class. Set a stop with ``request_stop()``; the loop checkpoints and returns after the step."""

    stop_requested: bool = False

    def request_stop(self) -> None:
        """Ask the loop to stop after the current step (e.g. a cancelled background job)."""
        self.stop_requested = True

    def on_start(self, run: RunInfo) -> None:
        """Before the first step of this sitting."""

    def on_step(self, step: int, losses: dict[str, float]) -> None:
        """After optimizer step ``step`` (1-based: the number of steps done)."""

    def on_checkpoint(self, step: int, model_dir: Path) -> None:
        """After a checkpoint for ``step`` was written."""

    def on_end(self, result: FitResult) -> None:
        """After the last step (completed, stopped or interrupted)."""


class JsonlLogger(Callback):
    """Appends one JSON line of losses and LR every ``every`` steps to ``out_dir/train_log.jsonl``."""

    def __init__(self, every: int = 10, name: str = "train_log.jsonl") -> None:
        self.every = every
        self.name = name
        self.path: Path | None = None

    def on_start(self, run: RunInfo) -> None:
        """Drop lines past the resumed step (written after the last checkpoint, then lost)."""
        self.path = run.out_dir / self.name
        self.optimizer = run.optimizers.generator
        self.started = time.perf_counter()
        if self.path.exists():
            kept = [line for line in self.path.read_text().splitlines()
                    if line.strip() and json.loads(line).get("step", 0) <= run.start_step]
            self.path.write_text("".join(line + "\n" for line in kept))

    def on_step(self, step: int, losses: dict[str, float]) -> None:
        """Write a line on every ``every``-th step."""
        if step % self.every and step != 1:
            return
        record = {"step": step, "lr": self.optimizer.param_groups[0]["lr"],
                  "elapsed_s": round(time.perf_counter() - self.started, 3),
                  **{k: round(v, 6) for k, v in losses.items()}}
        with open(self.path, "a") as handle:
            handle.write(json.dumps(record) + "\n")


def sample_grid(models: GanModels, sem_images: torch.Tensor, layout_masks: torch.Tensor) -> np.ndarray:
    """uint8 grid, one row per sample: SEM | truth layout | predicted layout | predicted SEM (reverse)."""
    was_training = models.training
    models.eval()  # BatchNorm running stats, no dropout: what inference will show
    with torch.inference_mode():
        predicted_layout = models.sem_to_layout(sem_images)  # (N, 1, H, W)
        predicted_sem = models.layout_to_sem(layout_masks)
    models.train(was_training)
    columns = [sem_images, layout_masks, predicted_layout, predicted_sem]
    rows = [torch.cat([c[i, 0] for c in columns], dim=1) for i in range(sem_images.shape[0])]
    grid = torch.cat(rows, dim=0).float().cpu().numpy()
    return np.clip((grid + 1) * 127.5 + 0.5, 0, 255).astype(np.uint8)


class SampleGrid(Callback):
    """Every ``every`` steps, writes ``out_dir/samples/step_NNNNNNN.png`` from fixed samples."""

    def __init__(self, every: int, sem_images: torch.Tensor, layout_masks: torch.Tensor) -> None:
        self.every = every
        self.sem_images = sem_images  # (N, 1, H, W) in [-1, 1]
        self.layout_masks = layout_masks

    def on_start(self, run: RunInfo) -> None:
        """Remember the models and where to write."""
        self.models = run.models
        self.folder = run.out_dir / "samples"
        self.sem_images = self.sem_images.to(run.device)
        self.layout_masks = self.layout_masks.to(run.device)

    def on_step(self, step: int, losses: dict[str, float]) -> None:
        """Render and save on every ``every``-th step."""
        if step % self.every:
            return
        from PIL import Image

        self.folder.mkdir(parents=True, exist_ok=True)
        grid = sample_grid(self.models, self.sem_images, self.layout_masks)
        Image.fromarray(grid).save(self.folder / f"step_{step:07d}.png")  # lossless


class ProgressBar(Callback):
    """tqdm bar with ETA and the main losses (command line only)."""

    def on_start(self, run: RunInfo) -> None:
        """Open the bar at the resumed step."""
        from tqdm import tqdm

        self.bar = tqdm(total=run.total_steps, initial=run.start_step, unit="step", dynamic_ncols=True,
                        desc="train")

    def on_step(self, step: int, losses: dict[str, float]) -> None:
        """Advance and show losses."""
        self.bar.update(1)
        self.bar.set_postfix({k: f"{losses[k]:.3g}" for k in ("g_l1", "g_loss", "d_loss")}, refresh=False)

    def on_end(self, result: Any) -> None:
        """Close the bar."""
        self.bar.close()
