"""Paired synthetic data: layout clip → printed contour → SEM image, written as a folder.

The folder format is what `semgan.data` reads and what the app imports:
``DIR/sem/NAME.png`` (uint8 grey), ``DIR/layout/NAME.png`` (0/255 design layout),
``DIR/printed/NAME.png`` (0/255 printed contour) and ``DIR/manifest.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semgan import DEFAULT_NM_PER_PX
from semgan.errors import SemganError
from semgan.imageio import save_png
from semgan.layouts import LayoutClip, load_layout_tiles, random_clip
from semgan.semsim import PROFILES, TRAINING_PROFILES, ToolProfile, get_profile, simulate
from semgan.semsim.randomize import RandomizedTool, randomized_sample, resolve_randomized

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


LAYOUT_SPLITS = ("train", "holdout")
LAYOUT_HOLDOUT_FRACTION = 0.2


def layout_file_split(path: Path) -> str:
    """``"train"`` or ``"holdout"`` for a real layout file, stable by file name (20 % hold-out)."""
    digest = hashlib.sha256(path.name.encode()).digest()
    return "holdout" if int.from_bytes(digest[:8], "big") / 2**64 < LAYOUT_HOLDOUT_FRACTION else "train"


def load_real_tiles(
    layouts: str | Path, *, size: int, nm_per_px: float, layer: tuple[int, int] = (34, 0),
    cell: str | None = None, split: str | None = None, max_tiles_per_file: int | None = 64,
) -> list[LayoutClip]:
    """Tiles of real layouts, optionally only from the files of one split."""
    if split is not None and split not in LAYOUT_SPLITS:
        raise SynthError(f"layout split must be one of {LAYOUT_SPLITS}, got {split!r}")
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
) -> SynthPair:
    """Generate example ``index`` deterministically from ``seed``."""
    rng = _item_rng(seed, index)
    profile = profiles[index % len(profiles)]
    if real_tiles and rng.random() < real_fraction:
        clip = real_tiles[int(rng.integers(len(real_tiles)))]
        layout_mask = _random_dihedral(clip.mask, rng)
    else:
        clip = random_clip(size, nm_per_px, seed=int(rng.integers(2**31)))
        layout_mask = clip.mask
    if isinstance(profile, RandomizedTool):  # a fresh tool per image, drawn from the family
        sample = randomized_sample(layout_mask, nm_per_px, profile, rng)
    else:
        sample = simulate(layout_mask, nm_per_px, profile, rng)
    source = dict(clip.source)
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


def _random_dihedral(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # Real clips are reused many times; flips give variety without leaving Manhattan geometry.
    if rng.random() < 0.5:
        mask = mask[:, ::-1]
    if rng.random() < 0.5:
        mask = mask[::-1, :]
    if rng.random() < 0.5:
        mask = mask.T
    return np.ascontiguousarray(mask)


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
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Write ``count`` SEM/layout/printed triples and a manifest to ``out_dir``; return the manifest path."""
    if count < 1:
        raise SynthError(f"--count must be at least 1, got {count}")
    if size < 32:
        raise SynthError(f"--size must be at least 32 px, got {size}")
    if not nm_per_px > 0:
        raise SynthError(f"--nm-per-px must be positive, got {nm_per_px}")
    profiles = list(profiles or [PROFILES["clean"]])
    real_tiles: list[LayoutClip] = []
    if layouts is not None:
        real_tiles = load_real_tiles(layouts, size=size, nm_per_px=nm_per_px, layer=layer, cell=cell,
                                     split=layout_split, max_tiles_per_file=max_tiles_per_file)
    else:
        real_fraction = 0.0

    out = Path(out_dir)
    for sub in ("sem", "layout", "printed"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    items = []
    for index in range(count):
        pair = make_pair(
            index,
            size=size,
            nm_per_px=nm_per_px,
            profiles=profiles,
            seed=seed,
            real_tiles=real_tiles,
            real_fraction=real_fraction,
        )
        save_png(out / "sem" / f"{pair.name}.png", pair.sem_image)
        save_png(out / "layout" / f"{pair.name}.png", pair.layout_mask)
        save_png(out / "printed" / f"{pair.name}.png", pair.printed_mask)
        items.append(
            {
                "name": pair.name,
                "sem": f"sem/{pair.name}.png",
                "layout": f"layout/{pair.name}.png",
                "printed": f"printed/{pair.name}.png",
                "profile": pair.profile,
                "source": pair.source,
                "tool_params": pair.tool_params,
            }
        )
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
