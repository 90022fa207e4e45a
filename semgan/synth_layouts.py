"""Which layouts a synthetic data set draws from: layout families, held-out families, real tiles.

A ``FamilySet`` names the families a set generates, the train/hold-out split of the families
it was chosen from, and the layer real clips of each family are read from. A held-out family
is never drawn into the ``train`` split: not as a procedural clip, not as a real tile, and not
as a region of a mixed clip. Real layout files are split too, by file name (``layout_file_split``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from semgan.layouts import (
    LAYOUT_SUFFIXES,
    CellNotFoundError,
    EmptyWindowError,
    LayerNotFoundError,
    LayoutClip,
    LayoutFileError,
    format_layer,
    load_layout_tiles,
)
from semgan.layouts.families import (
    FAMILIES,
    GLP_FAMILY,
    check_families,
    family_clip,
    split_families,
)

LAYOUT_SPLITS = ("train", "holdout")
LAYOUT_HOLDOUT_FRACTION = 0.2
Layer = tuple[int, int]


def layout_file_split(path: Path) -> str:
    """``"train"`` or ``"holdout"`` for a real layout file, stable by file name (20 % hold-out)."""
    digest = hashlib.sha256(path.name.encode()).digest()
    return "holdout" if int.from_bytes(digest[:8], "big") / 2**64 < LAYOUT_HOLDOUT_FRACTION else "train"


@dataclass(frozen=True)
class FamilySet:
    """The families a data set generates, the split they came from, and real tiles per family."""

    families: tuple[str, ...]
    splits: Mapping[str, str]  # every family considered → "train" or "holdout"
    split: str  # the split this set generates
    layers: Mapping[str, Layer | None]  # real-clip layer per generated family (None: procedural only)
    tiles: Mapping[str, tuple[LayoutClip, ...]] = field(default_factory=dict)

    @property
    def excluded(self) -> tuple[str, ...]:
        """Families that must not appear in this set (held out, or not chosen at all)."""
        return tuple(name for name in FAMILIES if name not in self.families)

    def summary(self, counts: Mapping[str, int]) -> dict:
        """The manifest's record of the families: split, layers, real tiles and items per family."""
        return {"family_split": self.split, "families": list(self.families),
                "family_splits": dict(self.splits),
                "held_out_families": [name for name, split in self.splits.items() if split == "holdout"],
                "family_layers": {name: None if layer is None else format_layer(layer)
                                  for name, layer in self.layers.items()},
                "family_real_tiles": {name: len(self.tiles.get(name, ())) for name in self.families},
                "family_counts": {name: int(counts.get(name, 0)) for name in self.families}}


def family_set(families: Sequence[str] | None = None, hold_out: Sequence[str] = (), split: str = "train",
               layers: Mapping[str, Layer | None] | None = None) -> FamilySet:
    """Choose the families of a set: ``families`` (default all) minus ``hold_out``, or only those.

    ``layers`` overrides the real-clip layer of some families (``FAMILIES[...].real_layer``).
    """
    chosen, splits = split_families(families, hold_out, split)
    overrides = dict(layers or {})
    check_families(overrides)  # a layer for an unknown family name fails here
    return FamilySet(tuple(chosen), splits, split,
                     {name: overrides.get(name, FAMILIES[name].real_layer) for name in chosen})


def _layout_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise LayoutFileError(f"no such layout file or directory: {root}")
    return sorted(f for f in root.rglob("*") if f.is_file() and f.suffix.lower() in LAYOUT_SUFFIXES)


def load_family_tiles(
    layouts: str | Path, chosen: FamilySet, *, size: int, nm_per_px: float, cell: str | None = None,
    split: str | None = None, max_tiles_per_file: int | None = 64,
) -> FamilySet:
    """``chosen`` with real tiles per family from the family's layer (GLP files: cell metal only).

    A family without a layer, or whose layer no file holds (e.g. Via1 where only Metal1 and
    Contact were drawn), gets no tiles and is drawn procedurally.
    """
    root = Path(layouts)
    files = _layout_files(root)
    tiles: dict[str, tuple[LayoutClip, ...]] = {}
    for name in chosen.families:
        layer = chosen.layers.get(name)
        keep = [f for f in files if (split is None or layout_file_split(f) == split)
                and (name == GLP_FAMILY or f.suffix.lower() != ".glp")]
        if layer is None or not keep:
            tiles[name] = ()
            continue
        wanted = set(keep)
        try:
            loaded = load_layout_tiles(root, nm_per_px, size, layer=layer, cell=cell,
                                       select=lambda f, wanted=wanted: f in wanted,
                                       max_tiles_per_file=max_tiles_per_file)
        except (EmptyWindowError, LayerNotFoundError, CellNotFoundError):
            loaded = []  # no file holds this family's layer
        tiles[name] = tuple(replace(t, source={**t.source, "family": name}) for t in loaded)
    return replace(chosen, tiles=tiles)


def random_dihedral(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One of the 8 flips/transposes of ``mask``, drawn from ``rng``."""
    # Real clips are reused many times; flips give variety without leaving Manhattan geometry.
    if rng.random() < 0.5:
        mask = mask[:, ::-1]
    if rng.random() < 0.5:
        mask = mask[::-1, :]
    if rng.random() < 0.5:
        mask = mask.T
    return np.ascontiguousarray(mask)


def family_layout(rng: np.random.Generator, chosen: FamilySet, *, size: int, nm_per_px: float,
                  real_fraction: float) -> tuple[LayoutClip, np.ndarray]:
    """(clip, layout mask) of one item: a family drawn from ``chosen``, then a real tile or a procedural clip."""
    name = chosen.families[int(rng.integers(len(chosen.families)))]
    real = chosen.tiles.get(name, ())
    if real and rng.random() < real_fraction:
        clip = real[int(rng.integers(len(real)))]
        return clip, random_dihedral(clip.mask, rng)
    clip = family_clip(name, size, nm_per_px, int(rng.integers(2**31)), exclude=chosen.excluded)
    return clip, clip.mask


def family_summary(chosen: FamilySet | None, counts: Mapping[str, int]) -> dict:
    """Manifest fields on families: the chosen set's summary, or (legacy mix) the families seen."""
    if chosen is not None:
        return chosen.summary(counts)
    seen = [name for name in (*FAMILIES, *sorted(counts)) if counts.get(name)]
    return {"family_split": None, "families": list(dict.fromkeys(seen)), "family_splits": None,
            "held_out_families": [], "family_layers": None, "family_real_tiles": None,
            "family_counts": {name: int(counts[name]) for name in dict.fromkeys(seen)}}
