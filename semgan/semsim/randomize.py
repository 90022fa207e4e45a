"""Domain randomization: a tool drawn afresh for every image from wide physical ranges.

A ``RandomizedTool`` is to the named ``ToolProfile``s what a whole family is to one member:
every physical knob (material contrast from bright features through zero to inverted, beam
astigmatism, dose, charging, halos, detector gamma and saturation, litho blur and CD bias,
pixel size 2–8 nm/px, …) is drawn per image, so a model trained on it is tied to no one tool.
Named held-out regions (boxes over one or two knobs) split the draws into training and
validation, so a validation set can probe corners of the space no training image came from.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from semgan.semsim import SimulationError
from semgan.semsim.effects import RandomizedSample, image_with_params
from semgan.semsim.profiles import ProfileError, check_range
from semgan.semsim.space import (
    DEFAULT_HELD_OUT,
    MIN_GREY_SPAN,
    RANDOM_KNOBS,
    SPLITS,
    HeldOutRegion,
    Range,
    contrast_to_noise,
    is_held_out,
    prints_minimum_features,
    visible_grey_span,
)

# A rejection sampler: give up (with a clear error) when draws keep landing outside the split.
MAX_ATTEMPTS = 10_000


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ProfileError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    return split


@dataclass(frozen=True)
class RandomizedTool:
    """A family of tools: a (low, high) range per ``RANDOM_KNOBS`` knob, drawn anew per image."""

    name: str
    description: str = ""
    ranges: Mapping[str, Range] = field(default_factory=dict)  # missing knobs: default range
    held_out: tuple[HeldOutRegion, ...] = DEFAULT_HELD_OUT
    split: str = "train"  # train: draws outside held_out; validation: inside; all: anywhere
    reverse_scan_fraction: float = 0.25
    min_contrast_to_noise: float = 1.0

    def __post_init__(self) -> None:
        """Validate and complete every range so a bad tool fails where it is made."""
        if not isinstance(self.name, str) or not self.name.strip():
            raise ProfileError(f"randomized tool name must be a non-empty string, got {self.name!r}")
        where = f"randomized tool {self.name!r}"
        if not isinstance(self.description, str):
            raise ProfileError(f"{where}: description must be a string")
        if not isinstance(self.ranges, Mapping):
            raise ProfileError(f"{where}: ranges must map knob names to [low, high]")
        unknown = sorted(set(self.ranges) - set(RANDOM_KNOBS))
        if unknown:
            raise ProfileError(f"{where}: unknown knob(s) {unknown}; valid: {sorted(RANDOM_KNOBS)}")
        ranges = {}
        for knob, spec in RANDOM_KNOBS.items():
            value = self.ranges.get(knob, (spec.low, spec.high))
            try:
                ranges[knob] = check_range(knob, value, spec.allowed_low, spec.allowed_high)
            except ProfileError as err:
                raise ProfileError(f"{where}: {err} ({spec.meaning})") from None
        object.__setattr__(self, "ranges", ranges)
        self._check_scalars(where)
        self._check_regions(where)

    def _check_scalars(self, where: str) -> None:
        try:
            _check_split(self.split)
        except ProfileError as err:
            raise ProfileError(f"{where}: {err}") from None
        for name, low, high in (("reverse_scan_fraction", 0.0, 1.0), ("min_contrast_to_noise", 0.0, 1e3)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
                raise ProfileError(f"{where}: {name} must be a number in [{low}, {high}], got {value!r}")

    def _check_regions(self, where: str) -> None:
        regions = tuple(self.held_out)
        if not all(isinstance(region, HeldOutRegion) for region in regions):
            raise ProfileError(f"{where}: held_out must be HeldOutRegion objects")
        names = [region.name for region in regions]
        if len(set(names)) != len(names):
            raise ProfileError(f"{where}: held-out region names must be unique, got {names}")
        if self.split == "validation" and not regions:
            raise ProfileError(f"{where}: the validation split needs at least one held-out region")
        object.__setattr__(self, "held_out", regions)

    def reachable_regions(self) -> tuple[HeldOutRegion, ...]:
        """The held-out regions that overlap this tool's ranges (others can hold no draw)."""
        return tuple(region for region in self.held_out if all(
            low <= self.ranges[knob][1] and high >= self.ranges[knob][0]
            for knob, (low, high) in region.bounds.items()))

    def with_split(self, split: str) -> RandomizedTool:
        """The same family, drawing from another split (train, validation or all)."""
        return replace(self, split=_check_split(split))

    def draw(self, rng: np.random.Generator) -> dict[str, float]:
        """One unconditioned draw: every knob in its range, plus the derived values."""
        values: dict[str, float] = {}
        for knob, spec in RANDOM_KNOBS.items():
            low, high = self.ranges[knob]
            unit = float(rng.random())  # always drawn, so a pinned knob leaves the stream alone
            if low == high:
                values[knob] = low
            elif spec.log and low > 0:
                values[knob] = min(max(math.exp(math.log(low) + unit * math.log(high / low)), low), high)
            else:
                values[knob] = low + unit * (high - low)
        level = values["substrate_level"] + values["material_contrast"]
        values["feature_level"] = min(max(level, 0.0), 1.0)
        values["scan_direction"] = -1.0 if rng.random() < self.reverse_scan_fraction else 1.0
        return values

    def usable(self, params: Mapping[str, float]) -> bool:
        """True if features print and stay visible above the noise (else the pair teaches guessing)."""
        return (prints_minimum_features(params) and visible_grey_span(params) >= MIN_GREY_SPAN
                and contrast_to_noise(params) >= self.min_contrast_to_noise)

    def sample(self, rng: np.random.Generator, split: str | None = None) -> dict[str, float]:
        """Draw a usable parameter set from ``split`` (default: the tool's own split)."""
        split = _check_split(self.split if split is None else split)
        if split == "validation" and not self.reachable_regions():
            raise ProfileError(f"randomized tool {self.name!r}: no held-out region overlaps its ranges, "
                               "so there is nothing to validate on")
        for _ in range(MAX_ATTEMPTS):
            params = self.draw(rng)
            if self.usable(params) and (split == "all" or
                                        is_held_out(params, self.held_out) == (split == "validation")):
                return params
        raise ProfileError(
            f"randomized tool {self.name!r}: no usable {split} draw in {MAX_ATTEMPTS} tries; "
            "widen the ranges or shrink the held-out regions")

    def to_dict(self) -> dict:
        """JSON-ready dict: kind, name, settings, held-out regions and [low, high] per knob."""
        return {"kind": "randomized", "name": self.name, "description": self.description,
                "split": self.split, "reverse_scan_fraction": float(self.reverse_scan_fraction),
                "min_contrast_to_noise": float(self.min_contrast_to_noise),
                "held_out": [region.to_dict() for region in self.held_out],
                **{knob: list(self.ranges[knob]) for knob in RANDOM_KNOBS}}

    @classmethod
    def from_dict(cls, data: dict) -> RandomizedTool:
        """Build from ``to_dict`` output; knobs left out take their default range."""
        if not isinstance(data, dict):
            raise ProfileError(f"a randomized tool must be a JSON object, got {type(data).__name__}")
        if data.get("kind") != "randomized":
            raise ProfileError(f'a randomized tool needs "kind": "randomized", got {data.get("kind")!r}')
        settings = {"name", "description", "split", "reverse_scan_fraction", "min_contrast_to_noise"}
        unknown = sorted(set(data) - settings - {"kind", "held_out"} - set(RANDOM_KNOBS))
        if unknown:
            raise ProfileError(f"unknown randomized tool key(s) {unknown}; knobs: {sorted(RANDOM_KNOBS)}")
        if "name" not in data:
            raise ProfileError("randomized tool is missing its name")
        held_out = data.get("held_out", [region.to_dict() for region in DEFAULT_HELD_OUT])
        if not isinstance(held_out, list):
            raise ProfileError(f"held_out must be a list of regions, got {held_out!r}")
        return cls(ranges={k: v for k, v in data.items() if k in RANDOM_KNOBS},
                   held_out=tuple(HeldOutRegion.from_dict(region) for region in held_out),
                   **{k: v for k, v in data.items() if k in settings})


