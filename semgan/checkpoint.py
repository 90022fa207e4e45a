"""Checkpoints as safetensors + JSON: weights, optimizer states, config, model card, train state.

MODEL_DIR/weights.safetensors    every network, names prefixed (``sem_to_layout.…``)
MODEL_DIR/optimizer.safetensors  Adam moments per parameter; param_groups as JSON metadata
MODEL_DIR/config.json            the ExperimentConfig
MODEL_DIR/card.json              the ModelCard (semgan.model_card, which names these files)
MODEL_DIR/train_state.json       step, LR schedulers, RNG states, file hashes

Loading uses safetensors and json only: nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from semgan.calibration import CALIBRATION_FILE
from semgan.config import ConfigError, ExperimentConfig
from semgan.errors import SemganError
from semgan.model import GanModels, build_models
from semgan.model_card import CARD, CONFIG, OPTIMIZER, STATE, WEIGHTS, ModelCard, ModelCardError
from semgan.train.step import Optimizers, build_optimizers

CRITIC_PREFIXES = ("layout_critic.", "sem_critic.")


class CheckpointError(SemganError):
    """A checkpoint file is missing, corrupt, unsafe (pickle) or does not match its config."""


@dataclass
class TrainState:
    """Where a run stands: enough to resume it exactly."""

    step: int = 0
    wall_seconds: float = 0.0
    schedulers: dict[str, dict] = field(default_factory=dict)
    rng: dict[str, Any] = field(default_factory=dict)
    scaler: dict[str, Any] | None = None
    files: dict[str, str] = field(default_factory=dict)  # name → sha256, to detect torn saves


@dataclass
class Checkpoint:
    """A loaded model directory. ``optimizer_states``/``state`` are None for inference exports."""

    model_dir: Path
    config: ExperimentConfig
    card: ModelCard
    models: GanModels
    optimizer_states: dict[str, dict] | None
    state: TrainState | None

    @property
    def is_full(self) -> bool:
        """True when it can resume training (optimizer and train state present)."""
        return self.state is not None

    def optimizers(self, lr_scale: float = 1.0) -> Optimizers:
        """Adam optimizers over ``models`` with the saved moments, LR = config LR × ``lr_scale``."""
        if self.optimizer_states is None:
            raise CheckpointError(f"{self.model_dir}: an inference export has no optimizer state")
        optimizers = build_optimizers(self.models, self.config.optim, lr_scale)
        for name in ("generator", "discriminator"):
            optimizer = getattr(optimizers, name)
            if optimizer is not None:
                load_optimizer_state(optimizer, self.optimizer_states[name], f"{self.model_dir}/{OPTIMIZER}")
                for group in optimizer.param_groups:
                    group["lr"] = group["initial_lr"] = self.config.optim.lr * lr_scale
        return optimizers


def has_checkpoint(model_dir: str | Path) -> bool:
    """True when ``model_dir`` holds a resumable checkpoint."""
    return (Path(model_dir) / STATE).is_file()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_atomic(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def _write_json(path: Path, data: Any) -> None:
    _write_atomic(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2) + "\n"))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing (is {path.parent} a semgan model folder?)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: not valid JSON ({err})") from None


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file; refuses pickles and corrupt files by name."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing (is {path.parent} a semgan model folder?)") from None
    if head[:1] == b"\x80" or head[:4] == b"PK\x03\x04":
        raise CheckpointError(f"{path}: looks like a pickle / torch.save file; semgan only loads safetensors "
                              "and never unpickles (convert it with safetensors.torch.save_file)")
    try:
        tensors = load_file(path, device="cpu")
        from safetensors import safe_open

        with safe_open(path, framework="pt") as handle:
            raw = (handle.metadata() or {}).get("semgan", "{}")
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not a valid safetensors file, truncated or corrupt ({err})") from None
    try:
        metadata = json.loads(raw)
    except json.JSONDecodeError:
        raise CheckpointError(f"{path}: unreadable semgan metadata in the safetensors header") from None
    return tensors, metadata


def _metadata(**values: Any) -> dict[str, str]:
    # One header key holding sorted JSON: safetensors writes several keys in hash-map order,
    # which would make identical checkpoints differ byte-wise.
    return {"semgan": json.dumps({"format": "semgan", **values}, sort_keys=True)}


def _state_tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().cpu().contiguous() for name, tensor in module.state_dict().items()}


def load_into(module: torch.nn.Module, tensors: dict[str, torch.Tensor], source: Path) -> None:
    """Copy ``tensors`` into ``module``; missing, extra or mis-shaped keys raise CheckpointError."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing:
        raise CheckpointError(f"{source}: missing key {missing[0]!r} ({len(missing)} missing) that "
                              f"config.json's model needs; the weights and config do not belong together")
    if unexpected:
        raise CheckpointError(f"{source}: unexpected key {unexpected[0]!r} ({len(unexpected)} extra) that "
                              "config.json's model does not have")
    for name, tensor in expected.items():
        if tensors[name].shape != tensor.shape:
            raise CheckpointError(f"{source}: {name} has shape {tuple(tensors[name].shape)} but config.json "
                                  f"builds {tuple(tensor.shape)}; the weights and config do not belong together")
    module.load_state_dict(tensors)  # copies, casting fp16 exports to the module's fp32


