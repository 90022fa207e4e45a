"""One pair-folder format: what the workspace export writes, train, evaluate and import-pairs read."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from annotate.export_tab import export_png_zip
from loop.__main__ import main as loop_main
from semgan.__main__ import main as semgan_main
from semgan.config import DataConfig
from semgan.data import DatasetError, PairedDataset, read_manifest
from semgan.evaluate import evaluate_folder
from semgan.imageio import load_image, to_uint8
from semgan.pairfolder import PAIRS_FORMAT, read_pair_folder
from semgan.semsim import PROFILES
from semgan.synth import make_pair
from store import Store
from store.cli import main as store_main

torch.set_num_threads(1)
NM = 4.0


def _workspace(path: Path, sizes: tuple[int, ...] = (64, 64, 80), nm: tuple[float, ...] = ()) \
        -> list[np.ndarray]:
    """Samples with corrected layouts (tool t1); returns the masks in sample order."""
    masks = []
    with Store.open(path) as store:
        for index, size in enumerate(sizes):
            pair = make_pair(index, size=size, nm_per_px=NM, profiles=[PROFILES["clean"]], seed=5)
            sample = store.add_sample(pair.sem_image, nm[index] if nm else NM, "upload",
                                      tool="t1", name=f"site{index}.tif")
            store.save_correction(sample.id, pair.layout_mask, "ann")
            masks.append(pair.layout_mask)
    return masks


@pytest.fixture
def exported(tmp_path: Path) -> tuple[Path, list[np.ndarray]]:
    """A workspace's corrected pairs exported with ``python -m store --workspace W export OUT``."""
    masks = _workspace(tmp_path / "a")
    assert store_main(["--workspace", str(tmp_path / "a"), "export", str(tmp_path / "out")]) == 0
    return tmp_path / "out", masks


def test_the_export_reads_as_a_pair_folder(exported) -> None:
    folder = read_pair_folder(exported[0])
    assert (folder.format, len(folder.items), folder.nm_per_px, folder.size) == \
        (PAIRS_FORMAT, 3, NM, None)  # 64 and 80 px images: no common size
    assert [(i.name, i.tool, i.kind, i.height) for i in folder.items] == \
        [("site0.tif", "t1", "corrected", 64), ("site1.tif", "t1", "corrected", 64),
         ("site2.tif", "t1", "corrected", 80)]


def test_the_export_tab_writes_the_same_format(tmp_path: Path) -> None:
    _workspace(tmp_path / "a")
    with Store.open(tmp_path / "a") as store:
        folder, _, count = export_png_zip(store, tmp_path / "exports", None)
    assert (read_pair_folder(folder).format, count) == (PAIRS_FORMAT, 3)


def test_a_dataset_of_the_export_yields_crops_of_every_pair(exported) -> None:
    dataset = PairedDataset(exported[0], DataConfig(nm_per_px=NM, crop_size=32), augment=True)
    shapes = [tuple(dataset[i]["sem_image"].shape) for i in range(len(dataset))]
    assert shapes == [(1, 32, 32)] * 3


def test_images_of_several_sizes_need_a_crop(exported) -> None:
    with pytest.raises(DatasetError, match="need a crop size"):
        PairedDataset(exported[0])


def test_evaluation_reads_the_export(exported) -> None:
    folder = read_pair_folder(exported[0])
    truth = {to_uint8(load_image(folder.path / item.sem).pixels).tobytes(): mask
             for item, mask in zip(folder.items, exported[1], strict=True)}

    def oracle(sem_image, nm_per_px):  # a perfect method: the metrics must say so
        mask = truth[sem_image.tobytes()]
        return mask.astype(np.float32), mask

    result = evaluate_folder(exported[0], {"oracle": oracle})
    scores = result["methods"]["oracle"]
    assert (result["items"], result["nm_per_px"], scores["overall"]["iou"]) == (3, NM, 1.0)
    assert list(scores["groups"]) == ["profile:tool:t1", "source:corrected"]


def test_train_reads_the_export(exported, tmp_path: Path, capsys) -> None:
    code = semgan_main(["train", "--data", str(exported[0]), "--out", str(tmp_path / "m"),
                        "--preset", "tiny", "--steps", "2", "--crop", "32", "--batch", "2",
                        "--device", "cpu", "--sample-every", "100", "--checkpoint-every", "100"])
    assert code == 0
    assert json.loads((tmp_path / "m" / "card.json").read_text())["data_recipe"]["items"] == 3


def test_import_pairs_round_trips_the_export(exported, tmp_path: Path, capsys) -> None:
    assert loop_main(["import-pairs", "--workspace", str(tmp_path / "b"), "--pairs",
                      str(exported[0]), "--no-trigger"]) == 0
    with Store.open(tmp_path / "b") as store:
        pairs = store.list_pairs()
        samples = [store.get_sample(p.sample_id) for p in pairs]
        assert [(s.name, s.tool, s.nm_per_px) for s in samples] == \
            [(f"site{i}.tif", "t1", NM) for i in range(3)]
        assert all(np.array_equal(store.pair_mask(p), m) for p, m in zip(pairs, exported[1],
                                                                        strict=True))
    assert loop_main(["import-pairs", "--workspace", str(tmp_path / "b"), "--pairs",
                      str(exported[0]), "--no-trigger"]) == 0
    assert "0 imported, 3 skipped" in capsys.readouterr().out  # already imported


def test_import_pairs_reads_a_synth_folder_with_its_profiles_as_tools(tmp_path: Path,
                                                                      capsys) -> None:
    assert semgan_main(["synth", "--out", str(tmp_path / "syn"), "--count", "2", "--size", "64",
                        "--profile", "noisy"]) == 0
    assert loop_main(["import-pairs", "--workspace", str(tmp_path / "b"), "--pairs",
                      str(tmp_path / "syn"), "--no-trigger"]) == 0
    with Store.open(tmp_path / "b") as store:
        assert {s.tool for s in store.list_samples()} == {"sim:noisy"}


def test_an_export_of_two_pixel_sizes_is_refused_for_training(tmp_path: Path) -> None:
    _workspace(tmp_path / "a", sizes=(64, 64), nm=(4.0, 2.5))
    with Store.open(tmp_path / "a") as store:
        out = store.export_pairs(tmp_path / "out")
    with pytest.raises(DatasetError, match=r"2.5, 4 nm/px"):
        read_manifest(out)


def test_import_pairs_without_a_source_is_a_usage_error(tmp_path: Path, capsys) -> None:
    assert loop_main(["import-pairs", "--workspace", str(tmp_path / "b")]) == 2
    assert "--pairs DIR" in capsys.readouterr().err
