"""The fine-tune recipe as a frozen config, where it is saved, and queueing a fine-tune job."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from loop.config_fields import setting
from loop.gate import GateConfig
from loop.jobs import FINETUNE, FinetuneRequest
from store import Job, Store

CONFIG_SETTING = "loop.finetune_config"  # overrides of FinetuneConfig fields (UI / CLI / tests)
TRIGGERS = ("manual", "auto")
STRATEGIES = ("tools", "shared")
DEFAULT_IMAGE_SIZE = 256


class FinetuneError(ValueError):
    """A fine-tune cannot start or run: no production model, no corrected pairs, bad config."""


def wrong_type(settings: object) -> str | None:
    """Why a field of a settings dataclass holds the wrong kind of value (text for a number)."""
    for f in dataclasses.fields(settings):  # type: ignore[arg-type]
        if f.default is dataclasses.MISSING:
            continue
        value, want = getattr(settings, f.name), type(f.default)
        if want is bool and not isinstance(value, bool):
            return f"{f.name} must be true or false, got {value!r}"
        if want in (int, float) and (isinstance(value, bool) or not isinstance(value, int | float)):
            return f"{f.name} must be a number, got {value!r}"
        if want is str and not isinstance(value, str):
            return f"{f.name} must be text, got {value!r}"
    return None


class JobCancelled(Exception):
    """Someone asked the job to stop; the run ends without registering a candidate."""


class JobInterrupted(JobCancelled):
    """The worker is shutting down (SIGTERM/SIGINT): the job stops resumable, not cancelled.

    ``resume`` is what the next run of the job needs (e.g. the candidate awaiting the gate).
    """

    def __init__(self, message: str, resume: dict | None = None) -> None:
        super().__init__(message)
        self.resume = resume


@dataclass(frozen=True)
class FinetuneConfig:
    """Everything a fine-tune does, shown in the UI before launch (``to_dict``).

    The defaults fit a whole job in about 15 min on 2 CPU cores; how they were chosen (step costs,
    blend and expert trade-offs): docs/RESULTS.md, "How the fine-tune defaults were chosen".
    """

    strategy: str = setting(
        "tools",
        "tools: an adaptation per corrected tool (others bit-identical); shared: "
        "fine-tune the shared generator and blend it back")
    expert_lr: float = setting(2e-4, "learning rate of a tool's own generator")
    expert_crop: int = setting(256, "its training crop (px)")
    expert_max_steps: int = setting(400, "cap on its steps (it stops early on its held-out pairs)")
    min_tool_pairs: int = setting(
        2, "corrected train pairs a tool needs before it gets an adaptation")
    epochs: int = setting(30, "passes over the corrected pairs")
    new_fraction: float = setting(
        0.75,
        "share of each epoch that is corrected pairs (the rest: old anchor pairs, against "
        "forgetting)")
    lr_scale: float = setting(0.1, "learning rate × this (seed: ÷ 10)")
    blend: float = setting(0.5, "shared generator = production + this × (fine-tuned − production)")
    tool_experts: bool = setting(
        True, "a calibrated (foreign) tool gets the fine-tuned generator as its own")
    crop_size: int = setting(128, "training crop (px)")
    batch_size: int = setting(4, "crops per step")
    max_steps: int = setting(800, "cap on steps for large correction sets")
    time_budget_s: float = setting(
        600.0, "training stops after this many seconds (the gate still runs)")
    tile_size: int = setting(
        0, "tile size of the pairs (px; 0 = the production model's image size)")
    anchor_train: int = setting(200, "old training pairs mixed in")
    anchor_test: int = setting(60, "old pairs the gate tests on")
    cpu_threads: int = setting(0, "torch threads on a CPU (0 = from the load average)")
    device: str = setting("auto", "auto = CUDA with mixed precision when present")
    seed: int = setting(0, "randomness of crops")
    gate: GateConfig = field(default_factory=GateConfig)

    def __post_init__(self) -> None:
        if problem := wrong_type(self):
            raise FinetuneError(f"fine-tune config: {problem}")
        checks = [(self.strategy in STRATEGIES, f"strategy must be one of {', '.join(STRATEGIES)}"),
                  (0.0 < self.expert_lr <= 0.01, "expert_lr must be in (0, 0.01]"),
                  (self.expert_crop >= 32, "expert_crop must be ≥ 32"),
                  (self.expert_max_steps >= 1, "expert_max_steps must be ≥ 1"),
                  (self.min_tool_pairs >= 1, "min_tool_pairs must be ≥ 1"),
                  (self.epochs >= 1, "epochs must be ≥ 1"),
                  (0.0 < self.new_fraction < 1.0, "new_fraction must be in (0, 1)"),
                  (0.0 < self.lr_scale <= 1.0, "lr_scale must be in (0, 1]"),
                  (0.0 < self.blend <= 1.0, "blend must be in (0, 1]"),
                  (self.crop_size >= 32, "crop_size must be ≥ 32"),
                  (self.batch_size >= 1, "batch_size must be ≥ 1"),
                  (self.max_steps >= 1, "max_steps must be ≥ 1"),
                  (self.time_budget_s > 0, "time_budget_s must be > 0"),
                  (self.tile_size == 0 or self.tile_size >= self.crop_size,
                   "tile_size must be 0 (automatic) or ≥ crop_size"),
                  (self.anchor_train >= 1 and self.anchor_test >= 1, "anchor sets need ≥ 1 pair"),
                  (self.cpu_threads >= 0, "cpu_threads must be ≥ 0")]
        for ok, message in checks:
            if not ok:
                raise FinetuneError(f"fine-tune config: {message}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON dict (what the job row stores and the UI shows)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FinetuneConfig:
        """Rebuild from ``to_dict`` output (missing keys take defaults; unknown keys raise)."""
        data = dict(data or {})
        gate = data.pop("gate", {}) or {}
        for known, given, where in ((cls, data, ""), (GateConfig, gate, "gate.")):
            names = {f.name for f in dataclasses.fields(known)}
            unknown = sorted(set(given) - names)
            if unknown:
                raise FinetuneError(f"unknown fine-tune setting {where}{unknown[0]} "
                                    f"(known: {', '.join(sorted(names))})")
        try:
            return cls(**data, gate=GateConfig(**gate))
        except TypeError as exc:
            raise FinetuneError(f"fine-tune config: {exc}") from exc


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """``key=value`` strings (values as JSON where they parse: 5, 0.5, true) → dict."""
    found: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise FinetuneError(f"a fine-tune override needs key=value, got {pair!r}")
        try:
            found[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            found[key.strip()] = value
    return found


def with_overrides(config: FinetuneConfig, pairs: Sequence[str]) -> FinetuneConfig:
    """``config`` with ``key=value`` overrides applied (``gate.x=…`` for gate fields)."""
    data = config.to_dict()
    for key, value in parse_overrides(pairs).items():
        if key.startswith("gate."):
            data["gate"][key.removeprefix("gate.")] = value
        else:
            data[key] = value
    return FinetuneConfig.from_dict(data)


def finetune_config(store: Store) -> FinetuneConfig:
    """The workspace's fine-tune config: defaults plus the overrides saved in its settings."""
    return FinetuneConfig.from_dict(store.get_setting(CONFIG_SETTING, {}))


