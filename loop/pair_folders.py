"""Corrected pairs in and out of a workspace: export a split for training/evaluation, import folders.

Export writes the synth folder format (``sem/``, ``layout/``, ``manifest.json``) that
``semgan.data.PairedDataset`` and ``semgan.evaluate`` read: every pair resampled to the model's
pixel size (pairing images at different nm/px is a bug) and cut into square tiles.
Import stores SEM/layout files as corrected pairs through the same store calls and checks as a
correction saved in the UI (same split rule: the store assigns it from the image content).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from loop.predictions import drift_reference, score_drift
from semgan.imageio import IMAGE_SUFFIXES, ImageError, load_image, save_png, to_uint8
from semgan.pairfolder import DatasetError, read_pair_folder
from semgan.resample import resize
from store import CorrectedPair, Store, StoreError

MIN_SIDE_PX = 32  # a pair smaller than this at the model's pixel size is too small to learn from
MAX_TILES_PER_PAIR = 16  # one huge image must not outweigh every other correction
PIXEL_SIZE_RTOL = 0.01


class PairImportError(ValueError):
    """The import cannot start: a folder is missing or the pixel size is not a positive number."""


class PairFolderImportError(PairImportError):
    """A pair folder's manifest is missing or malformed (``semgan.pairfolder``'s message)."""


@dataclass(frozen=True)
class ExportedPairs:
    """What ``export_split`` wrote (``path`` is None when the split had no usable pair)."""

    path: Path | None
    pair_ids: tuple[int, ...]
    tiles: int
    skipped: tuple[str, ...]


def resample_pair(sem_image: np.ndarray, layout_mask: np.ndarray, from_nm_per_px: float,
                  to_nm_per_px: float) -> tuple[np.ndarray, np.ndarray]:
    """An SEM image (uint8) and its layout mask (bool) moved to another pixel size together."""
    scale = from_nm_per_px / to_nm_per_px
    if math.isclose(scale, 1.0, rel_tol=1e-6):
        return sem_image, layout_mask
    height = max(1, round(sem_image.shape[0] * scale))
    width = max(1, round(sem_image.shape[1] * scale))
    sem = np.clip(np.rint(resize(sem_image.astype(np.float32), height, width)), 0, 255)
    # The mask is resampled as a coverage fraction and cut at one half, like a prediction.
    mask = resize(layout_mask.astype(np.float32), height, width) > 0.5
    return sem.astype(np.uint8), mask


def _starts(length: int, tile: int) -> list[int]:
    """Tile origins covering ``length`` without overlap except for the last, flush tile."""
    if length <= tile:
        return [0]
    return [*range(0, length - tile, tile), length - tile]


def tiles_of(sem_image: np.ndarray, layout_mask: np.ndarray,
             tile: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Square ``tile`` crops covering the pair (mirror-padded when a side is shorter)."""
    pad = ((0, max(0, tile - sem_image.shape[0])), (0, max(0, tile - sem_image.shape[1])))
    # A mirrored SEM next to its mirrored layout is still a consistent pair.
    sem_image, layout_mask = np.pad(sem_image, pad, "symmetric"), np.pad(layout_mask, pad,
                                                                          "symmetric")
    corners = [(y, x) for y in _starts(sem_image.shape[0], tile)
               for x in _starts(sem_image.shape[1], tile)]
    if len(corners) > MAX_TILES_PER_PAIR:
        keep = np.linspace(0, len(corners) - 1, MAX_TILES_PER_PAIR).round().astype(int)
        corners = [corners[i] for i in keep]
    return [(sem_image[y:y + tile, x:x + tile], layout_mask[y:y + tile, x:x + tile])
            for y, x in corners]


