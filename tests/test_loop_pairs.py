"""Corrected pairs in and out: import checks, export resampling and tiling."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from loop.pair_folders import PairImportError, export_split, import_pairs
from semgan.imageio import load_image, save_png
from store import Store, split_for


def pair_folders(root: Path, sizes: dict[str, tuple[int, int]]) -> tuple[Path, Path]:
    """sem/NAME.png and layout/NAME.png for each name, layout at the given (H, W)."""
    sem_dir, layout_dir = root / "sem", root / "layout"
    sem_dir.mkdir(parents=True)
    layout_dir.mkdir(parents=True)
    for index, (name, layout_shape) in enumerate(sizes.items()):
        rng = np.random.default_rng(index)
        save_png(sem_dir / f"{name}.png", rng.integers(0, 256, (32, 32), dtype=np.uint8))
        save_png(layout_dir / f"{name}.png", rng.random(layout_shape) > 0.5)
    return sem_dir, layout_dir


def test_import_stores_good_pairs_and_reports_a_mismatched_one(store: Store,
                                                              tmp_path: Path) -> None:
    sem_dir, layout_dir = pair_folders(tmp_path, {"a": (32, 32), "b": (32, 32), "c": (30, 32)})
    report = import_pairs(store, sem_dir, layout_dir, 4.0, tool="cdsem-1")
    assert [p.name for p in report.imported] == ["a", "b"]
    assert [name for name, _ in report.skipped] == ["c.png"]
    assert report.skipped[0][1].startswith("size mismatch")
    assert store.counts().corrected_samples == 2
    assert store.get_sample(report.imported[0].sample_id).tool == "cdsem-1"


def test_import_reports_a_missing_partner(store: Store, tmp_path: Path) -> None:
    sem_dir, layout_dir = pair_folders(tmp_path, {"a": (32, 32)})
    (layout_dir / "a.png").rename(layout_dir / "z.png")
    report = import_pairs(store, sem_dir, layout_dir, 4.0)
    assert report.imported == ()
    assert sorted(name for name, _ in report.skipped) == ["a.png", "z.png"]


def test_import_rejects_a_grey_layout(store: Store, tmp_path: Path) -> None:
    sem_dir, layout_dir = pair_folders(tmp_path, {"a": (32, 32)})
    save_png(layout_dir / "a.png", np.full((32, 32), 128, np.uint8))
    report = import_pairs(store, sem_dir, layout_dir, 4.0)
    assert "binary" in report.skipped[0][1]


def test_reimport_is_skipped(store: Store, tmp_path: Path) -> None:
    sem_dir, layout_dir = pair_folders(tmp_path, {"a": (32, 32)})
    import_pairs(store, sem_dir, layout_dir, 4.0)
    report = import_pairs(store, sem_dir, layout_dir, 4.0)
    assert report.skipped[0][1].startswith("already imported")
    assert store.counts().pair_versions == 1


def test_import_uses_the_store_split_rule(store: Store, tmp_path: Path) -> None:
    sem_dir, layout_dir = pair_folders(tmp_path, {f"p{i}": (32, 32) for i in range(6)})
    report = import_pairs(store, sem_dir, layout_dir, 4.0)
    assert [p.split for p in report.imported] == [
        split_for(store.get_sample(p.sample_id).content_sha) for p in report.imported]
    assert {store.get_pair(p.pair_id).kind for p in report.imported} == {"imported"}


def test_missing_folder_raises(store: Store, tmp_path: Path) -> None:
    with pytest.raises(PairImportError):
        import_pairs(store, tmp_path / "nope", tmp_path, 4.0)


def test_bad_pixel_size_raises(store: Store, tmp_path: Path) -> None:
    sem_dir, layout_dir = pair_folders(tmp_path, {"a": (32, 32)})
    with pytest.raises(PairImportError):
        import_pairs(store, sem_dir, layout_dir, 0.0)


def test_export_resamples_to_the_model_pixel_size(store: Store, tmp_path: Path) -> None:
    mask = np.zeros((128, 128), bool)
    mask[:, 40:80] = True  # a 40 px = 80 nm line at 2 nm/px
    sample = store.add_sample(np.where(mask, 200, 50).astype(np.uint8), 2.0, "upload")
    pair = store.save_correction(sample.id, mask, "tester")
    exported = export_split(store, tmp_path / "out", pair.split, nm_per_px=4.0, tile_size=64)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert (exported.tiles, manifest["nm_per_px"], manifest["size"]) == (1, 4.0, 64)
    layout = load_image(tmp_path / "out" / manifest["items"][0]["layout"]).pixels > 0.5
    assert layout[0].sum() == 20  # still 80 nm wide at 4 nm/px


def test_export_tiles_a_large_pair(store: Store, tmp_path: Path) -> None:
    image = np.random.default_rng(0).integers(0, 256, (96, 160), dtype=np.uint8)
    sample = store.add_sample(image, 4.0, "upload")
    pair = store.save_correction(sample.id, image > 127, "tester")
    exported = export_split(store, tmp_path / "out", pair.split, nm_per_px=4.0, tile_size=64)
    assert exported.tiles == 2 * 3


def test_export_of_an_empty_split_writes_nothing(store: Store, tmp_path: Path) -> None:
    exported = export_split(store, tmp_path / "out", "train", nm_per_px=4.0, tile_size=64)
    assert (exported.path, exported.tiles) == (None, 0)
