"""The plain alternative to a base model: a from-scratch ResNet-18 U-Net on the same pairs.

    .venv/bin/python -m bench.base_peer --data runs/data/train --data runs/data/rand_train \\
        --minutes 35 --out runs/base_peer

Trains ``bench.peer.ResNet18UNet`` (random init, BCE + Dice, the 8 flips/rotations, Adam 1e-3,
crop 128, batch 4) with ``loop.finetune.expert.train_expert`` for a fixed wall time; 2 % of the
pairs (by name hash, never a scoring set) choose the best weights. Writes ``peer.safetensors``
and ``peer.json``; ``bench.default_model --peer DIR`` scores it beside the GAN.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from scipy import ndimage

from bench.peer import SIZE_MULTIPLE, ResNet18UNet
from loop.finetune.expert import ExpertRecipe, train_expert
from semgan.data import read_manifest
from semgan.imageio import load_image

NM_PER_PX = 4.0
HOLDOUT_PERCENT = 2


def load_pairs(folder: Path) -> tuple[list, list]:
    """(train, holdout) lists of (uint8 SEM, bool layout) from a synth-format folder."""
    train, holdout = [], []
    for item in read_manifest(folder)["items"]:
        sem = np.rint(load_image(folder / item["sem"]).pixels * 255).astype(np.uint8)
        mask = load_image(folder / item["layout"]).pixels > 0.5
        bucket = int(hashlib.sha256(f"{folder.name}/{item['name']}".encode()).hexdigest(), 16) % 100
        (holdout if bucket < HOLDOUT_PERCENT else train).append((sem, mask))
    return train, holdout


class PeerMethod:
    """The trained peer as an evaluation method (resampled to its 4 nm/px and back)."""

    def __init__(self, folder: Path) -> None:
        self.model = ResNet18UNet()
        self.model.load_state_dict(load_file(str(folder / "peer.safetensors")))
        self.model.eval()

    def __call__(self, sem_image: np.ndarray, nm_per_px: float) -> tuple[np.ndarray, np.ndarray]:
        """P(feature) and mask at the input's size."""
        scale = nm_per_px / NM_PER_PX
        image = sem_image.astype(np.float32) / 255
        if abs(scale - 1) > 1e-6:
            image = ndimage.zoom(image, scale, order=1)
        h, w = image.shape
        ph, pw = -(-h // SIZE_MULTIPLE) * SIZE_MULTIPLE, -(-w // SIZE_MULTIPLE) * SIZE_MULTIPLE
        x = np.pad(image, ((0, ph - h), (0, pw - w)), mode="symmetric")
        with torch.inference_mode():
            p = torch.sigmoid(self.model(torch.from_numpy(x * 2 - 1)[None, None]))[0, 0, :h, :w].numpy()
        if abs(scale - 1) > 1e-6:
            p = ndimage.zoom(p, (sem_image.shape[0] / h, sem_image.shape[1] / w), order=1)
        return p, p > 0.5


def main(argv: list[str] | None = None) -> int:
    """Train the peer for ``--minutes`` and save it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, action="append", required=True)
    parser.add_argument("--minutes", type=float, default=35.0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    train, holdout = [], []
    for folder in args.data:
        t, h = load_pairs(folder)
        train += t
        holdout += h
    torch.manual_seed(0)
    model = ResNet18UNet()
    recipe = ExpertRecipe(crop=128, batch=4, lr=1e-3, max_steps=10**7, min_steps=10**7,
                          time_budget_s=args.minutes * 60, eval_every=250, patience=10**6)
    started = time.perf_counter()
    result = train_expert(model, train, holdout, recipe, kind="logits", multiple=SIZE_MULTIPLE)
    args.out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in result.state.items()}, str(args.out / "peer.safetensors"))
    summary = {"data": [str(f) for f in args.data], "train_pairs": len(train), "holdout_pairs": len(holdout),
               "steps": result.steps, "best_step": result.best_step, "best_holdout_iou": result.best_iou,
               "seconds": round(time.perf_counter() - started, 1), "threads": torch.get_num_threads(),
               "recipe": {"crop": recipe.crop, "batch": recipe.batch, "lr": recipe.lr, "loss": "BCE + Dice"}}
    (args.out / "peer.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
