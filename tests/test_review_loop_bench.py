"""bench/review_loop.py: the review-loop benchmark's arithmetic and a quick run with a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import review_loop
from tests.test_loop_support import save_tiny_model

TINY_OVERRIDES = ["epochs=2", "crop_size=32", "batch_size=2", "max_steps=4", "tile_size=64",
                  "anchor_train=4", "anchor_test=3", "cpu_threads=1", "device=cpu"]


def _row(n: int, drifted_iou: float, original_iou: float) -> dict:
    return {"n": n, "production": {"drifted": {"iou": drifted_iou},
                                   "original": {"iou": original_iou}}}


def test_summary_recovers_the_gap_fraction() -> None:
    summary = review_loop.summarise([_row(0, 0.5, 0.9), _row(50, 0.82, 0.897)])
    assert summary["iou_gap_at_0"] == pytest.approx(0.4)
    last = summary["per_count"][-1]
    assert last["gap_recovered"] == pytest.approx(0.8)
    assert last["original_iou_drop"] == pytest.approx(0.003)
    assert summary["target"]["met"] is True


def test_summary_fails_the_target_when_original_data_regresses() -> None:
    summary = review_loop.summarise([_row(0, 0.5, 0.9), _row(50, 0.9, 0.89)])
    assert summary["per_count"][-1]["gap_recovered"] == pytest.approx(1.0)
    assert summary["target"]["met"] is False


def test_finite_turns_nan_and_inf_into_null() -> None:
    assert review_loop.finite({"a": [float("inf"), 1.5], "b": float("nan")}) == \
        {"a": [None, 1.5], "b": None}


def test_quick_run_goes_through_the_worker_and_writes_json_and_png(tmp_path: Path) -> None:
    model = save_tiny_model(tmp_path / "tiny")
    out = tmp_path / "out"
    code = review_loop.main(["--model", str(model), "--counts", "0,4", "--test-count", "3",
                             "--size", "64", "--out", str(out), "--workspace",
                             str(tmp_path / "bench"), "--finetune", *TINY_OVERRIDES])
    assert code == 0
    result = json.loads((out / "review_loop.json").read_text())
    assert [row["n"] for row in result["rows"]] == [0, 4]
    job = result["rows"][1]["job"]
    assert job["status"] == "succeeded"
    assert job["decision"] in ("promote", "reject")
    assert job["candidate_version"] == 2
    assert result["rows"][1]["pairs"]["imported"] == 4
    assert set(result["rows"][1]["candidate"]) == {"drifted", "original"}
    assert result["finetune_config"]["max_steps"] == 4
    assert (out / "review_loop.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
