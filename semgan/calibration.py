"""Per-tool intensity calibration: map a foreign tool's grey levels onto the training tools'.

A tool whose material contrast is inverted or far off (a new detector, a drifted column) shows
the same pattern with other grey levels. One generator cannot serve both polarities: fine-tuning
it on the new tool's pairs unlearns the old ones (measured: original-tool IoU 0.96 → 0.80). But
the corrected pairs say which pixels are pattern, so the tool's pattern and background levels can
be measured and mapped affinely (the gain may be negative) onto the training tools' levels. The
generator then only has to learn what is left (noise, edge shape), which does not conflict.

A model folder may carry ``calibration.json``: the reference histogram of the training tools
and one entry per calibrated tool (gain, offset, the tool's mean histogram). Each image is
matched to the closest histogram (KL divergence, as the drift monitor measures it); an image
closest to the reference is used as is. Training crops and predictions use the same rule.
Limit: two tools with the same grey-level histogram but opposite polarity cannot be told apart.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from semgan.drift import grey_histogram, kl_divergence
from semgan.errors import SemganError

CALIBRATION_FILE = "calibration.json"
UNKNOWN_TOOL = "unknown"  # the tool of samples nobody tagged
CALIBRATION_VERSION = 1
HISTOGRAM_BINS = 64
# Interior pixels only: edges bloom on any tool and would blur the two levels together.
INTERIOR_ERODE_PX = 2
MIN_INTERIOR_PX = 50
ROUTING_NEIGHBOURS = 5  # nearest example histograms that vote on an untagged image's tool
MAX_EXAMPLES = 200  # example histograms kept per tool (and for the training tools)


class CalibrationError(SemganError):
    """A calibration cannot be measured, read or applied."""


def tool_key(tool: str | None) -> str:
    """The key of a tool's adaptation: ``tool:NAME`` (``tool:unknown`` for untagged samples)."""
    name = (tool or "").strip() or UNKNOWN_TOOL
    return name if name.startswith("tool:") else f"tool:{name}"


@dataclass(frozen=True)
class Levels:
    """Median grey level (in [0, 1]) of pattern and background interiors over a set of pairs."""

    pattern: float
    background: float


@dataclass(frozen=True)
class ToolCalibration:
    """``calibrated = clip(gain × pixels + offset, 0, 1)`` for images of one tool."""

    tool: str
    gain: float
    offset: float
    histogram: tuple[float, ...]
    pairs: int
    levels: Levels
    expert: str = ""  # file of this tool's own SEM→layout generator (semgan.experts); "" = shared
    examples: tuple[tuple[float, ...], ...] = ()  # histograms of its corrected images (routing)

    def apply(self, pixels: np.ndarray) -> np.ndarray:
        """The image mapped onto the reference tools' grey levels, float32 in [0, 1]."""
        out = np.asarray(pixels, dtype=np.float32) * np.float32(self.gain) + np.float32(self.offset)
        return np.clip(out, 0.0, 1.0)

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return {"tool": self.tool, "gain": self.gain, "offset": self.offset, "pairs": self.pairs,
                "levels": {"pattern": self.levels.pattern, "background": self.levels.background},
                "histogram": list(self.histogram), "expert": self.expert,
                "examples": [list(e) for e in self.examples]}


