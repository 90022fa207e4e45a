"""The pair folder: SEM images and their layouts on disk with a ``manifest.json``; its one shape.

Two kinds of folder are written, one reader reads both:

- the workspace export (Export tab, ``python -m store export``): ``{"format":
  "semgan-pairs/1", "pairs": [{"name", "sem_file", "layout_file", "nm_per_px", "height",
  "width", "tool", "split", "kind", …provenance}]}``: real images of any size, each with its
  own pixel size;
- synthetic or tiled data (``python -m semgan synth``, the fine-tune's exported splits):
  ``{"version": 1, "nm_per_px", "size", "items": [{"name", "sem", "layout", "profile",
  "source": {"kind": …}}]}``: square tiles, one pixel size.

``read_pair_folder`` turns either into a ``PairFolder``; ``semgan train --data``, ``semgan
evaluate --data`` and ``python -m loop import-pairs --pairs`` read that. No torch here: the
store writes the export through ``PairItem.to_record``/``pairs_manifest``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from semgan.errors import SemganError

PAIRS_FORMAT = "semgan-pairs/1"
SYNTH_VERSIONS = (1,)
# Keys of an export record that PairItem holds as fields; every other key is provenance.
_RECORD_FIELDS = ("name", "sem_file", "layout_file", "nm_per_px", "height", "width", "tool",
                  "split", "kind")


class DatasetError(SemganError):
    """A data folder is missing, malformed, or does not match the model (pixel size, image size)."""


@dataclass(frozen=True)
class PairItem:
    """One SEM image and its layout in a pair folder (paths relative to the folder)."""

    name: str
    sem: str
    layout: str
    nm_per_px: float
    height: int | None = None  # None: not recorded (synth tiles are the folder's size)
    width: int | None = None
    tool: str | None = None  # the SEM tool of a real image
    profile: str | None = None  # the simulated tool profile of a synthetic one
    split: str | None = None  # "train" / "holdout" as the workspace assigned it
    kind: str = "synthetic"  # "corrected", "accepted", "imported", or the synth source kind
    details: Mapping[str, Any] = field(default_factory=dict)  # ids, author, dates, metrics

    @property
    def group(self) -> str:
        """What evaluation groups results by: the profile, else ``tool:NAME``."""
        return self.profile or f"tool:{self.tool or 'unknown'}"

    def to_record(self) -> dict[str, Any]:
        """The export's JSON record of this pair."""
        return {**self.details, "name": self.name, "sem_file": self.sem,
                "layout_file": self.layout, "nm_per_px": self.nm_per_px,
                "height": self.height, "width": self.width, "tool": self.tool,
                "split": self.split, "kind": self.kind}

    @classmethod
    def from_record(cls, record: Mapping[str, Any], where: str) -> PairItem:
        """A pair from an export record; DatasetError naming ``where`` when malformed."""
        missing = [k for k in ("sem_file", "layout_file", "nm_per_px") if k not in record]
        if missing:
            raise DatasetError(f"{where}: pair record lacks {', '.join(missing)}")
        stem = Path(str(record["sem_file"])).stem
        return cls(str(record.get("name") or stem), str(record["sem_file"]),
                   str(record["layout_file"]), _pixel_size(record["nm_per_px"], where),
                   _side(record.get("height"), where), _side(record.get("width"), where),
                   record.get("tool"), None, record.get("split"), str(record.get("kind")
                                                                       or "corrected"),
                   {k: v for k, v in record.items() if k not in _RECORD_FIELDS})

    def to_synth_item(self) -> dict[str, Any]:
        """The synth manifest's item dict (what evaluation's per-item rows read)."""
        source = self.details.get("source")
        source = {**source, "kind": self.kind} if isinstance(source, dict) else \
            {"kind": self.kind, "origin": source}
        return {**self.details, "name": self.name, "sem": self.sem, "layout": self.layout,
                "profile": self.group, "source": source}