def export_split(store: Store, out_dir: str | Path, split: str, nm_per_px: float,
                 tile_size: int, max_pair_id: int | None = None) -> ExportedPairs:
    """Write the latest corrected pairs of ``split`` (id ≤ ``max_pair_id``) as a synth folder."""
    out = Path(out_dir)
    pairs = [p for p in store.list_pairs(split=split)
             if max_pair_id is None or p.id <= max_pair_id]
    items, used, skipped = [], [], []
    for pair in pairs:
        sample = store.get_sample(pair.sample_id)
        sem, mask = resample_pair(store.sample_image(sample.id), store.pair_mask(pair),
                                  sample.nm_per_px, nm_per_px)
        if min(sem.shape) < MIN_SIDE_PX:
            skipped.append(f"pair {pair.id} (sample {sample.id}): {sem.shape[1]}×{sem.shape[0]} px "
                           f"at {nm_per_px:g} nm/px is smaller than {MIN_SIDE_PX} px")
            continue
        if not items:
            for sub in ("sem", "layout"):
                (out / sub).mkdir(parents=True, exist_ok=True)
        for index, (sem_tile, mask_tile) in enumerate(tiles_of(sem, mask, tile_size)):
            name = f"pair{pair.id:06d}_{index:02d}"
            save_png(out / "sem" / f"{name}.png", sem_tile)
            save_png(out / "layout" / f"{name}.png", mask_tile)
            items.append({"name": name, "sem": f"sem/{name}.png", "layout": f"layout/{name}.png",
                          "profile": f"tool:{sample.tool or 'unknown'}",
                          "source": {"kind": pair.kind, "pair_id": pair.id,
                                     "sample_id": sample.id, "sample_nm_per_px": sample.nm_per_px}})
        used.append(pair.id)
    if not items:
        return ExportedPairs(None, (), 0, tuple(skipped))
    manifest = {"version": 1, "nm_per_px": float(nm_per_px), "size": int(tile_size),
                "split": split, "max_pair_id": max_pair_id, "layouts": None,
                "profiles": sorted({item["profile"] for item in items}), "items": items}
    tmp = out / f".manifest.json.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, out / "manifest.json")
    return ExportedPairs(out, tuple(used), len(items), tuple(skipped))


# -- import -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportedPair:
    """One stored pair of an import."""

    name: str
    sample_id: int
    pair_id: int
    split: str


@dataclass(frozen=True)
class ImportReport:
    """What an import stored and what it skipped, with the reason for each skipped file."""

    imported: tuple[ImportedPair, ...]
    skipped: tuple[tuple[str, str], ...]  # (file name, reason)


