"""Paired synthetic data: layout clip → printed contour → SEM image, written as a folder.

The folder format is what `semgan.data` reads and what the app imports:
``DIR/sem/NAME.png`` (uint8 grey), ``DIR/layout/NAME.png`` (0/255 design layout),
``DIR/printed/NAME.png`` (0/255 printed contour) and ``DIR/manifest.json``. Every item's
source names its layout family; with families chosen (``semgan.synth_layouts.FamilySet``) the
manifest also records which families were generated and which were held out.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semgan import DEFAULT_NM_PER_PX
from semgan.errors import SemganError
from semgan.imageio import save_png
from semgan.layouts import LayoutClip, load_layout_tiles, random_clip
from semgan.layouts.families import family_of
from semgan.semsim import PROFILES, TRAINING_PROFILES, ToolProfile, get_profile, simulate
from semgan.semsim.randomize import RandomizedTool, randomized_sample, resolve_randomized
from semgan.synth_layouts import (
    LAYOUT_HOLDOUT_FRACTION,
    LAYOUT_SPLITS,
    FamilySet,
    family_layout,
    family_set,
    family_summary,
    layout_file_split,
    load_family_tiles,
    random_dihedral,
)

__all__ = ["LAYOUT_HOLDOUT_FRACTION", "LAYOUT_SPLITS", "FamilySet", "SynthError", "SynthPair",
           "contact_sheet", "layout_file_split", "load_real_tiles", "make_pair", "resolve_profiles",
           "write_dataset"]

MANIFEST_VERSION = 1


class SynthError(SemganError):
    """Bad arguments for synthetic data generation."""


@dataclass(frozen=True)
class SynthPair:
    """One generated example: the design layout, what printed, and the SEM image."""

    name: str
    sem_image: np.ndarray  # (H, W) uint8
    layout_mask: np.ndarray  # (H, W) bool — the design (the model's target)
    printed_mask: np.ndarray  # (H, W) bool — the printed contour
    profile: str
    source: dict
    tool_params: dict


def resolve_profiles(spec: str) -> list[ToolProfile | RandomizedTool]:
    """Turn a name, a comma list, ``"all"``, ``"random[:split]"`` or a JSON path into tools."""
    if spec in ("all", "training"):
        return [PROFILES[name] for name in TRAINING_PROFILES]
    parts = [part.strip() for part in spec.split(",") if part.strip()]
    return [resolve_randomized(part) or get_profile(part) for part in parts]


def _check_layout_split(split: str | None) -> None:
    if split is not None and split not in LAYOUT_SPLITS:
        raise SynthError(f"layout split must be one of {LAYOUT_SPLITS}, got {split!r}")


def load_real_tiles(
    layouts: str | Path, *, size: int, nm_per_px: float, layer: tuple[int, int] = (34, 0),
    cell: str | None = None, split: str | None = None, max_tiles_per_file: int | None = 64,
) -> list[LayoutClip]:
    """Tiles of real layouts, optionally only from the files of one split."""
    _check_layout_split(split)
    select = None if split is None else (lambda path: layout_file_split(path) == split)
    return load_layout_tiles(layouts, nm_per_px, size, layer=layer, cell=cell, select=select,
                             max_tiles_per_file=max_tiles_per_file)


def _item_rng(seed: int, index: int) -> np.random.Generator:
    # Per-item streams keyed by (seed, index): item i is the same whatever --count is.
    return np.random.default_rng([seed, index])


def make_pair(
    index: int,
    *,
    size: int,
    nm_per_px: float,
    profiles: Sequence[ToolProfile | RandomizedTool],
    seed: int,
    real_tiles: Sequence[LayoutClip] = (),
    real_fraction: float = 0.0,
    families: FamilySet | None = None,
) -> SynthPair:
    """Generate example ``index`` deterministically from ``seed``.

    Without ``families`` the layout is a ``real_tiles`` tile or a ``random_clip``; with them,
    a family is drawn from ``families`` and its real tiles (``families.tiles``) or procedural
    clips are used instead (``real_tiles`` is then ignored).
    """
    rng = _item_rng(seed, index)
    profile = profiles[index % len(profiles)]
    if families is not None:
        clip, layout_mask = family_layout(rng, families, size=size, nm_per_px=nm_per_px,
                                          real_fraction=real_fraction)
    elif real_tiles and rng.random() < real_fraction:
        clip = real_tiles[int(rng.integers(len(real_tiles)))]
        layout_mask = random_dihedral(clip.mask, rng)
    else:
        clip = random_clip(size, nm_per_px, seed=int(rng.integers(2**31)))
        layout_mask = clip.mask
    if isinstance(profile, RandomizedTool):  # a fresh tool per image, drawn from the family
        sample = randomized_sample(layout_mask, nm_per_px, profile, rng)
    else:
        sample = simulate(layout_mask, nm_per_px, profile, rng)
    source = {**clip.source, "family": family_of(clip.source)}
    if clip.rules is not None:
        source["rules"] = clip.rules.to_dict()
    return SynthPair(
        name=f"{index:06d}",
        sem_image=sample.sem_image,
        layout_mask=layout_mask,
        printed_mask=sample.printed_mask,
        profile=profile.name,
        source=source,
        tool_params={k: float(v) for k, v in sample.params.items()},
    )


def _choose_families(
    families: Sequence[str] | None, hold_out_families: Sequence[str], family_split: str | None,
    family_layers: Mapping[str, tuple[int, int] | None] | None,
) -> FamilySet | None:
    """The family set of a data set, or None when no family option is given (the legacy mix)."""
    if families is None and not hold_out_families and family_split is None and family_layers is None:
        return None
    return family_set(families, hold_out_families, family_split or "train", family_layers)


def _real_layouts(
    layouts: str | Path | None, chosen: FamilySet | None, *, size: int, nm_per_px: float,
    layer: tuple[int, int], cell: str | None, split: str | None, max_tiles_per_file: int | None,
) -> tuple[list[LayoutClip], FamilySet | None]:
    """Real tiles: one list on ``layer`` (legacy), or per family on each family's layer."""
    _check_layout_split(split)
    if layouts is None:
        return [], chosen
    if chosen is None:
        return load_real_tiles(layouts, size=size, nm_per_px=nm_per_px, layer=layer, cell=cell, split=split,
                               max_tiles_per_file=max_tiles_per_file), None
    chosen = load_family_tiles(layouts, chosen, size=size, nm_per_px=nm_per_px, cell=cell, split=split,
                               max_tiles_per_file=max_tiles_per_file)
    if not any(chosen.tiles.values()):
        layers = {name: layer_ for name, layer_ in chosen.layers.items() if layer_ is not None}
        raise SynthError(f"{layouts}: no real tiles for any of the families {list(chosen.families)} "
                         f"(layers {layers}); check --family-layer, --cell and --layout-split")
    return [], chosen


