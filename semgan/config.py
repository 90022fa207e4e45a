"""Experiment configuration: one frozen dataclass per concern, saved as ``config.json`` in every checkpoint.

``ExperimentConfig.from_dict(ExperimentConfig.to_dict())`` round-trips through JSON; unknown
keys, wrong types and impossible values raise ``ConfigError`` naming the section and field.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from semgan import DEFAULT_NM_PER_PX
from semgan.errors import SemganError

CONFIG_VERSION = 1
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
"""What ``--precision`` / ``train.precision`` accept: ``auto`` = the fastest the device runs natively."""


class ConfigError(SemganError):
    """A configuration value or file is invalid."""


@dataclass(frozen=True)
class GeneratorConfig:
    """U-Net generator: 4×4 stride-2 convs, skips, channel cap, optional self-attention."""

    name: str = "unet"
    base_channels: int = 48
    n_down: int = 5
    max_channels: int = 256
    attention: bool = True  # SAGAN blocks at the bottleneck and after the first decoder block
    dropout: float = 0.5
    dropout_blocks: int = 2  # innermost decoder blocks that get dropout


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Conditional PatchGAN: ``n_strided`` stride-2 convs, then two stride-1 convs."""

    name: str = "patchgan"
    base_channels: int = 48
    n_strided: int = 3
    max_channels: int = 256
    spectral_norm: bool = True


@dataclass(frozen=True)
class LossConfig:
    """Loss weights; ``adversarial=False`` drops both discriminators (pure pixel-loss U-Nets)."""

    l1: float = 100.0
    gan: float = 0.5
    cycle: float = 10.0
    feature_matching: float = 10.0
    real_label: float = 0.9  # one-sided label smoothing
    adversarial: bool = True


@dataclass(frozen=True)
class OptimConfig:
    """Adam for generators and discriminators; LR decays linearly to 0 after ``decay_start_fraction``."""

    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    decay_start_fraction: float = 0.5


@dataclass(frozen=True)
class DataConfig:
    """Training data: pixel size, random crops, flips, hold-out split."""

    nm_per_px: float = DEFAULT_NM_PER_PX
    crop_size: int = 128  # the generator is fully convolutional: train on crops, infer on 256 tiles
    batch_size: int = 4
    flip_horizontal: bool = True
    flip_vertical: bool = True
    holdout_fraction: float = 0.0  # items held out of training by name hash (0 = train on all)
    num_workers: int = 0
    # Per-image SEM standardisation to this mean/std (semgan.data.standardize_sem; the values are the
    # default training set's). Off: it erases the absolute grey level, and scored worse (docs/RESULTS.md).
    standardize: bool = False
    standardize_mean: float = 0.373
    standardize_std: float = 0.153
    # Row-drift augmentation (semgan.data.add_row_drift): half the images get a slow row-to-row
    # brightness drift of relative std up to this, so a darker band of rows is not a line end. 0 = off.
    row_drift_augment: float = 0.0

    def sem_standardization(self) -> tuple[float, float] | None:
        """``(mean, std)`` that SEM inputs are standardised to, or None when they are used as is."""
        return (self.standardize_mean, self.standardize_std) if self.standardize else None