def _images(folder: Path) -> dict[str, Path]:
    """Image files of a folder by stem (first suffix in IMAGE_SUFFIXES order wins)."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir(), key=lambda p: (p.stem, IMAGE_SUFFIXES.index(
            p.suffix.lower()) if p.suffix.lower() in IMAGE_SUFFIXES else 99)):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            found.setdefault(path.stem, path)
    return found


def _layout_mask(path: Path) -> np.ndarray:
    """A binary layout image as a bool mask; grey levels raise ImageError."""
    pixels = load_image(path).pixels
    levels = np.unique(np.round(pixels * 255).astype(np.uint8))
    if not set(levels.tolist()) <= {0, 255}:
        raise ImageError(f"{path.name}: a layout must be binary (0/255), found {len(levels)} "
                         "grey levels")
    return pixels > 0.5


def _import_one(store: Store, name: str, sem_path: Path, layout_path: Path, nm_per_px: float,
                tool: str | None, author: str) -> ImportedPair | str:
    """Store one pair, or return why it was skipped."""
    try:
        loaded = load_image(sem_path)
        mask = _layout_mask(layout_path)
    except ImageError as exc:
        return f"unreadable: {exc}"
    if loaded.pixels.shape != mask.shape:
        return (f"size mismatch: SEM {sem_path.name} is {loaded.pixels.shape[1]}×"
                f"{loaded.pixels.shape[0]} px, layout {layout_path.name} is {mask.shape[1]}×"
                f"{mask.shape[0]} px")
    if loaded.nm_per_px is not None and not math.isclose(loaded.nm_per_px, nm_per_px,
                                                         rel_tol=PIXEL_SIZE_RTOL):
        return (f"pixel size mismatch: {sem_path.name} says {loaded.nm_per_px:g} nm/px, "
                f"--nm-per-px is {nm_per_px:g}")
    try:
        sample = store.add_sample(to_uint8(loaded.pixels), nm_per_px, "import", tool=tool,
                                  name=name)
        latest = store.latest_pair(sample.id)
        if latest is not None and np.array_equal(store.pair_mask(latest), mask):
            return f"already imported (sample {sample.id}, pair {latest.id})"
        reference = drift_reference(store.production_model())
        if reference is not None and sample.drift_scores is None:
            score_drift(store, sample.id, reference)  # the drift monitor sees imports too
        pair: CorrectedPair = store.save_correction(sample.id, mask, author, kind="imported")
    except StoreError as exc:
        return f"rejected by the store: {exc}"
    return ImportedPair(name, sample.id, pair.id, pair.split)


def import_pairs(store: Store, sem_dir: str | Path, layout_dir: str | Path, nm_per_px: float,
                 tool: str | None = None, author: str = "import") -> ImportReport:
    """Store SEM/layout files with the same name stem as corrected pairs; report what was skipped."""
    sem_dir, layout_dir = Path(sem_dir), Path(layout_dir)
    for what, folder in (("SEM", sem_dir), ("layout", layout_dir)):
        if not folder.is_dir():
            raise PairImportError(f"{what} folder {folder} does not exist or is not a folder")
    if isinstance(nm_per_px, bool) or not isinstance(nm_per_px, int | float) \
            or not math.isfinite(nm_per_px) or nm_per_px <= 0:
        raise PairImportError(f"--nm-per-px must be a positive number, got {nm_per_px!r}")
    sems, layouts = _images(sem_dir), _images(layout_dir)
    imported, skipped = [], []
    for name, sem_path in sems.items():
        if name not in layouts:
            skipped.append((sem_path.name, f"no layout named {name}.* in {layout_dir}"))
            continue
        outcome = _import_one(store, name, sem_path, layouts[name], float(nm_per_px), tool,
                              author)
        if isinstance(outcome, str):
            skipped.append((sem_path.name, outcome))
        else:
            imported.append(outcome)
    for name, layout_path in layouts.items():
        if name not in sems:
            skipped.append((layout_path.name, f"no SEM image named {name}.* in {sem_dir}"))
    if imported:
        store.log_event("pairs_imported", f"imported {len(imported)} corrected pairs from "
                        f"{sem_dir} ({len(skipped)} skipped)",
                        {"imported": len(imported), "skipped": len(skipped)})
    return ImportReport(tuple(imported), tuple(skipped))


def import_pair_folder(store: Store, data_dir: str | Path, tool: str | None = None,
                       author: str = "import") -> ImportReport:
    """Store every pair of a pair folder (an export or a synth folder) as a corrected pair.

    Each pair keeps its own pixel size and tool from the manifest (``tool`` overrides it);
    synthetic pairs get the tool ``sim:PROFILE``, as the demo images do.
    """
    try:
        folder = read_pair_folder(data_dir)
    except DatasetError as exc:
        raise PairFolderImportError(str(exc)) from exc
    imported, skipped = [], []
    for item in folder.items:
        item_tool = tool or item.tool or (f"sim:{item.profile}" if item.profile else None)
        outcome = _import_one(store, item.name, folder.path / item.sem,
                              folder.path / item.layout, item.nm_per_px, item_tool, author)
        if isinstance(outcome, str):
            skipped.append((item.sem, outcome))
        else:
            imported.append(outcome)
    if imported:
        store.log_event("pairs_imported", f"imported {len(imported)} corrected pairs from "
                        f"{folder.path} ({len(skipped)} skipped)",
                        {"imported": len(imported), "skipped": len(skipped)})
    return ImportReport(tuple(imported), tuple(skipped))