@dataclass(frozen=True)
class CalibrationSet:
    """The training tools' histogram and levels, and the calibrated foreign tools."""

    reference_histogram: tuple[float, ...]
    reference_levels: Levels
    tools: tuple[ToolCalibration, ...] = ()
    reference_examples: tuple[tuple[float, ...], ...] = ()  # histograms of training-tool images

    def choose(self, pixels: np.ndarray) -> ToolCalibration | None:
        """The tool an untagged image most likely came from, None for the training tools.

        With example histograms (the training tools' images and each tool's corrected ones) the
        image goes to a tool only when most of its ``ROUTING_NEIGHBOURS`` nearest examples are
        that tool's: a training-tool image close to one tool's mean histogram stays with the
        shared generator. Without them (older files), the closest mean histogram decides.
        """
        if not self.tools:
            return None
        histogram = grey_histogram(pixels, len(self.reference_histogram))
        if self.reference_examples and all(tool.examples for tool in self.tools):
            return self._nearest_examples(histogram)
        best, best_kl = None, kl_divergence(histogram, np.array(self.reference_histogram))
        for tool in self.tools:
            divergence = kl_divergence(histogram, np.array(tool.histogram))
            if divergence < best_kl:
                best, best_kl = tool, divergence
        return best

    def _nearest_examples(self, histogram: np.ndarray) -> ToolCalibration | None:
        labelled = [(None, e) for e in self.reference_examples] + \
            [(tool, e) for tool in self.tools for e in tool.examples]
        distances = [kl_divergence(histogram, np.array(example)) for _, example in labelled]
        nearest = [labelled[i][0] for i in np.argsort(distances)[:ROUTING_NEIGHBOURS]]
        votes = {tool.tool: sum(t is tool for t in nearest) for tool in self.tools}
        best = max(self.tools, key=lambda tool: votes[tool.tool])
        return best if votes[best.tool] * 2 > len(nearest) else None

    def apply(self, pixels: np.ndarray) -> tuple[np.ndarray, str | None]:
        """(image ready for the generator, name of the tool calibration used or None)."""
        tool = self.choose(pixels)
        if tool is None:
            return np.asarray(pixels, dtype=np.float32), None
        return tool.apply(pixels), tool.tool

    def get(self, tool: str) -> ToolCalibration | None:
        """The adaptation of the tool tagged ``tool`` (a name or a ``tool:NAME`` key), or None."""
        key = tool_key(tool)
        return next((entry for entry in self.tools if entry.tool == key), None)

    def route(self, pixels: np.ndarray, tool: str | None) -> tuple[ToolCalibration | None, str]:
        """(the adaptation for this image, how it was found): ``tool`` given → by its tag
        ("tag", or "none" when that tool has no adaptation: production's shared generator);
        untagged (None) → the nearest grey-level histogram ("histogram", or "none")."""
        if tool is not None:
            entry = self.get(tool)
            return entry, "tag" if entry is not None else "none"
        entry = self.choose(pixels)
        return entry, "histogram" if entry is not None else "none"

    def with_tool(self, calibration: ToolCalibration) -> CalibrationSet:
        """This set with ``calibration`` added (replacing an older one of the same tool)."""
        kept = tuple(t for t in self.tools if t.tool != calibration.tool)
        return CalibrationSet(self.reference_histogram, self.reference_levels, (*kept, calibration),
                              self.reference_examples)

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return {"version": CALIBRATION_VERSION, "reference_histogram": list(self.reference_histogram),
                "reference_levels": {"pattern": self.reference_levels.pattern,
                                     "background": self.reference_levels.background},
                "tools": [tool.to_dict() for tool in self.tools],
                "reference_examples": [list(e) for e in self.reference_examples]}

    @classmethod
    def from_dict(cls, data: dict) -> CalibrationSet:
        """Rebuild from ``to_dict`` output; malformed content raises CalibrationError."""
        try:
            if data["version"] != CALIBRATION_VERSION:
                raise CalibrationError(f"unsupported calibration version {data['version']!r}")
            reference = tuple(float(v) for v in data["reference_histogram"])
            tools = tuple(
                ToolCalibration(str(t["tool"]), float(t["gain"]), float(t["offset"]),
                                tuple(float(v) for v in t["histogram"]), int(t["pairs"]),
                                Levels(float(t["levels"]["pattern"]), float(t["levels"]["background"])),
                                str(t.get("expert", "")),
                                tuple(tuple(float(v) for v in e) for e in t.get("examples", ())))
                for t in data["tools"])
            examples = tuple(tuple(float(v) for v in e) for e in data.get("reference_examples", ()))
            levels = Levels(float(data["reference_levels"]["pattern"]),
                            float(data["reference_levels"]["background"]))
        except (KeyError, TypeError, ValueError) as error:
            raise CalibrationError(f"malformed calibration: {error!r}") from None
        if len(reference) < 2 or any(len(h) != len(reference) for t in tools
                                     for h in (t.histogram, *t.examples)) \
                or any(len(e) != len(reference) for e in examples):
            raise CalibrationError("malformed calibration: histograms of different lengths")
        if any(not (math.isfinite(t.gain) and math.isfinite(t.offset)) for t in tools):
            raise CalibrationError("malformed calibration: gain or offset is not finite")
        if any(t.expert and (Path(t.expert).name != t.expert or not t.expert.endswith(".safetensors"))
               for t in tools):  # a bare file name inside the model folder, nothing else
            raise CalibrationError("malformed calibration: an expert must be a .safetensors file name")
        return cls(reference, levels, tools, examples)