@dataclass(frozen=True)
class TrainConfig:
    """Run length, logging cadence, seed, device and mixed precision."""

    steps: int = 20000
    log_every: int = 10
    sample_every: int = 500
    checkpoint_every: int = 250
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # mixed precision (see ``precision``); False trains in plain fp32
    # auto | fp32 | bf16 | fp16 (CUDA only). auto: bf16 autocast on GPUs and on CPUs with native
    # bf16 (AVX-512 BF16 / AMX), fp16 + loss scaling on older GPUs, fp32 elsewhere.
    precision: str = "auto"


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything needed to rebuild and retrain a model."""

    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    preset: str = "custom"

    def __post_init__(self) -> None:
        validate(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict, with a format version."""
        return {"version": CONFIG_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperimentConfig:
        """Rebuild from ``to_dict()`` output; missing fields take defaults, unknown ones are errors."""
        if not isinstance(data, dict):
            raise ConfigError(f"config must be a JSON object, got {type(data).__name__}")
        data = dict(data)
        version = data.pop("version", CONFIG_VERSION)
        if version != CONFIG_VERSION:
            raise ConfigError(f"config version {version} is not supported (expected {CONFIG_VERSION})")
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            section_type = SECTIONS.get(key)
            if key == "preset":
                kwargs[key] = _check_type("preset", str, value, "")
            elif section_type is None:
                raise ConfigError(f"unknown config section {key!r} (known: {', '.join(SECTIONS)})")
            else:
                kwargs[key] = _section_from_dict(key, section_type, value)
        return cls(**kwargs)

    def save(self, path: str | Path) -> None:
        """Write as indented JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> ExperimentConfig:
        """Read a ``config.json``; errors name the file."""
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except json.JSONDecodeError as err:
            raise ConfigError(f"{path}: not valid JSON ({err})") from None
        try:
            return cls.from_dict(data)
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}") from None

    def replace(self, section: str, **changes: Any) -> ExperimentConfig:
        """Copy with some fields of one section changed, e.g. ``replace("train", steps=10)``."""
        if section not in SECTIONS:
            raise ConfigError(f"unknown config section {section!r}")
        try:
            new_section = dataclasses.replace(getattr(self, section), **changes)
        except TypeError as err:
            raise ConfigError(f"{section}: {err}") from None
        return dataclasses.replace(self, **{section: new_section})


SECTIONS: dict[str, type] = {
    "generator": GeneratorConfig,
    "discriminator": DiscriminatorConfig,
    "loss": LossConfig,
    "optim": OptimConfig,
    "data": DataConfig,
    "train": TrainConfig,
}


def _check_type(where: str, expected: type, value: Any, default: Any) -> Any:
    # JSON has one number type: accept ints for float fields, never bools for numbers.
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected in (int, float) and isinstance(value, bool):
        raise ConfigError(f"{where} must be a number, got {value!r}")
    if not isinstance(value, expected):
        raise ConfigError(f"{where} must be {expected.__name__}, got {value!r} (default {default!r})")
    return value


def _section_from_dict(name: str, section_type: type, data: Any) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"config section {name!r} must be an object, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(section_type)}
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            raise ConfigError(f"unknown field {name}.{key} (known: {', '.join(fields)})")
        expected = {"int": int, "float": float, "bool": bool, "str": str}[str(fields[key].type)]
        kwargs[key] = _check_type(f"{name}.{key}", expected, value, fields[key].default)
    return section_type(**kwargs)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def validate(config: ExperimentConfig) -> None:
    """Raise ``ConfigError`` for values that cannot build or train a model."""
    gen, disc, loss, optim, data, train = (config.generator, config.discriminator, config.loss,
                                           config.optim, config.data, config.train)
    _require(gen.base_channels >= 1, f"generator.base_channels must be ≥ 1, got {gen.base_channels}")
    _require(2 <= gen.n_down <= 8, f"generator.n_down must be in 2..8, got {gen.n_down}")
    _require(gen.max_channels >= gen.base_channels,
             f"generator.max_channels ({gen.max_channels}) must be ≥ base_channels ({gen.base_channels})")
    _require(0.0 <= gen.dropout < 1.0, f"generator.dropout must be in [0, 1), got {gen.dropout}")
    _require(0 <= gen.dropout_blocks <= gen.n_down - 1,
             f"generator.dropout_blocks must be in 0..{gen.n_down - 1}, got {gen.dropout_blocks}")
    _require(disc.base_channels >= 1, f"discriminator.base_channels must be ≥ 1, got {disc.base_channels}")
    _require(1 <= disc.n_strided <= 6, f"discriminator.n_strided must be in 1..6, got {disc.n_strided}")
    for key in ("l1", "gan", "cycle", "feature_matching"):
        _require(getattr(loss, key) >= 0, f"loss.{key} must be ≥ 0, got {getattr(loss, key)}")
    _require(0.0 < loss.real_label <= 1.0, f"loss.real_label must be in (0, 1], got {loss.real_label}")
    _require(loss.adversarial or (loss.gan == 0 and loss.feature_matching == 0),
             "loss.gan and loss.feature_matching need the discriminators: set them to 0 "
             "or loss.adversarial to true")
    _require(optim.lr > 0, f"optim.lr must be > 0, got {optim.lr}")
    _require(0 <= optim.beta1 < 1 and 0 <= optim.beta2 < 1, "optim.beta1/beta2 must be in [0, 1)")
    _require(0 <= optim.decay_start_fraction <= 1,
             f"optim.decay_start_fraction must be in [0, 1], got {optim.decay_start_fraction}")
    _require(data.nm_per_px > 0, f"data.nm_per_px must be > 0, got {data.nm_per_px}")
    multiple = 2**gen.n_down
    _require(data.crop_size >= 32 and data.crop_size % multiple == 0,
             f"data.crop_size must be ≥ 32 and a multiple of 2**generator.n_down = {multiple}, "
             f"got {data.crop_size}")
    _require(data.batch_size >= 1, f"data.batch_size must be ≥ 1, got {data.batch_size}")
    _require(0 <= data.holdout_fraction < 1,
             f"data.holdout_fraction must be in [0, 1), got {data.holdout_fraction}")
    _require(data.num_workers >= 0, f"data.num_workers must be ≥ 0, got {data.num_workers}")
    _require(0 < data.standardize_mean < 1,
             f"data.standardize_mean must be in (0, 1), got {data.standardize_mean}")
    _require(0 < data.standardize_std <= 0.5,
             f"data.standardize_std must be in (0, 0.5], got {data.standardize_std}")
    _require(0 <= data.row_drift_augment <= 0.5,
             f"data.row_drift_augment must be in [0, 0.5], got {data.row_drift_augment}")
    _require(train.steps >= 0, f"train.steps must be ≥ 0, got {train.steps}")
    _require(train.precision in PRECISIONS,
             f"train.precision must be one of {', '.join(PRECISIONS)}, got {train.precision!r}")
    for key in ("log_every", "sample_every", "checkpoint_every"):
        _require(getattr(train, key) >= 1, f"train.{key} must be ≥ 1, got {getattr(train, key)}")


PRESETS: dict[str, ExperimentConfig] = {
    # Seconds per step on a CPU: for tests and smoke runs.
    "tiny": ExperimentConfig(
        generator=GeneratorConfig(base_channels=8, n_down=4, max_channels=32),
        discriminator=DiscriminatorConfig(base_channels=8, max_channels=32),
        data=DataConfig(crop_size=64, batch_size=2),
        train=TrainConfig(steps=20, log_every=1, sample_every=10, checkpoint_every=10),
        preset="tiny",
    ),
    # The seed's model: base 48, 5 downsamplings, cap 256, attention, all four losses.
    "default": ExperimentConfig(preset="default"),
    # Ablation: the same U-Nets trained with pixel L1 only (no discriminators, cycle or FM).
    "l1only": ExperimentConfig(
        loss=LossConfig(gan=0.0, cycle=0.0, feature_matching=0.0, adversarial=False),
        preset="l1only",
    ),
}


def get_preset(name: str) -> ExperimentConfig:
    """Look up a preset by name."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r} (known: {', '.join(PRESETS)})")
    return PRESETS[name]
