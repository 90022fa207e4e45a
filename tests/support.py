"""Helpers shared by the test modules: no tests here, and pytest does not collect this file.

A tiny production model and corrected pairs in a workspace (the loop tests), synth-format folders,
tiny configs and a fixed batch (training), a lively random model on rectangles (inference), grey-level
pairs of a reference and an inverted tool (calibration), and a morphological opening (layout rules).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy import ndimage
from torch import nn

from loop.finetune import FinetuneConfig, set_finetune_config
from semgan.calibration import CalibrationSet, reference_set
from semgan.checkpoint import TrainState, export_inference, load_checkpoint, save_checkpoint
from semgan.config import PRESETS, ExperimentConfig
from semgan.model import build_models
from semgan.semsim import PROFILES
from semgan.synth import make_pair
from semgan.train.step import build_optimizers
from store import ModelVersion, Store

torch.set_num_threads(1)
TINY = PRESETS["tiny"]
SIZE = 64
NM_PER_PX = 4.0
# Seconds, not minutes: 2 crops of 32 px per step, a handful of steps, anchors of 4 + 3 pairs.
# The "shared" strategy (fit + blend) is what most loop tests exercise; TINY_TOOLS is the default
# strategy (an adaptation per tool) at the same scale.
TINY_FINETUNE = FinetuneConfig(strategy="shared", epochs=2, crop_size=32, batch_size=2,
                               max_steps=6, tile_size=SIZE, anchor_train=4, anchor_test=3,
                               cpu_threads=1, device="cpu")
TINY_TOOLS = FinetuneConfig(strategy="tools", expert_crop=32, expert_max_steps=6, batch_size=2, crop_size=32,
                            min_tool_pairs=1, tile_size=SIZE, anchor_train=4, anchor_test=3,
                            cpu_threads=1, device="cpu")


def sha256_of(path: Path) -> str:
    """sha256 hex digest of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_tiny_model(model_dir: Path, export: bool = False, config: ExperimentConfig = TINY) -> Path:
    """A randomly initialised tiny model: a full checkpoint, or an fp16 inference export."""
    models = build_models(config)
    card = {"nm_per_px": NM_PER_PX, "data_recipe": {"size": SIZE}}
    full = model_dir.with_name(model_dir.name + "-full") if export else model_dir
    save_checkpoint(full, models, build_optimizers(models, config.optim), config, card, TrainState())
    return export_inference(full, model_dir) if export else full


def perturbed_copy(source: Path, target: Path, shift: float) -> Path:
    """A full checkpoint equal to ``source`` with every floating tensor + ``shift``."""
    checkpoint = load_checkpoint(source)
    state = checkpoint.models.state_dict()
    checkpoint.models.load_state_dict({k: v + shift if v.is_floating_point() else v + 7
                                       for k, v in state.items()})
    return save_checkpoint(target, checkpoint.models, checkpoint.optimizers(), checkpoint.config,
                           checkpoint.card, checkpoint.state)


def install_production(store: Store, export: bool = False, config: ExperimentConfig = TINY) -> ModelVersion:
    """Register a tiny model as production v1 and the tiny fine-tune config as the default."""
    model_dir = save_tiny_model(store.models_dir / "v1", export, config)
    set_finetune_config(store, TINY_FINETUNE)
    return store.register_model(model_dir, sha256_of(model_dir / "weights.safetensors"),
                                config.to_dict(), {"nm_per_px": NM_PER_PX,
                                                 "data_recipe": {"size": SIZE}},
                                None, {}, {}, status="production")


def register_dummy_production(store: Store) -> ModelVersion:
    """A production row without weights: enough for trigger logic, which never loads it."""
    return store.register_model(store.models_dir / "none", "0" * 64, {}, {}, None, {}, {},
                                status="production")


def add_pairs(store: Store, count: int, seed: int = 5, size: int = SIZE,
              nm_per_px: float = NM_PER_PX, profile: str = "clean") -> list[int]:
    """``count`` synthetic SEM images of one tool profile with their true layouts, saved as
    corrected pairs (tool ``sim:PROFILE``)."""
    pair_ids = []
    for index in range(count):
        pair = make_pair(index, size=size, nm_per_px=nm_per_px, profiles=[PROFILES[profile]],
                         seed=seed)
        sample = store.add_sample(pair.sem_image, nm_per_px, "upload", tool=f"sim:{profile}")
        pair_ids.append(store.save_correction(sample.id, pair.layout_mask, "tester").id)
    return pair_ids


def workspace_with_pairs(root: Path, pairs: int = 8) -> Path:
    """A workspace folder with a tiny production model and ``pairs`` corrected pairs."""
    with Store.open(root) as store:
        install_production(store)
        add_pairs(store, pairs)
    return root


def record_dataset_argument(monkeypatch, name: str) -> list[object]:
    """Record the ``name`` attribute of every PairedDataset a fine-tune builds (list filled later)."""
    import loop.finetune.run as finetune_run
    from semgan.data import PairedDataset

    seen: list[object] = []

    class Recording(PairedDataset):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)
            seen.append(getattr(self, name))

    monkeypatch.setattr(finetune_run, "PairedDataset", Recording)
    return seen