def _optimizer_tensors(optimizers: Optimizers) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    groups: dict[str, Any] = {}
    for name in ("generator", "discriminator"):
        optimizer = getattr(optimizers, name)
        if optimizer is None:
            continue
        state = optimizer.state_dict()
        groups[name] = [{**group, "betas": list(group["betas"])} for group in state["param_groups"]]
        for index, values in state["state"].items():
            for key, value in values.items():
                tensors[f"{name}.{index}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    return tensors, groups


def _optimizer_states(path: Path) -> dict[str, dict]:
    tensors, metadata = read_safetensors(path)
    groups = metadata.get("param_groups")
    if not isinstance(groups, dict):
        raise CheckpointError(f"{path}: no param_groups in the safetensors header")
    states: dict[str, dict] = {}
    for name, param_groups in groups.items():
        per_param: dict[int, dict[str, torch.Tensor]] = {}
        for key, tensor in tensors.items():
            owner, index, field_name = key.split(".", 2)
            if owner == name:
                per_param.setdefault(int(index), {})[field_name] = tensor
        for group in param_groups:
            group["betas"] = tuple(group["betas"])
        states[name] = {"state": per_param, "param_groups": param_groups}
    return states


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict, source: str) -> None:
    """Load a state from ``load_checkpoint``; a parameter-count mismatch raises CheckpointError."""
    ours = [len(group["params"]) for group in optimizer.param_groups]
    theirs = [len(group["params"]) for group in state["param_groups"]]
    if ours != theirs:
        raise CheckpointError(f"{source}: optimizer state covers {theirs} parameters but the model has {ours}")
    optimizer.load_state_dict(state)


def save_checkpoint(model_dir: str | Path, models: GanModels, optimizers: Optimizers | None,
                    config: ExperimentConfig, card: ModelCard | dict[str, Any], state: TrainState | None) -> Path:
    """Write a checkpoint; ``train_state.json`` goes last, so a torn save is detectable."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    weights_meta = _metadata(kind="full" if state is not None else "inference")
    _write_atomic(model_dir / WEIGHTS, lambda tmp: save_file(_state_tensors(models), tmp, weights_meta))
    _write_json(model_dir / CONFIG, config.to_dict())
    ModelCard.of(card).write(model_dir)
    if optimizers is not None and state is not None:
        tensors, groups = _optimizer_tensors(optimizers)
        meta = _metadata(param_groups=groups)
        _write_atomic(model_dir / OPTIMIZER, lambda tmp: save_file(tensors, tmp, meta))
        state.files = {name: _sha256(model_dir / name) for name in (WEIGHTS, OPTIMIZER)}
        _write_json(model_dir / STATE, asdict(state))
    return model_dir


def read_config(model_dir: str | Path) -> ExperimentConfig:
    """The model's ``config.json``; problems raise CheckpointError naming the file."""
    path = Path(model_dir) / CONFIG
    try:
        return ExperimentConfig.from_dict(_read_json(path))
    except ConfigError as err:
        raise CheckpointError(f"{path}: {err}") from None


