"""Corrected pairs: holdout split stability, crash atomicity of save_correction, export."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import store.pairs as store_pairs
from store import Store, blobs, split_for

REPO = Path(__file__).resolve().parents[1]


def sem(seed: int, size: int = 16) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size), dtype=np.uint8)


def test_split_of_known_hashes_is_pinned() -> None:
    assert [split_for(f"{i:064x}") for i in range(10)] == ["train"] * 8 + ["holdout", "train"]


def test_holdout_fraction_is_about_20_percent_over_500_images() -> None:
    splits = [split_for(blobs.content_sha(sem(seed))) for seed in range(500)]
    # binomial(500, 0.2): mean 100, sd 8.9; 4 sd either side
    assert 64 <= splits.count("holdout") <= 136


def test_same_image_gets_same_split_in_two_workspaces(tmp_path: Path) -> None:
    splits = []
    for name, others in (("a", 3), ("b", 0)):
        with Store.open(tmp_path / name) as ws:
            for seed in range(100, 100 + others):  # different ids in the two workspaces
                ws.add_sample(sem(seed), 4.0, "upload")
            sample = ws.add_sample(sem(9), 4.0, "upload")
            splits.append((sample.id, ws.save_correction(sample.id, sem(1) > 9, "ann").split))
    assert splits == [(4, "holdout"), (1, "holdout")]


def test_split_is_kept_on_recorrection_even_if_the_rule_changes(store: Store,
                                                                monkeypatch) -> None:
    sample = store.add_sample(sem(3), 4.0, "upload")
    first = store.save_correction(sample.id, sem(4) > 100, "ann")
    other = "train" if first.split == "holdout" else "holdout"
    monkeypatch.setattr(store_pairs, "split_for", lambda content_sha: other)
    assert store.save_correction(sample.id, sem(5) > 100, "ann").split == first.split


def test_list_pairs_by_split(store: Store) -> None:
    saved = [store.save_correction(store.add_sample(sem(s), 4.0, "upload").id,
                                   np.zeros((16, 16), bool), "ann") for s in range(20)]
    holdout = [p.id for p in saved if p.split == "holdout"]
    assert [p.id for p in store.list_pairs(split="holdout")] == holdout
    counts = store.counts()
    assert (counts.train_pairs, counts.holdout_pairs) == (20 - len(holdout), len(holdout))


def test_crash_between_blob_and_row_leaves_only_a_dangling_blob(store: Store,
                                                                monkeypatch) -> None:
    sample = store.add_sample(sem(10), 4.0, "upload")
    mask = sem(11) > 128

    def crash():
        raise RuntimeError("simulated crash after the blob, before the row")

    monkeypatch.setattr(store, "_write", crash)
    with pytest.raises(RuntimeError):
        store.save_correction(sample.id, mask, "ann")
    monkeypatch.undo()
    mask_sha = blobs.sha256_hex(blobs.encode_png(mask))
    assert store.blob_path(mask_sha).exists()
    assert store.counts().pair_versions == 0
    assert store.gc_blobs(grace_s=0).removed == 1
    assert not store.blob_path(mask_sha).exists()
    assert store.blob_path(sample.image_sha).exists()


def test_crash_after_row_insert_before_commit_leaves_no_row(store: Store, monkeypatch) -> None:
    sample = store.add_sample(sem(12), 4.0, "upload")
    inserted = []

    def insert_then_crash(db, row):
        inserted.append(db["pairs"].insert(row).last_pk)
        raise RuntimeError("simulated crash before COMMIT")

    monkeypatch.setattr(store_pairs, "insert_pair_row", insert_then_crash)
    with pytest.raises(RuntimeError):
        store.save_correction(sample.id, sem(13) > 128, "ann")
    assert (inserted, store.counts().pair_versions) == ([1], 0)


KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    import store.pairs as pairs
    from store import Store
    from store.core import Store as StoreClass

    store = Store.open(sys.argv[1])
    where = sys.argv[2]
    if where == "before_row":
        StoreClass._write = lambda self: os.kill(os.getpid(), signal.SIGKILL)
    else:
        original = pairs.insert_pair_row
        def insert_then_die(db, row):
            original(db, row)
            os.kill(os.getpid(), signal.SIGKILL)
        pairs.insert_pair_row = insert_then_die
    mask = np.random.default_rng(21).integers(0, 256, (16, 16)) > 128
    store.save_correction(1, mask, "ann")
""")


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL is POSIX")
@pytest.mark.parametrize("where", ["before_row", "before_commit"])
def test_sigkill_during_save_correction_leaves_no_row_without_blob(tmp_path: Path,
                                                                   where: str) -> None:
    with Store.open(tmp_path / "ws") as ws:
        ws.add_sample(sem(20), 4.0, "upload")
    killed = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(tmp_path / "ws"), where],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert killed.returncode == -9, killed.stderr
    mask_sha = blobs.sha256_hex(blobs.encode_png(
        np.random.default_rng(21).integers(0, 256, (16, 16)) > 128))
    with Store.open(tmp_path / "ws") as ws:
        assert ws.counts().pair_versions == 0
        assert ws.blob_path(mask_sha).exists()  # fsync'ed blob, no row: garbage
        assert ws.gc_blobs(grace_s=0).removed == 1
        assert ws.save_correction(1, np.zeros((16, 16), bool), "ann").version == 1


def test_export_writes_pngs_and_manifests(store: Store, tmp_path: Path) -> None:
    store.register_model("m.safetensors", "a" * 64, {}, {}, None, {}, {}, status="production")
    images = [sem(30 + i) for i in range(3)]
    samples = [store.add_sample(image, 2.0, "upload", tool="t1", name=f"s{i}.png")
               for i, image in enumerate(images)]
    prediction = store.add_prediction(samples[0].id, 1, np.zeros((16, 16), bool), {}, 0.1)
    mask = sem(40) > 128
    pair = store.save_correction(samples[0].id, mask, "ann", prediction.id)
    store.save_correction(samples[2].id, np.ones((16, 16), bool), "bob", kind="accepted")
    out = store.export_pairs(tmp_path / "export")
    assert sorted(p.name for p in (out / "sem").iterdir()) == ["000001.png", "000003.png"]
    assert np.array_equal(np.array(Image.open(out / "sem" / "000001.png")), images[0])
    layout = np.array(Image.open(out / "layout" / "000001.png"))
    assert (sorted(np.unique(layout).tolist()), np.array_equal(layout == 255, mask)) == \
        ([0, 255], True)
    manifest = json.loads((out / "manifest.json").read_text())
    first = manifest["pairs"][0]
    assert (manifest["count"], first["sample_id"], first["name"], first["nm_per_px"],
            first["tool"], first["split"], first["author"], first["pixels_added"],
            first["pixels_removed"], first["iou_vs_prediction"]) == \
        (2, 1, "s0.png", 2.0, "t1", pair.split, "ann", int(mask.sum()), 0, 0.0)
    with open(out / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["sample_id"], r["author"], r["kind"]) for r in rows] == \
        [("1", "ann", "corrected"), ("3", "bob", "accepted")]


def test_export_of_one_split(store: Store, tmp_path: Path) -> None:
    saved = [store.save_correction(store.add_sample(sem(50 + s), 4.0, "upload").id,
                                   np.zeros((16, 16), bool), "ann") for s in range(10)]
    out = store.export_pairs(tmp_path / "holdout", split="holdout")
    manifest = json.loads((out / "manifest.json").read_text())
    assert [r["pair_id"] for r in manifest["pairs"]] == \
        [p.id for p in saved if p.split == "holdout"]
