"""The synth command: folder format, determinism by seed, contact sheet, bad arguments."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from semgan.__main__ import main
from semgan.semsim import PROFILES
from semgan.synth import SynthError, make_pair, resolve_profiles, write_dataset

ROOT = Path(__file__).resolve().parents[1]
SHARED_LAYOUTS = ROOT.parent / "shared" / "layouts"


def _png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_write_dataset_writes_triples_and_manifest(tmp_path: Path) -> None:
    manifest_path = write_dataset(tmp_path, 3, size=64, nm_per_px=4.0,
                                  profiles=resolve_profiles("clean,noisy"), seed=5)
    manifest = json.loads(manifest_path.read_text())
    assert manifest["nm_per_px"] == 4.0
    assert manifest["size"] == 64
    assert [item["name"] for item in manifest["items"]] == ["000000", "000001", "000002"]
    assert [item["profile"] for item in manifest["items"]] == ["clean", "noisy", "clean"]
    for item in manifest["items"]:
        sem, layout, printed = (_png(tmp_path / item[key]) for key in ("sem", "layout", "printed"))
        assert sem.shape == layout.shape == printed.shape == (64, 64)
        assert sem.dtype == np.uint8
        assert set(np.unique(layout)) <= {0, 255}
        assert set(np.unique(printed)) <= {0, 255}
        assert item["source"]["kind"] == "procedural"


def test_pairs_are_deterministic_by_seed_and_index() -> None:
    profiles = [PROFILES["clean"]]
    a = make_pair(4, size=64, nm_per_px=4.0, profiles=profiles, seed=11)
    b = make_pair(4, size=64, nm_per_px=4.0, profiles=profiles, seed=11)
    c = make_pair(4, size=64, nm_per_px=4.0, profiles=profiles, seed=12)
    assert np.array_equal(a.sem_image, b.sem_image)
    assert np.array_equal(a.layout_mask, b.layout_mask)
    assert not np.array_equal(a.sem_image, c.sem_image)


def test_item_does_not_depend_on_count(tmp_path: Path) -> None:
    write_dataset(tmp_path / "two", 2, size=64, seed=3)
    write_dataset(tmp_path / "four", 4, size=64, seed=3)
    assert np.array_equal(_png(tmp_path / "two/sem/000001.png"), _png(tmp_path / "four/sem/000001.png"))


def test_all_means_the_training_profiles() -> None:
    assert [p.name for p in resolve_profiles("all")] == ["clean", "noisy", "aged"]


def test_zero_count_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SynthError, match="--count"):
        write_dataset(tmp_path, 0)


def test_cli_synth_and_preview(tmp_path: Path) -> None:
    assert main(["synth", "--out", str(tmp_path / "d"), "--count", "2", "--size", "64"]) == 0
    assert len(list((tmp_path / "d" / "sem").glob("*.png"))) == 2
    assert main(["synth", "--preview", "--out", str(tmp_path / "p"), "--size", "64"]) == 0
    sheet = _png(tmp_path / "p" / "contact_sheet.png")
    assert sheet.ndim == 3 and sheet.shape[2] == 3
    # one row of 64 px pairs (+ label and gap) per profile
    assert sheet.shape[0] == len(PROFILES) * (64 + 28 + 6)


def test_cli_unknown_profile_exits_2(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "semgan", "synth", "--out", str(tmp_path),
                           "--count", "1", "--profile", "nosuchtool"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert "nosuchtool" in proc.stderr


@pytest.mark.skipif(not (SHARED_LAYOUTS / "stdmetal").is_dir(), reason="../shared/layouts absent")
def test_synth_from_real_glp_clips(tmp_path: Path) -> None:
    manifest_path = write_dataset(tmp_path, 2, size=128, layouts=SHARED_LAYOUTS / "stdmetal" / "AND2_X4__0_0.glp")
    items = json.loads(manifest_path.read_text())["items"]
    assert [item["source"]["kind"] for item in items] == ["glp", "glp"]
    assert all(_png(tmp_path / item["layout"]).any() for item in items)