@dataclass(frozen=True)
class PairFolder:
    """A pair folder as read: its pairs and what they share."""

    path: Path
    format: str  # PAIRS_FORMAT or "synth/1"
    items: tuple[PairItem, ...]
    size: int | None  # the side of every (square) image, None when sizes differ
    manifest: Mapping[str, Any]  # as read, for recipes (seed, profiles, layouts)

    @property
    def pixel_sizes(self) -> list[float]:
        """The distinct pixel sizes of the pairs, sorted."""
        return sorted({item.nm_per_px for item in self.items})

    @property
    def nm_per_px(self) -> float:
        """The one pixel size of every pair; DatasetError when they differ."""
        sizes = self.pixel_sizes
        if len(sizes) != 1:
            raise DatasetError(
                f"{self.path}: pairs at {', '.join(f'{s:g}' for s in sizes)} nm/px; training "
                "and evaluation need one pixel size: export one, or resample the pairs")
        return sizes[0]

    def synth_view(self) -> dict[str, Any]:
        """The synth-manifest dict of this folder (one pixel size), for dict-reading callers."""
        if self.format != PAIRS_FORMAT:
            return dict(self.manifest)
        side = self.size or min(min(i.height or 0, i.width or 0) for i in self.items)
        return {"version": 1, "format": self.format, "nm_per_px": self.nm_per_px, "size": side,
                "items": [item.to_synth_item() for item in self.items]}


def _pixel_size(value: Any, where: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not (math.isfinite(number) and number > 0):
        raise DatasetError(f"{where}: nm_per_px must be a positive number, got {value!r}")
    return number


def _side(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DatasetError(f"{where}: image sides must be positive integers, got {value!r}")
    return value


def _load_json(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise DatasetError(f"{path}: no manifest.json; create the folder with `python -m semgan "
                           "synth` or export pairs from a workspace") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DatasetError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(manifest, dict):
        raise DatasetError(f"{path}: the manifest must be a JSON object")
    return manifest


def _synth_items(manifest: Mapping[str, Any], where: str) -> tuple[PairItem, ...]:
    for key in ("version", "nm_per_px", "size", "items"):
        if key not in manifest:
            raise DatasetError(f"{where}: missing key {key!r}")
    if manifest["version"] not in SYNTH_VERSIONS:
        raise DatasetError(f"{where}: manifest version {manifest['version']} is not supported")
    nm_per_px, size = _pixel_size(manifest["nm_per_px"], where), _side(manifest["size"], where)
    items = []
    for raw in manifest["items"]:
        for key in ("name", "sem", "layout"):
            if not isinstance(raw, dict) or key not in raw:
                name = raw.get("name") if isinstance(raw, dict) else raw
                raise DatasetError(f"{where}: item {name!r} has no {key!r}")
        details = {k: v for k, v in raw.items() if k not in ("name", "sem", "layout", "profile")}
        items.append(PairItem(str(raw["name"]), raw["sem"], raw["layout"], nm_per_px, size,
                              size, None, raw.get("profile"), None,
                              str((raw.get("source") or {}).get("kind", "synthetic")), details))
    return tuple(items)


def read_pair_folder(data_dir: str | Path) -> PairFolder:
    """Read and check ``DIR/manifest.json`` of either kind (DatasetError saying what is wrong)."""
    data_dir = Path(data_dir)
    path = data_dir / "manifest.json"
    manifest = _load_json(path)
    if "format" in manifest and manifest["format"] != PAIRS_FORMAT:
        raise DatasetError(f"{path}: format {manifest['format']!r} is not supported "
                           f"(this version reads {PAIRS_FORMAT} and synth version 1)")
    if manifest.get("format") == PAIRS_FORMAT:
        if not isinstance(manifest.get("pairs"), list):
            raise DatasetError(f"{path}: missing key 'pairs'")
        items = tuple(PairItem.from_record(r, f"{path} pair {i}") if isinstance(r, dict) else
                      _bad_record(path, i) for i, r in enumerate(manifest["pairs"]))
        sides = {(i.height, i.width) for i in items}
        size = next(iter(sides))[0] if len(sides) == 1 and len(set(next(iter(sides)))) == 1 \
            else None
        kind = PAIRS_FORMAT
    else:
        items, size, kind = _synth_items(manifest, str(path)), int(manifest["size"]), "synth/1"
    if not items:
        raise DatasetError(f"{path}: the manifest lists no items")
    return PairFolder(data_dir, kind, items, size, manifest)


def _bad_record(path: Path, index: int) -> PairItem:
    raise DatasetError(f"{path} pair {index}: a pair record must be a JSON object")


def pairs_manifest(items: Sequence[PairItem], **header: Any) -> dict[str, Any]:
    """The export's manifest dict: the format tag, ``header`` fields, the pairs and their count."""
    return {"format": PAIRS_FORMAT, **header, "count": len(items),
            "pairs": [item.to_record() for item in items]}