def write_dataset(
    out_dir: str | Path,
    count: int,
    *,
    size: int = 256,
    nm_per_px: float = DEFAULT_NM_PER_PX,
    profiles: Sequence[ToolProfile | RandomizedTool] | None = None,
    seed: int = 0,
    layouts: str | Path | None = None,
    layer: tuple[int, int] = (34, 0),
    cell: str | None = None,
    real_fraction: float = 1.0,
    layout_split: str | None = None,
    max_tiles_per_file: int | None = 64,
    families: Sequence[str] | None = None,
    hold_out_families: Sequence[str] = (),
    family_split: str | None = None,
    family_layers: Mapping[str, tuple[int, int] | None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Write ``count`` SEM/layout/printed triples and a manifest to ``out_dir``; return the manifest path.

    Any family option (``families``, ``hold_out_families``, ``family_split``, ``family_layers``)
    draws every item from a named layout family, real tiles read per family from its layer
    (``layer`` is then unused); without them the legacy mix of ``random_clip`` and ``layer`` tiles.
    """
    if count < 1:
        raise SynthError(f"--count must be at least 1, got {count}")
    if size < 32:
        raise SynthError(f"--size must be at least 32 px, got {size}")
    if not nm_per_px > 0:
        raise SynthError(f"--nm-per-px must be positive, got {nm_per_px}")
    profiles = list(profiles or [PROFILES["clean"]])
    chosen = _choose_families(families, hold_out_families, family_split, family_layers)
    real_tiles, chosen = _real_layouts(layouts, chosen, size=size, nm_per_px=nm_per_px, layer=layer, cell=cell,
                                       split=layout_split, max_tiles_per_file=max_tiles_per_file)
    if layouts is None:
        real_fraction = 0.0

    out = Path(out_dir)
    for sub in ("sem", "layout", "printed"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    items = []
    for index in range(count):
        pair = make_pair(index, size=size, nm_per_px=nm_per_px, profiles=profiles, seed=seed,
                         real_tiles=real_tiles, real_fraction=real_fraction, families=chosen)
        save_png(out / "sem" / f"{pair.name}.png", pair.sem_image)
        save_png(out / "layout" / f"{pair.name}.png", pair.layout_mask)
        save_png(out / "printed" / f"{pair.name}.png", pair.printed_mask)
        items.append({"name": pair.name, "sem": f"sem/{pair.name}.png", "layout": f"layout/{pair.name}.png",
                      "printed": f"printed/{pair.name}.png", "profile": pair.profile,
                      "source": pair.source, "tool_params": pair.tool_params})
        if progress is not None:
            progress(1)
    manifest = {
        "version": MANIFEST_VERSION,
        "nm_per_px": float(nm_per_px),
        "size": int(size),
        "seed": int(seed),
        "profiles": [p.name for p in profiles],
        "profile_definitions": {p.name: p.to_dict() for p in profiles},
        "layouts": str(layouts) if layouts is not None else None,
        "layout_split": layout_split,
        "real_fraction": real_fraction,
        **family_summary(chosen, Counter(item["source"]["family"] for item in items)),
        "items": items,
    }
    path = out / "manifest.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, path)
    return path


def contact_sheet(
    profiles: Sequence[ToolProfile | RandomizedTool] | None = None,
    *,
    per_profile: int = 3,
    size: int = 256,
    nm_per_px: float = DEFAULT_NM_PER_PX,
    seed: int = 0,
    real_tiles: Sequence[LayoutClip] = (),
) -> np.ndarray:
    """Render one row per profile of (SEM | layout with printed contour) pairs as an RGB image."""
    import cv2  # local: only the preview needs drawing

    profiles = list(profiles or PROFILES.values())
    label_h, gap = 28, 6
    pair_w = 2 * size + gap
    width = per_profile * pair_w + (per_profile - 1) * 3 * gap
    sheet = np.full((len(profiles) * (size + label_h + gap), width, 3), 255, np.uint8)
    for row, profile in enumerate(profiles):
        y0 = row * (size + label_h + gap)
        cv2.putText(sheet, f"{profile.name}: {profile.description}"[:110], (4, y0 + 19),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, (20, 20, 20), 1, cv2.LINE_AA)
        for col in range(per_profile):
            # Same layouts in every row, so rows differ only by the tool.
            pair = make_pair(col, size=size, nm_per_px=nm_per_px, profiles=[profile], seed=seed,
                             real_tiles=real_tiles, real_fraction=0.5 if real_tiles else 0.0)
            x0 = col * (pair_w + 3 * gap)
            top = y0 + label_h
            sheet[top:top + size, x0:x0 + size] = pair.sem_image[..., None]
            layout_rgb = np.where(pair.layout_mask[..., None], 200, 40).astype(np.uint8).repeat(3, 2)
            contour = pair.printed_mask ^ cv2.erode(pair.printed_mask.astype(np.uint8), np.ones((3, 3))).astype(bool)
            layout_rgb[contour] = (230, 40, 40)
            sheet[top:top + size, x0 + size + gap:x0 + pair_w] = layout_rgb
    return sheet