def randomized_sample(
    layout_mask: np.ndarray, nm_per_px_model: float, tool: RandomizedTool, rng: np.random.Generator
) -> RandomizedSample:
    """Draw one tool from ``tool`` and image ``layout_mask`` with it (printed contour included)."""
    layout = np.asarray(layout_mask)
    if layout.ndim != 2 or min(layout.shape) < 2:
        raise SimulationError(f"layout_mask must be a 2-D (H, W) mask, got shape {layout.shape}")
    if not nm_per_px_model > 0:
        raise SimulationError(f"nm_per_px_model must be positive, got {nm_per_px_model}")
    return image_with_params(layout, nm_per_px_model, tool.sample(rng), rng)


def simulate_randomized(
    layout_mask: np.ndarray, nm_per_px_model: float, tool: RandomizedTool, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """(SEM image uint8, layout mask, drawn params), both images at the model's nm/px."""
    sample = randomized_sample(layout_mask, nm_per_px_model, tool, rng)
    return sample.sem_image, sample.layout_mask, sample.params


RANDOMIZED_TOOLS: dict[str, RandomizedTool] = {
    "random": RandomizedTool(
        "random", "domain randomization: every physical knob drawn per image over a wide range"),
}


def save_randomized_tool(tool: RandomizedTool, path: str | Path) -> None:
    """Write ``tool`` as indented JSON (atomically: temp file + rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(tool.to_dict(), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProfileError(f"tool file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ProfileError(f"cannot read tool file {path}: {err}") from None
    except json.JSONDecodeError as err:
        raise ProfileError(f"{path}: not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})") from None


def load_randomized_tool(path: str | Path) -> RandomizedTool:
    """Read a randomized tool JSON file; any problem raises ProfileError naming the file."""
    path = Path(path)
    try:
        return RandomizedTool.from_dict(_read_json(path))  # type: ignore[arg-type]
    except ProfileError as err:
        raise ProfileError(err.args[0] if str(path) in str(err) else f"{path}: {err}") from None


def resolve_randomized(spec: str) -> RandomizedTool | None:
    """``random``, ``random:validation`` or ``FILE.json[:split]`` of kind randomized → a tool; else None."""
    base, _, split = spec.rpartition(":")
    if not base or split not in SPLITS:
        base, split = spec, ""
    if base in RANDOMIZED_TOOLS:
        tool = RANDOMIZED_TOOLS[base]
    elif base.lower().endswith(".json") and Path(base).is_file():
        data = _read_json(Path(base))
        if not (isinstance(data, dict) and data.get("kind") == "randomized"):
            return None
        tool = load_randomized_tool(base)
    else:
        return None
    return tool.with_split(split) if split else tool
