"""The fine-tune recipe as a frozen config, where it is saved, and queueing a fine-tune job."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

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

    CPU budget (2 cores, 50 new pairs, default preset, ≤ 15 min for the whole job). One step of
    the full bidirectional GAN at crop 128, batch 4 costs ≈ 0.7 s on a quiet machine and ≈ 1.3 s
    next to another training run (1 thread). 50 pairs → 40 train-split tiles; three quarters of
    every epoch are new pairs (``new_fraction``), so an epoch is ≈ 53 crops ≈ 13 steps and 30
    epochs ≈ 400 steps ≈ 5–9 min, inside ``time_budget_s`` (600 s, then training stops with a
    warning); preparation, registration and the gate add ≈ 1 min.
    ``max_steps`` caps large correction sets; ``cpu_threads`` = 0 picks 1 thread when the cores
    are already busy (2 threads fighting other processes ran 4× slower than 1).
    Trade-offs weighed: crop 128 as in the base training (smaller crops starve the 8×8 attention
    bottleneck of context); both generators and both critics keep training — freezing the
    reverse generator and its critic would save ≈ 25 % per step, but ``fit`` must keep the
    model's loss (cycle ×10). All corrected train-split pairs are used, not only those newer
    than production: they are few and each is an engineer's work.
    Old tools against a new one (review-loop probe: 40 calibrated drifted-tool pairs, 20 + 20
    held-out images, drifted / original IoU, production 0.677 / 0.957 after calibration): the
    shared generator fine-tuned with half anchor data, LR ÷ 10, 600 steps reaches 0.782 / 0.947;
    with 80 % new data 0.824 / 0.897 (500 steps; LR × 0.3: 0.838 / 0.902). Blending it back
    (``blend``, ``production + w × (tuned − production)``) trades along a curve that favours
    old data: w = 0.5 gives 0.735 / 0.957, w = 0.7 0.756 / 0.954. No single generator reached
    ≥ 0.78 on the new tool at ≤ 0.005 cost on the old ones, hence ``tool_experts``: a
    calibrated (foreign) tool gets the fine-tuned generator as its own, chosen per image by
    histogram like its grey-level map, and the shared generator stays production's unless
    pairs of the training tools were corrected too (then it is blended with ``blend``). With
    experts the anchor share only regularises the expert, so ``new_fraction`` is 0.75.
    Frozen BatchNorm statistics during fine-tuning were measured and did not help
    (400 steps: 0.786 / 0.945 against 0.783 / 0.946).
    """

    strategy: str = "tools"  # "tools": an adaptation per corrected tool; "shared": fit + blend
    expert_lr: float = 2e-4  # Adam LR of a tool expert (loop.finetune.expert)
    expert_crop: int = 256
    expert_max_steps: int = 400
    min_tool_pairs: int = 2  # corrected train pairs a tool needs before it gets an expert
    epochs: int = 30  # passes over the corrected pairs
    new_fraction: float = 0.75  # share of each epoch that is corrected pairs (rest: anchor)
    lr_scale: float = 0.1  # seed §9: LR ÷ 10
    blend: float = 0.5  # shared generator = production + blend × (fine-tuned − production)
    tool_experts: bool = True  # a calibrated (foreign) tool gets the fine-tuned generator as its own
    crop_size: int = 128
    batch_size: int = 4
    max_steps: int = 800
    time_budget_s: float = 600.0  # training stops here (the gate still runs)
    tile_size: int = 0  # 0 = the production model's image size (card), else 256
    anchor_train: int = 200
    anchor_test: int = 60
    cpu_threads: int = 0  # 0 = automatic from the load average
    device: str = "auto"
    seed: int = 0
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
