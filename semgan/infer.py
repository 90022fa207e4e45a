"""Inference for any image size: resample to the model's nm/px, tile with overlap, blend, resample back."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from semgan.calibration import CalibrationSet, load_calibration
from semgan.checkpoint import WEIGHTS, load_checkpoint
from semgan.config import ExperimentConfig
from semgan.data import standardize_sem
from semgan.device import autocast_dtype, default_precision, pick_device, precision_name
from semgan.edgecheck import DEFAULT_EDGE_CHECK, EdgeCheckConfig, edge_support_check
from semgan.errors import SemganError
from semgan.experts import load_experts
from semgan.manhattan import manhattan_mask
from semgan.metric_inputs import MetricError, as_unit_float
from semgan.model import GanModels
from semgan.model_card import ModelCard
from semgan.resample import resize
from semgan.tiling import blend_window, plan_axis

__all__ = ["DEFAULT_MODEL_DIR", "LayoutPrediction", "ModelNotFoundError", "PredictionError", "Predictor",
           "blend_window", "resolve_model"]

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "weights" / "default"


class ModelNotFoundError(SemganError):
    """A model name or folder does not resolve to a model."""


class PredictionError(SemganError):
    """An input image or tiling setting cannot be predicted."""


@dataclass(frozen=True)
class LayoutPrediction:
    """SEM → layout result at the input's size: binary mask, P(feature) and confidence |2p − 1|.

    Regions the edge-support check flipped (``semgan.edgecheck``) have P(feature) reflected
    (1 − p, so the mask is still p > 0.5) and confidence 0: the generator and the SEM disagree.
    """

    mask: np.ndarray  # (H, W) bool
    probability: np.ndarray  # (H, W) float32 in [0, 1]
    confidence: np.ndarray  # (H, W) float32 in [0, 1]
    seconds: float
    calibration: str | None = None  # the tool calibration applied to the input (semgan.calibration)
    expert: bool = False  # that tool's own generator made it (semgan.experts)
    edge_flips: int = 0  # regions the edge-support check flipped
    flipped_fraction: float = 0.0  # of the image's pixels
    edge_check_skipped: bool = False  # the image's edges were too weak against its noise to judge
    routing: str = "none"  # how the tool adaptation was found: "tag", "histogram" or "none"
    outline: list | None = None  # with manhattan=True: the mask's rings (semgan.manhattan.manhattan_vectorize)


def resolve_model(name: str | Path) -> Path:
    """``"default"`` → the model shipped in ``semgan/weights/default``; anything else is a folder path."""
    if str(name) == "default":
        if not (DEFAULT_MODEL_DIR / WEIGHTS).is_file():
            raise ModelNotFoundError(f"the default model is not installed ({DEFAULT_MODEL_DIR} has no weights); "
                                     "train one with `python -m semgan train` and pass --model MODEL_DIR")
        return DEFAULT_MODEL_DIR
    path = Path(name)
    if not (path / WEIGHTS).is_file():
        raise ModelNotFoundError(f"{path}: not a model folder (no {WEIGHTS})")
    return path


def _to_unit_float(image: np.ndarray, what: str) -> np.ndarray:
    """uint8 / uint16 / bool / float [0, 1] (H, W) → float32 [0, 1] (the metrics' rules)."""
    image = np.asarray(image)
    if image.ndim == 2 and min(image.shape) < 1:
        raise PredictionError(f"{what} is empty: shape {image.shape}")
    try:
        return as_unit_float(image, what).astype(np.float32)
    except MetricError as err:  # same check, reported as a prediction input error
        raise PredictionError(str(err)) from None


def _as_mask(layout_mask: np.ndarray) -> np.ndarray:
    """bool as is; integer masks (0/1, 0/255) → > 0; float masks → > 0.5."""
    layout_mask = np.asarray(layout_mask)
    if layout_mask.dtype == bool:
        return layout_mask
    if np.issubdtype(layout_mask.dtype, np.floating):
        return layout_mask > 0.5
    return layout_mask > 0


class Predictor:
    """Runs a trained model in both directions on images of any size and pixel size."""

    def __init__(self, models: GanModels, config: ExperimentConfig, card: ModelCard | dict[str, Any] | None = None,
                 device: str | torch.device = "auto", tile_size: int | None = 256, overlap: int = 32,
                 batch_size: int = 8, calibration: CalibrationSet | None = None,
                 experts: dict[str, nn.Module] | None = None,
                 edge_check: EdgeCheckConfig | None = DEFAULT_EDGE_CHECK, precision: str | None = None,
                 max_tile: int | None = None, manhattan: bool = False) -> None:
        self.config = config
        # Redraw each mask from Manhattan outlines with sub-pixel edges (semgan.manhattan).
        self.manhattan = manhattan
        self.edge_check = edge_check if edge_check is not None and edge_check.enabled else None
        self.calibration = calibration
        self.card = card if isinstance(card, ModelCard) else ModelCard.from_dict(card or {})
        self.nm_per_px = self.card.pixel_size(config)
        self.device = device if isinstance(device, torch.device) else pick_device(device)
        self.multiple = 2**config.generator.n_down
        if tile_size is not None and (tile_size % self.multiple or tile_size < self.multiple):
            raise PredictionError(f"tile_size must be a positive multiple of {self.multiple}, got {tile_size}")
        if tile_size is not None and not 0 <= overlap < tile_size:
            raise PredictionError(f"overlap must be in [0, tile_size), got {overlap}")
        self.tile_size, self.overlap, self.batch_size = tile_size, overlap, max(1, batch_size)
        self.max_tile = max_tile  # None: tiles up to 9/4 · tile_size where that saves work (semgan.tiling)
        # Weights stay fp32; autocast runs the convs in bf16/fp16 where that is native and fast.
        self.dtype = autocast_dtype(self.device, precision or default_precision())
        self.precision = precision_name(self.dtype)
        # channels_last (NHWC) is the layout oneDNN's and cuDNN's fast conv kernels use: without
        # it every conv reorders its input and output.
        self.models = models.to(self.device).float().eval()  # BatchNorm running stats, dropout off
        self.models.to(memory_format=torch.channels_last)
        # Tool name → that tool's own SEM→layout generator (semgan.experts), chosen per image.
        self.experts = {tool: expert.to(self.device).float().eval().to(memory_format=torch.channels_last)
                        for tool, expert in (experts or {}).items()}

    @classmethod
    def from_dir(cls, model_dir: str | Path, device: str = "auto", **options: Any) -> Predictor:
        """Load an inference export or a full checkpoint (``"default"`` = the shipped model)."""
        folder = resolve_model(model_dir)
        checkpoint = load_checkpoint(folder, "cpu", generators_only=True)
        calibration = load_calibration(folder)
        return cls(checkpoint.models, checkpoint.config, checkpoint.card, device, **options,
                   calibration=calibration,
                   experts=load_experts(folder, calibration, checkpoint.config))

    def predict(self, sem_image: np.ndarray, nm_per_px: float | None = None,
                tool: str | None = None) -> LayoutPrediction:
        """SEM image (H, W) → layout prediction at the same size; ``nm_per_px`` None = the model's.

        ``tool`` names the SEM tool the image came from: its adaptation (grey-level map and own
        generator) is used when the model has one, production's shared generator otherwise.
        Untagged images (None) fall back to the nearest grey-level histogram.
        """
        started = time.perf_counter()
        pixels = _to_unit_float(sem_image, "sem_image")
        entry, routing = (self.calibration.route(pixels, tool) if self.calibration is not None
                          else (None, "none"))
        tool = entry.tool if entry is not None else None
        if entry is not None:  # the tool's grey levels mapped onto the trained ones
            pixels = entry.apply(pixels)
        standardization = self.config.data.sem_standardization()
        if standardization is not None:  # over the whole image, before tiling: tiles agree
            pixels = standardize_sem(pixels, *standardization)
        expert = self.experts.get(tool) if tool else None
        generator = expert if expert is not None else self.models.sem_to_layout
        resampled = self._model_scale(pixels, nm_per_px)
        probability = np.clip((self._run(generator, resampled) + 1) / 2, 0, 1).astype(np.float32)
        flipped, flips, skipped = None, 0, False
        if self.edge_check is not None:  # at the model's nm/px, on the whole image
            checked = edge_support_check((resampled + 1) / 2, probability > 0.5, self.edge_check)
            skipped = checked.skipped
            if checked.regions:
                flipped, flips = checked.flipped, checked.regions
                probability = np.where(flipped, 1 - probability, probability)
        height, width = pixels.shape
        probability = resize(probability, height, width)
        confidence = np.abs(2 * probability - 1)
        if flipped is not None:
            flipped = resize(flipped.astype(np.float32), height, width) > 0.5
            confidence[flipped] = 0.0
        mask, outline = probability > 0.5, None
        if self.manhattan:
            mask, outline = manhattan_mask(probability, self.nm_per_px if nm_per_px is None else nm_per_px)
        return LayoutPrediction(mask, probability, confidence,
                                time.perf_counter() - started, tool, expert is not None, flips,
                                float(flipped.mean()) if flipped is not None else 0.0, skipped,
                                routing, outline)

    def predict_sem(self, layout_mask: np.ndarray, nm_per_px: float | None = None) -> np.ndarray:
        """Layout mask (H, W) → simulated SEM image, uint8, same size."""
        pixels = _to_unit_float(_as_mask(layout_mask), "layout_mask")
        output = self._translate(self.models.layout_to_sem, pixels, nm_per_px)
        return np.clip((output + 1) * 127.5 + 0.5, 0, 255).astype(np.uint8)

    def _model_scale(self, pixels: np.ndarray, nm_per_px: float | None) -> np.ndarray:
        """[0, 1] image at ``nm_per_px`` → the model's nm/px and value range [-1, 1]."""
        if nm_per_px is not None and not nm_per_px > 0:
            raise PredictionError(f"nm_per_px must be positive, got {nm_per_px}")
        height, width = pixels.shape
        scale = 1.0 if nm_per_px is None else nm_per_px / self.nm_per_px
        model_h, model_w = max(1, round(height * scale)), max(1, round(width * scale))
        return resize(pixels, model_h, model_w) * 2 - 1

    def _run(self, generator: nn.Module, image: np.ndarray) -> np.ndarray:
        """Generator output in [-1, 1] for a model-scale image, whole or in tiles."""
        if self.tile_size is None:
            return self._run_whole(generator, image)
        return self._run_tiled(generator, image)

    def _translate(self, generator: nn.Module, pixels: np.ndarray, nm_per_px: float | None) -> np.ndarray:
        """[0, 1] image at ``nm_per_px`` → generator output in [-1, 1] at the input's size."""
        height, width = pixels.shape
        return resize(self._run(generator, self._model_scale(pixels, nm_per_px)), height, width)

    def _forward(self, generator: nn.Module, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode(), self._autocast():
            tensor = torch.from_numpy(batch).to(self.device)[:, None]  # (B, 1, h, w)
            tensor = tensor.contiguous(memory_format=torch.channels_last)
            return generator(tensor)[:, 0].float().cpu().numpy()

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def _pad(self, image: np.ndarray, minimum: int) -> np.ndarray:
        """Mirror-pad bottom/right to a multiple of 2**n_down (and at least ``minimum``)."""
        height, width = image.shape
        target_h = max(minimum, -(-height // self.multiple) * self.multiple)
        target_w = max(minimum, -(-width // self.multiple) * self.multiple)
        return np.pad(image, ((0, target_h - height), (0, target_w - width)), mode="symmetric")

    def _run_whole(self, generator: nn.Module, image: np.ndarray) -> np.ndarray:
        height, width = image.shape
        return self._forward(generator, self._pad(image, 0)[None])[0, :height, :width]

    def _run_tiled(self, generator: nn.Module, image: np.ndarray) -> np.ndarray:
        height, width = image.shape
        padded = self._pad(image, self.tile_size)  # smaller images run as a single tile
        # Tile corners on multiples of 2**n_down: the strided convs then sample the same pixel
        # phases as a whole-image pass, so tile interiors reproduce it exactly (without attention).
        overlap = min(self.overlap, self.tile_size - self.multiple)
        rows = plan_axis(padded.shape[0], self.tile_size, overlap, self.multiple, self.max_tile)
        cols = plan_axis(padded.shape[1], self.tile_size, overlap, self.multiple, self.max_tile)
        corners = [(y, x) for y in rows.starts for x in cols.starts]
        # Overlaps are ≥ ``overlap`` everywhere; the window fades over that span, and the weight
        # normalisation below makes any larger overlap blend just as smoothly.
        window = blend_window(rows.tile, overlap, cols.tile)
        total = np.zeros(padded.shape, np.float32)
        weight = np.zeros(padded.shape, np.float32)
        for first in range(0, len(corners), self.batch_size):
            chunk = corners[first:first + self.batch_size]
            tiles = np.stack([padded[y:y + rows.tile, x:x + cols.tile] for y, x in chunk]).astype(np.float32)
            for (y, x), out in zip(chunk, self._forward(generator, tiles), strict=True):
                total[y:y + rows.tile, x:x + cols.tile] += out * window
                weight[y:y + rows.tile, x:x + cols.tile] += window
        return (total / weight)[:height, :width]
