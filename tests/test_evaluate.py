"""Evaluation on a data folder: per-method tables, per-profile groups, perfect and inverted methods."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from semgan.evaluate import BASELINE, baseline_method, evaluate_folder, format_table
from semgan.imageio import load_image
from semgan.synth import resolve_profiles, write_dataset


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("evaldata")
    write_dataset(out, 4, size=96, profiles=resolve_profiles("clean,noisy"), seed=2)
    return out


def _truth_lookup(data_dir: Path):
    truths = {}
    for path in sorted((data_dir / "layout").glob("*.png")):
        truths[path.stem] = load_image(path).pixels > 0.5
    return truths


def test_perfect_method_scores_iou_one_and_zero_epe(data_dir: Path) -> None:
    truths = list(_truth_lookup(data_dir).values())
    calls = iter(truths)

    def oracle(sem_image: np.ndarray, nm_per_px: float):
        mask = next(calls)
        return mask.astype(np.float32), mask

    result = evaluate_folder(data_dir, {"oracle": oracle})
    overall = result["methods"]["oracle"]["overall"]
    assert overall["iou"] == 1.0
    assert overall["epe_mean_nm"] == 0.0
    assert overall["l1"] == 0.0
    assert result["items"] == 4


def test_inverted_method_scores_worse_than_baseline(data_dir: Path) -> None:
    def inverted(sem_image: np.ndarray, nm_per_px: float):
        _, mask = baseline_method(sem_image, nm_per_px)
        return (~mask).astype(np.float32), ~mask

    result = evaluate_folder(data_dir, {BASELINE: baseline_method, "inverted": inverted})
    methods = result["methods"]
    assert methods[BASELINE]["overall"]["iou"] > 0.8
    assert methods["inverted"]["overall"]["iou"] < 0.3
    groups = set(methods[BASELINE]["groups"])
    assert {key for key in groups if not key.startswith("family:")} == {"profile:clean", "profile:noisy",
                                                                        "source:procedural"}
    assert methods[BASELINE]["groups"]["profile:clean"]["count"] == 2


def test_table_lists_each_method_once(data_dir: Path) -> None:
    result = evaluate_folder(data_dir, {BASELINE: baseline_method}, limit=2)
    table = format_table(result)
    assert table.splitlines()[0].startswith("method")
    assert sum(line.startswith(BASELINE) for line in table.splitlines()) == 1
    assert result["items"] == 2


def test_unknown_target_is_refused(data_dir: Path) -> None:
    with pytest.raises(ValueError, match="target"):
        evaluate_folder(data_dir, {BASELINE: baseline_method}, target="contour")


def test_examples_figure_has_a_column_per_method_and_a_row_per_example(data_dir: Path) -> None:
    from semgan.evaluate import examples_figure

    figure = examples_figure(data_dir, {BASELINE: baseline_method}, count=3)
    # columns: SEM, truth, baseline; each 96 px + 4 px gap. rows: header + 3 × (caption + image + gap)
    assert figure.shape == (22 + 3 * (96 + 4 + 22), 3 * (96 + 4), 3)


def test_examples_figure_adds_named_items_and_refuses_unknown_names(data_dir: Path) -> None:
    from semgan.data import DatasetError, read_manifest
    from semgan.evaluate import examples_figure

    last = read_manifest(data_dir)["items"][-1]["name"]
    figure = examples_figure(data_dir, {BASELINE: baseline_method}, count=1, names=[last])
    assert figure.shape[0] == 22 + 2 * (96 + 4 + 22)
    with pytest.raises(DatasetError, match="no items named nope"):
        examples_figure(data_dir, {BASELINE: baseline_method}, count=1, names=["nope"])


def test_examples_cover_every_profile_before_repeating() -> None:
    from semgan.evaluate import pick_examples

    manifest = {"items": [{"name": str(i), "profile": p, "source": {"kind": "procedural"}}
                          for i, p in enumerate(["a", "a", "a", "b", "c"])]}
    assert [item["name"] for item in pick_examples(manifest, 4)] == ["0", "3", "4", "1"]


def test_groups_by_layout_family_and_held_out_region(tmp_path: Path) -> None:
    import json

    from semgan.layouts.families import family_of
    from semgan.semsim.space import DEFAULT_HELD_OUT, held_out_region

    write_dataset(tmp_path / "v", 3, size=64, profiles=resolve_profiles("random:validation"), seed=3)
    write_dataset(tmp_path / "t", 3, size=64, profiles=resolve_profiles("random:train"), seed=3)
    for folder, inside in (("v", True), ("t", False)):
        items = json.loads((tmp_path / folder / "manifest.json").read_text())["items"]
        result = evaluate_folder(tmp_path / folder, {BASELINE: baseline_method})
        rows, groups = (result["methods"][BASELINE][key] for key in ("rows", "groups"))
        regions = [held_out_region(item["tool_params"], DEFAULT_HELD_OUT) or "train" for item in items]
        assert [row["region"] for row in rows] == regions
        assert all((region != "train") == inside for region in regions)
        assert {f"region:{r}" for r in regions} | {f"family:{family_of(i['source'])}" for i in items} <= set(groups)
        assert sum(groups[key]["count"] for key in groups if key.startswith("family:")) == 3


def test_named_profiles_have_no_region_group(data_dir: Path) -> None:
    result = evaluate_folder(data_dir, {BASELINE: baseline_method})
    assert not any(key.startswith("region:") for key in result["methods"][BASELINE]["groups"])
    assert all(row["region"] is None for row in result["methods"][BASELINE]["rows"])