def load_checkpoint(model_dir: str | Path, device: str | torch.device = "cpu",
                    generators_only: bool = False) -> Checkpoint:
    """Load a full checkpoint or an inference export (generators only, no optimizer state)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise CheckpointError(f"{model_dir}: no such model folder")
    config = read_config(model_dir)
    try:
        card = ModelCard.from_dict(_read_json(model_dir / CARD))
    except ModelCardError as err:
        raise CheckpointError(f"{model_dir / CARD}: {err}") from None
    tensors, _ = read_safetensors(model_dir / WEIGHTS)
    state = None
    if (model_dir / STATE).is_file() and not generators_only:
        raw = _read_json(model_dir / STATE)
        try:
            state = TrainState(**raw)
        except TypeError as err:
            raise CheckpointError(f"{model_dir / STATE}: {err}") from None
        for name, digest in state.files.items():
            if (model_dir / name).is_file() and _sha256(model_dir / name) != digest:
                raise CheckpointError(f"{model_dir / name}: does not match train_state.json (a save was "
                                      "interrupted or the file was changed); restore it or start a new run")
    # Full checkpoints always hold critics; an export holds them when made with critics=True.
    stored_critics = any(k.startswith(CRITIC_PREFIXES) for k in tensors)
    with_critics = config.loss.adversarial and not generators_only and stored_critics
    if not with_critics:
        tensors = {k: v for k, v in tensors.items() if not k.startswith(CRITIC_PREFIXES)}
    models = build_models(config, critics=with_critics)
    load_into(models, tensors, model_dir / WEIGHTS)
    optimizer_states = _optimizer_states(model_dir / OPTIMIZER) if state is not None else None
    return Checkpoint(model_dir, config, card, models.to(device), optimizer_states, state)


def export_inference(model_dir: str | Path, out_dir: str | Path, dtype: torch.dtype = torch.float16,
                     critics: bool = False) -> Path:
    """Write generator weights (floating tensors cast to ``dtype``) + config + card, for shipping.

    ``critics=True`` adds the discriminators (about a fifth more bytes): a fine-tune from the export
    then starts with trained critics instead of fresh ones. Optimizer state is never exported.
    """
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    checkpoint = load_checkpoint(model_dir, generators_only=not critics)
    if critics and checkpoint.models.layout_critic is None:
        raise CheckpointError(f"{model_dir}: has no critics to export (an L1-only model or an export "
                              "without them)")
    tensors = {
        name: (t.to(dtype) if t.is_floating_point() else t)
        for name, t in _state_tensors(checkpoint.models).items()
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    dtype_name = str(dtype).removeprefix("torch.")
    _write_atomic(out_dir / WEIGHTS, lambda tmp: save_file(tensors, tmp, _metadata(kind="inference", dtype=dtype_name)))
    _write_json(out_dir / CONFIG, checkpoint.config.to_dict())
    card = checkpoint.card.copy()
    card.export = {"dtype": dtype_name, "weights_sha256": _sha256(out_dir / WEIGHTS),
                   "source_steps": card.steps, "critics": critics}
    card.write(out_dir)
    if (model_dir / CALIBRATION_FILE).is_file():  # tool calibrations (and experts) travel along
        shutil.copyfile(model_dir / CALIBRATION_FILE, out_dir / CALIBRATION_FILE)
        for tool in _read_json(model_dir / CALIBRATION_FILE).get("tools", []):
            if tool.get("expert"):
                expert, _ = read_safetensors(model_dir / tool["expert"])
                cast = {k: (t.to(dtype) if t.is_floating_point() else t) for k, t in expert.items()}
                _write_atomic(out_dir / tool["expert"], lambda tmp, cast=cast: save_file(
                    cast, tmp, _metadata(kind="tool-expert", dtype=dtype_name)))
    return out_dir