def set_finetune_config(store: Store, config: FinetuneConfig) -> None:
    """Save the config every later fine-tune (button, CLI, automatic trigger) will use."""
    store.set_setting(CONFIG_SETTING, config.to_dict())


def request_finetune(store: Store, trigger: str = "manual", config: FinetuneConfig | None = None,
                     reason: str | None = None) -> Job:
    """Queue a fine-tune job: what **Fine-tune now**, the CLI and the automatic trigger call.

    Raises FinetuneError (no production model, no corrected train pairs, crop not a multiple
    of the model's 2**n_down) or store.JobConflictError (a training job is queued/running).
    """
    if trigger not in TRIGGERS:
        raise FinetuneError(f"trigger must be one of {TRIGGERS}, got {trigger!r}")
    production = store.production_model()
    if production is None:
        raise FinetuneError("there is no production model to fine-tune; start the app once "
                            "(it installs the default model) or register one")
    config = config if config is not None else finetune_config(store)
    multiple = 2 ** int(production.config.get("generator", {}).get("n_down", 5))
    if config.crop_size % multiple:
        raise FinetuneError(f"crop_size {config.crop_size} must be a multiple of {multiple} "
                            f"for production model v{production.version}")
    if store.counts().train_pairs < 1:
        raise FinetuneError("no corrected pairs in the train split yet: correct a few "
                            "predictions (or import pairs) first")
    request = FinetuneRequest(trigger, reason or f"{trigger} request", config.to_dict(),
                              production.version, time.time())
    return store.enqueue_job(FINETUNE, request.to_params())