def material_levels(pairs: Iterable[tuple[np.ndarray, np.ndarray]]) -> Levels:
    """Median pattern and background grey levels of SEM images, from their layout masks."""
    kernel = np.ones((2 * INTERIOR_ERODE_PX + 1,) * 2, np.uint8)
    pattern, background = [], []
    for sem_image, mask in pairs:
        image = np.asarray(sem_image, dtype=np.float32)
        inside = cv2.erode(np.asarray(mask, bool).astype(np.uint8), kernel).astype(bool)
        outside = cv2.erode((~np.asarray(mask, bool)).astype(np.uint8), kernel).astype(bool)
        if inside.sum() >= MIN_INTERIOR_PX:
            pattern.append(float(image[inside].mean()))
        if outside.sum() >= MIN_INTERIOR_PX:
            background.append(float(image[outside].mean()))
    if not pattern or not background:
        raise CalibrationError("these pairs show no pattern or no background wide enough to measure "
                               "grey levels on")
    return Levels(float(np.median(pattern)), float(np.median(background)))


def mean_histogram(images: Iterable[np.ndarray], bins: int = HISTOGRAM_BINS) -> tuple[float, ...]:
    """Mean normalised grey-level histogram of some images."""
    histograms = [grey_histogram(image, bins) for image in images]
    if not histograms:
        raise CalibrationError("no images to build a histogram from")
    return tuple(float(v) for v in np.mean(histograms, axis=0))


def reference_set(pairs: list[tuple[np.ndarray, np.ndarray]]) -> CalibrationSet:
    """An empty calibration set whose reference is these training-tool pairs."""
    return CalibrationSet(mean_histogram(s for s, _ in pairs), material_levels(pairs))


def fit_tool(tool: str, pairs: list[tuple[np.ndarray, np.ndarray]], reference: CalibrationSet,
             min_contrast: float = 0.02) -> ToolCalibration:
    """The affine map taking this tool's pattern/background levels onto the reference's."""
    levels = material_levels(pairs)
    contrast = levels.pattern - levels.background
    if abs(contrast) < min_contrast:
        raise CalibrationError(f"tool {tool!r}: pattern and background differ by {contrast:+.3f} only; "
                               "no usable material contrast to calibrate")
    target = reference.reference_levels
    gain = (target.pattern - target.background) / contrast
    offset = target.background - gain * levels.background
    return ToolCalibration(tool, float(gain), float(offset), mean_histogram(s for s, _ in pairs),
                           len(pairs), levels)


def load_calibration(model_dir: str | Path) -> CalibrationSet | None:
    """The model's calibration set, None when it has none."""
    path = Path(model_dir) / CALIBRATION_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise CalibrationError(f"{path}: unreadable ({error})") from None
    try:
        return CalibrationSet.from_dict(data)
    except CalibrationError as error:
        raise CalibrationError(f"{path}: {error}") from None


def save_calibration(calibration: CalibrationSet, model_dir: str | Path) -> Path:
    """Write ``calibration.json`` into the model folder atomically."""
    path = Path(model_dir) / CALIBRATION_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(calibration.to_dict(), indent=2) + "\n")
    os.replace(tmp, path)
    return path
