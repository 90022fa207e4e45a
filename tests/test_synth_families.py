"""Synthetic pairs by layout family: recorded per item, held-out families never in training, real layers."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from semgan.__main__ import main
from semgan.layouts.families import FAMILIES, UnknownFamilyError
from semgan.semsim import PROFILES
from semgan.synth import SynthError, make_pair, write_dataset
from semgan.synth_layouts import family_set, load_family_tiles

SHARED_LAYOUTS = Path(__file__).resolve().parents[1].parent / "shared" / "layouts"
needs_gf180 = pytest.mark.skipif(not (SHARED_LAYOUTS / "gf180mcu").is_dir(),
                                 reason="../shared/layouts/gf180mcu absent")
GF180_CELLS = ("and2_1", "dffq_1", "inv_1")
CLEAN = [PROFILES["clean"]]


def manifest(path: Path) -> dict:
    return json.loads(path.read_text())


def test_legacy_items_name_their_family(tmp_path: Path) -> None:
    data = manifest(write_dataset(tmp_path, 6, size=64, seed=5))
    families = [item["source"]["family"] for item in data["items"]]
    assert set(families) <= set(FAMILIES)
    assert data["family_split"] is None and data["held_out_families"] == []
    assert sum(data["family_counts"].values()) == 6
    assert data["family_counts"] == {f: families.count(f) for f in data["families"]}


def test_held_out_families_never_appear_in_training(tmp_path: Path) -> None:
    held = ["contacts", "vias"]
    data = manifest(write_dataset(tmp_path, 40, size=64, seed=2, hold_out_families=held))
    families = {item["source"]["family"] for item in data["items"]}
    assert families.isdisjoint(held) and len(families) >= 4
    patterns = {r["pattern"] for item in data["items"] for r in item["source"].get("regions", [])}
    patterns |= {item["source"]["pattern"] for item in data["items"]}
    assert patterns.isdisjoint({"contacts", "staggered_contacts", "contact_array", "via_array"})
    assert data["family_split"] == "train" and data["held_out_families"] == held
    assert data["family_splits"] == {f: "holdout" if f in held else "train" for f in FAMILIES}
    assert data["families"] == [f for f in FAMILIES if f not in held]
    assert sum(data["family_counts"].values()) == 40


def test_holdout_split_generates_only_the_held_out_families(tmp_path: Path) -> None:
    data = manifest(write_dataset(tmp_path, 8, size=64, seed=2, hold_out_families=["vias"],
                                  family_split="holdout"))
    assert {item["source"]["family"] for item in data["items"]} == {"vias"}
    assert data["family_counts"] == {"vias": 8} and data["family_splits"]["vias"] == "holdout"


def test_family_pairs_are_deterministic_and_independent_of_the_set() -> None:
    chosen = family_set(["contacts", "lines"])
    a, b = (make_pair(3, size=64, nm_per_px=4.0, profiles=CLEAN, seed=9, families=chosen) for _ in range(2))
    c = make_pair(4, size=64, nm_per_px=4.0, profiles=CLEAN, seed=9, families=chosen)
    assert np.array_equal(a.sem_image, b.sem_image) and np.array_equal(a.layout_mask, b.layout_mask)
    assert a.source == b.source and a.source["family"] in ("contacts", "lines")
    assert not np.array_equal(a.layout_mask, c.layout_mask)


def test_item_does_not_depend_on_count_with_families(tmp_path: Path) -> None:
    for count in (2, 5):
        write_dataset(tmp_path / str(count), count, size=64, seed=3, families=["routing", "vias"])
    two, five = (tmp_path / name / "layout" / "000001.png" for name in ("2", "5"))
    assert two.read_bytes() == five.read_bytes()


def test_bad_family_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UnknownFamilyError, match="'wires'"):
        write_dataset(tmp_path, 1, size=64, families=["wires"])
    with pytest.raises(UnknownFamilyError, match="no family is held out"):
        write_dataset(tmp_path, 1, size=64, family_split="holdout")
    with pytest.raises(UnknownFamilyError, match="'metal9'"):
        family_set(layers={"metal9": (40, 0)})


def test_cli_hold_out_families(tmp_path: Path) -> None:
    out = tmp_path / "d"
    assert main(["synth", "--out", str(out), "--count", "6", "--size", "64",
                 "--hold-out-families", "contacts,vias", "--families", "all"]) == 0
    data = manifest(out / "manifest.json")
    assert data["held_out_families"] == ["contacts", "vias"]
    assert {item["source"]["family"] for item in data["items"]}.isdisjoint({"contacts", "vias"})
    with pytest.raises(SystemExit) as exit_info:
        main(["synth", "--out", str(out), "--families", "wires"])
    assert exit_info.value.code == 2


@pytest.fixture
def gf180(tmp_path: Path) -> Path:
    """A folder with three gf180mcu cells (links), so reading stays fast."""
    if not (SHARED_LAYOUTS / "gf180mcu").is_dir():
        pytest.skip("../shared/layouts/gf180mcu absent")
    folder = tmp_path / "gf180"
    folder.mkdir()
    for cell in GF180_CELLS:
        name = f"gf180mcu_fd_sc_mcu7t5v0__{cell}.gds"
        os.symlink(SHARED_LAYOUTS / "gf180mcu" / name, folder / name)
    return folder


@needs_gf180
def test_real_contact_tiles_hold_220_nm_squares_and_via1_is_absent(gf180: Path) -> None:
    chosen = load_family_tiles(gf180, family_set(["contacts", "vias", "cell_metal"]), size=128, nm_per_px=4.0)
    contacts, vias, metal = (chosen.tiles[f] for f in ("contacts", "vias", "cell_metal"))
    assert contacts and metal and vias == ()  # these cells draw no Via1 (35/0)
    assert all(t.source["layer"] == "33/0" and t.source["family"] == "contacts" for t in contacts)
    assert all(t.source["layer"] == "34/0" and t.mask.any() for t in metal)
    boxes = [b for tile in contacts for b in ndimage.find_objects(ndimage.label(tile.mask)[0])]
    inner = [b for b in boxes if b[0].start > 0 and b[1].start > 0 and b[0].stop < 128 and b[1].stop < 128]
    assert len(inner) >= 3  # contacts are 220 nm squares: 55 px at 4 nm/px
    assert {(b[0].stop - b[0].start, b[1].stop - b[1].start) for b in inner} == {(55, 55)}


@needs_gf180
def test_synth_from_real_layers_per_family(tmp_path: Path, gf180: Path) -> None:
    data = manifest(write_dataset(tmp_path / "d", 12, size=128, seed=1, layouts=gf180,
                                  families=["contacts", "vias"], family_layers={"contacts": (33, 0)}))
    by_family = {f: [i["source"] for i in data["items"] if i["source"]["family"] == f] for f in ("contacts", "vias")}
    assert by_family["contacts"] and all(s["kind"] == "gds" and s["layer"] == "33/0" for s in by_family["contacts"])
    assert all(s["kind"] == "procedural" for s in by_family["vias"])  # no Via1 to read: procedural
    assert data["family_layers"] == {"contacts": "33/0", "vias": "35/0"}
    assert data["family_real_tiles"]["vias"] == 0 < data["family_real_tiles"]["contacts"]


@needs_gf180
def test_no_real_tiles_for_any_family_is_refused(tmp_path: Path, gf180: Path) -> None:
    with pytest.raises(SynthError, match="no real tiles"):
        write_dataset(tmp_path, 1, size=128, layouts=gf180, families=["vias", "lines"])


def _hash(mask: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(mask).tobytes() + str(mask.shape).encode()).hexdigest()[:16]


def test_legacy_pairs_are_bit_identical() -> None:
    # Layout hashes recorded before the families were added (make_pair without families).
    clean = [_hash(make_pair(i, size=96, nm_per_px=4.0, profiles=CLEAN, seed=0).layout_mask) for i in range(5)]
    assert clean == ["1ec421d71916e74a", "4112e6f8f8d05af5", "84e099dbbef4c31f", "65dd29ecf060dce5",
                     "2bf4b49d8fedfd6c"]
