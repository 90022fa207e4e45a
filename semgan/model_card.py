"""The model card (``card.json``) as one typed shape, and the names of a model folder's files.

Every reader and writer of ``card.json`` goes through ``ModelCard``; keys it does not know stay
in ``extra``, and the keys keep their order, so an old card loads and re-saves byte for byte.
No torch here: the store converts its card JSON at this boundary.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from semgan import DEFAULT_NM_PER_PX
from semgan.errors import SemganError

if TYPE_CHECKING:
    from semgan.config import ExperimentConfig

WEIGHTS, OPTIMIZER, CONFIG, CARD, STATE = (
    "weights.safetensors", "optimizer.safetensors", "config.json", "card.json", "train_state.json")
CARD_FORMAT, CARD_VERSION = "semgan-model-card", 1


class ModelCardError(SemganError):
    """A model card is not a JSON object."""


@dataclass
class ModelCard:
    """What a model folder says about itself; a field set (even to None) is written, an unset one not.

    Built from a card with ``from_dict``/``read``, for a new run with ``new``; ``to_dict`` gives
    the keys back in their order, new ones appended in the order they were set.
    """

    format: str | None = None
    version: int | None = None
    preset: str | None = None
    nm_per_px: float | None = None
    data_recipe: dict[str, Any] | None = None  # what PairedDataset.recipe() recorded
    steps: int | None = None
    wall_seconds: float | None = None
    device: str | None = None
    metrics: dict[str, Any] | None = None  # {"heldout": {...}, "heldout_data": ...}
    command: str | None = None
    fine_tuned_from: str | None = None  # the folder (or "model vN") it was fine-tuned from
    lr_scale: float | None = None
    created: str | None = None
    torch_version: str | None = None
    semgan_version: str | None = None
    world_size: int | None = None
    updated: str | None = None
    resumed_with: list[str] | None = None  # commands of later sittings of the same run
    export: dict[str, Any] | None = None  # dtype, weights_sha256, source_steps, critics, command
    drift_reference: dict[str, Any] | None = None  # semgan.drift.DriftReference.to_dict()
    drift_reference_source: dict[str, Any] | None = None
    drift_reference_note: str | None = None
    evaluations: list[dict[str, Any]] | None = None  # `semgan evaluate --json` results
    lineage: list[dict[str, Any]] | None = None  # the runs it grew from, nearest first
    fine_tune: dict[str, Any] | None = None  # loop.jobs.TrainingSummary.to_dict()
    init_note: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # keys this class does not know
    _keys: list[str] = field(default_factory=list, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._keys.extend(name for name in _FIELDS if getattr(self, name) is not None)

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        keys = self.__dict__.get("_keys")
        if keys is not None and name in _FIELDS and name not in keys:
            keys.append(name)

    def __contains__(self, key: str) -> bool:
        return key in self._keys if key in _FIELDS else key in self.extra

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelCard:
        """The card of a parsed ``card.json`` (values kept as they are, unknown keys in ``extra``)."""
        if not isinstance(data, Mapping):
            raise ModelCardError(f"a model card must be a JSON object, got {type(data).__name__}")
        card = cls(**{key: value for key, value in data.items() if key in _FIELDS},
                   extra={key: value for key, value in data.items() if key not in _FIELDS})
        card._keys[:] = list(data)
        return card

    @classmethod
    def of(cls, card: ModelCard | Mapping[str, Any]) -> ModelCard:
        """``card`` itself, or the card of a plain dict."""
        return card if isinstance(card, ModelCard) else cls.from_dict(card)

    @classmethod
    def new(cls, *, preset: str, nm_per_px: float, data_recipe: dict[str, Any], command: str | None,
            fine_tuned_from: str | None, lr_scale: float, created: str, torch_version: str,
            semgan_version: str) -> ModelCard:
        """The card of a run about to train: every key a trained card starts with, in order."""
        return cls.from_dict({
            "format": CARD_FORMAT, "version": CARD_VERSION, "preset": preset, "nm_per_px": nm_per_px,
            "data_recipe": data_recipe, "steps": 0, "wall_seconds": 0.0, "device": None, "metrics": {},
            "command": command, "fine_tuned_from": fine_tuned_from, "lr_scale": lr_scale,
            "created": created, "torch_version": torch_version, "semgan_version": semgan_version})

    @classmethod
    def read(cls, model_dir: str | Path) -> ModelCard:
        """``model_dir/card.json`` (OSError and JSONDecodeError as ``json``/``open`` raise them)."""
        return cls.from_dict(json.loads((Path(model_dir) / CARD).read_text()))

    def to_dict(self) -> dict[str, Any]:
        """The card as JSON-able dict, keys in their order."""
        out = {key: getattr(self, key) if key in _FIELDS else self.extra[key]
               for key in self._keys if key in _FIELDS or key in self.extra}
        return {**out, **{key: value for key, value in self.extra.items() if key not in out}}

    def to_json(self) -> str:
        """The bytes of ``card.json``: indented JSON and a newline."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def write(self, model_dir: str | Path) -> Path:
        """Write ``model_dir/card.json`` atomically; returns its path."""
        path = Path(model_dir) / CARD
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(self.to_json())
        os.replace(tmp, path)
        return path

    def copy(self) -> ModelCard:
        """A deep copy (nested dicts and lists too)."""
        return type(self).from_dict(copy.deepcopy(self.to_dict()))

    def update(self, **values: Any) -> None:
        """Set several keys, known or not, in this order (like ``dict.update``)."""
        for key, value in values.items():
            if key in _FIELDS:
                setattr(self, key, value)
            else:
                self.extra[key] = value
                if key not in self._keys:
                    self._keys.append(key)

    def pixel_size(self, config: ExperimentConfig | Mapping[str, Any] | None = None) -> float:
        """The model's nm/px: the card's, else its config's ``data.nm_per_px`` (else the default)."""
        if self.nm_per_px:
            return float(self.nm_per_px)
        if config is None:
            return float(DEFAULT_NM_PER_PX)
        if isinstance(config, Mapping):
            return float((config.get("data") or {}).get("nm_per_px") or DEFAULT_NM_PER_PX)
        return float(config.data.nm_per_px)

    def image_size(self, default: int) -> int:
        """Side of the images it was trained on (``data_recipe.size``), else ``default``."""
        return int((self.data_recipe or {}).get("size") or default)


_FIELDS = tuple(f.name for f in fields(ModelCard) if f.name not in ("extra", "_keys"))  # in order