def finetune_once(workspace: Path, config: ExperimentConfig, pairs: int = 8) -> ModelVersion:
    """Install ``config``'s tiny production model, add pairs, run one fine-tune job: its candidate."""
    from loop.finetune import request_finetune
    from loop.worker import run_worker

    with Store.open(workspace) as store:
        install_production(store, config=config)
        add_pairs(store, pairs)
        job = request_finetune(store)
        if run_worker(store.workspace, once=True) != 1:
            raise AssertionError("the worker ran no job")
        return store.get_model(store.get_job(job.id).result["candidate_version"])


# --- training data and configs ---


def write_synth_folder(folder: Path, count: int = 6, size: int = 64, nm_per_px: float = 4.0, seed: int = 0) -> Path:
    """A synth-format folder of random rectangles (layout) and a blurred, noisy rendering (SEM)."""
    rng = np.random.default_rng(seed)
    for sub in ("sem", "layout"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    items = []
    for index in range(count):
        layout = np.zeros((size, size), bool)
        for _ in range(4):
            y, x = rng.integers(0, size - 8, size=2)
            h, w = rng.integers(4, size // 3, size=2)
            layout[y:y + h, x:x + w] = True
        sem = np.where(layout, 170.0, 60.0) + rng.normal(0, 8, layout.shape)
        name = f"{index:06d}"
        Image.fromarray(np.clip(sem, 0, 255).astype(np.uint8)).save(folder / "sem" / f"{name}.png")
        Image.fromarray(layout.astype(np.uint8) * 255).save(folder / "layout" / f"{name}.png")
        items.append({"name": name, "sem": f"sem/{name}.png", "layout": f"layout/{name}.png", "profile": "clean"})
    manifest = {"version": 1, "nm_per_px": nm_per_px, "size": size, "items": items}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def tiny_config(steps: int = 3, **train: object) -> ExperimentConfig:
    """The tiny preset with a short run and frequent checkpoints."""
    return TINY.replace("train", steps=steps, checkpoint_every=100, sample_every=2, device="cpu", **train)


def fixed_batch(size: int = 64) -> dict[str, torch.Tensor]:
    """Two random-rectangle pairs as a batch."""
    generator = torch.Generator().manual_seed(0)
    layout = (torch.rand(2, 1, size // 8, size // 8, generator=generator) > 0.5).float()
    layout = torch.nn.functional.interpolate(layout, scale_factor=8) * 2 - 1  # (2, 1, 64, 64) in {-1, 1}
    return {"sem_image": 0.6 * layout + 0.1 * torch.randn(layout.shape, generator=generator),
            "layout_mask": layout}


# --- inference ---


def rectangles(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = np.full((height, width), 0.2, np.float32)
    for _ in range(height * width // 4000):
        y, x = rng.integers(0, height - 4), rng.integers(0, width - 4)
        image[y:y + rng.integers(4, 50), x:x + rng.integers(4, 50)] = 0.8
    return np.clip(image + rng.normal(0, 0.05, image.shape), 0, 1).astype(np.float32)


def lively_model(image: np.ndarray) -> nn.Module:
    """Tiny random model with unit-gain weights and BatchNorm stats from ``image``: outputs vary a
    lot (std ≈ 0.3 in probability), so a seam or misalignment would show."""
    models = build_models(TINY, critics=False)
    generator = torch.Generator().manual_seed(0)
    for module in models.modules():
        if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.kaiming_normal_(module.weight, generator=generator)
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = None  # cumulative average over the calibration pass
    models.train()
    with torch.no_grad():
        models.sem_to_layout(torch.from_numpy(image * 2 - 1)[None, None])
    return models.eval()


# --- calibration ---


def calibration_pair(seed: int, pattern: float, background: float, size: int = 96,
                     noise: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    """Rectangles at grey level ``pattern`` on ``background``, with a little noise."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((size, size), bool)
    for _ in range(5):
        y, x = rng.integers(0, size - 30, size=2)
        mask[y:y + rng.integers(12, 30), x:x + rng.integers(12, 30)] = True
    image = np.where(mask, pattern, background) + rng.normal(0, noise, mask.shape)
    return np.clip(image, 0, 1).astype(np.float32), mask


def calibration_reference() -> CalibrationSet:
    return reference_set([calibration_pair(k, 0.6, 0.2) for k in range(6)])


def inverted_tool() -> list[tuple[np.ndarray, np.ndarray]]:
    return [calibration_pair(100 + k, 0.1, 0.3) for k in range(6)]  # dark, inverted, a third of the contrast


# --- layout rules ---


def opened(mask: np.ndarray, size: int) -> np.ndarray:
    """Opening by a size×size square; the border is replicated so features cut by it are not thinned."""
    padded = np.pad(mask, size, mode="edge")
    row, col = np.ones((1, size), bool), np.ones((size, 1), bool)  # a square is separable: faster
    eroded = ndimage.binary_erosion(ndimage.binary_erosion(padded, row), col)
    return ndimage.binary_dilation(ndimage.binary_dilation(eroded, row), col)[size:-size, size:-size]
