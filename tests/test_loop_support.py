"""Shared helpers for the loop tests: a tiny production model and corrected pairs in a workspace.

No tests here; the test_loop_* modules import these helpers.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from loop.finetune import FinetuneConfig, set_finetune_config
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
    """Record the ``name`` keyword of every PairedDataset a fine-tune builds (list filled later)."""
    import loop.finetune.run as finetune_run
    from semgan.data import PairedDataset

    seen: list[object] = []

    class Recording(PairedDataset):
        def __init__(self, *args: object, **kwargs: object) -> None:
            seen.append(kwargs.get(name))
            super().__init__(*args, **kwargs)

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
