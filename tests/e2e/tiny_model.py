"""A tiny model trained for a few seconds on synthetic pairs: a stand-in for the shipped default.

Random weights predict noise; ~150 L1 steps on "clean"/"noisy" SEM images give masks that look
like layouts on those profiles and fail on "drifted" ones, which is what the app's tests and
demos need to show.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from semgan.checkpoint import export_inference, save_checkpoint
from semgan.config import PRESETS
from semgan.model import build_models
from semgan.semsim import PROFILES
from semgan.synth import make_pair

NM_PER_PX = 4.0


def _fit(generator: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor, steps: int,
         seed: int) -> None:
    """L1 steps on random 64 px crops of (N, 1, 128, 128) tensors in [-1, 1]."""
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.Adam(generator.parameters(), 2e-3)
    generator.train()
    for _ in range(steps):
        index = rng.integers(0, len(inputs), 8)
        y, x = rng.integers(0, inputs.shape[-1] - 64, 2)
        output = generator(inputs[index, :, y:y + 64, x:x + 64])
        loss = (output - targets[index, :, y:y + 64, x:x + 64]).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    generator.eval()


def make_tiny_model(out_dir: str | Path, steps: int = 150, seed: int = 0,
                    name: str = "tiny") -> Path:
    """Train the tiny preset's two generators briefly and export them to ``out_dir``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convs: one thread is faster than two fighting other jobs
    try:
        return _train_and_export(Path(out_dir), steps, seed, name)
    finally:
        torch.set_num_threads(threads)


def _train_and_export(out_dir: Path, steps: int, seed: int, name: str) -> Path:
    """The body of make_tiny_model."""
    torch.manual_seed(seed)
    config = PRESETS["tiny"]
    pairs = [make_pair(i, size=128, nm_per_px=NM_PER_PX,
                       profiles=[PROFILES["clean"], PROFILES["noisy"]], seed=seed + 1)
             for i in range(16)]
    sem = torch.tensor(np.stack([p.sem_image for p in pairs]) / 127.5 - 1,
                       dtype=torch.float32)[:, None]  # (16, 1, 128, 128)
    layout = torch.tensor(np.stack([p.layout_mask for p in pairs]) * 2.0 - 1,
                          dtype=torch.float32)[:, None]
    models = build_models(config, seed=seed, critics=False)
    _fit(models.sem_to_layout, sem, layout, steps, seed)
    _fit(models.layout_to_sem, layout, sem, steps, seed + 1)
    card = {"format": "semgan-model-card", "name": name, "preset": "tiny",
            "nm_per_px": NM_PER_PX, "steps": steps, "metrics": {}}
    with tempfile.TemporaryDirectory() as full:
        save_checkpoint(full, models, None, config, card, None)
        return export_inference(full, out_dir)
