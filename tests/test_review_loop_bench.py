"""bench/review_loop*.py: the per-tool review-loop benchmark's arithmetic and a quick tiny run."""

from __future__ import annotations

import json
from pathlib import Path

from bench import review_loop, review_loop_data, review_loop_results
from tests.support import save_tiny_model

TINY_OVERRIDES = ["expert_crop=32", "crop_size=32", "batch_size=2", "expert_max_steps=4",
                  "tile_size=64", "min_tool_pairs=1", "anchor_train=4", "anchor_test=3",
                  "cpu_threads=1", "device=cpu"]


def _row(tool: str, zero: float, fine: float, peer: float, drop: float = 0.0) -> dict:
    step = {"n": 50, "production": {"tool": {"iou": fine, "epe_mean_nm": 2.0},
                                    "original_tagged": {"iou": 0.97},
                                    "original_untagged": {"iou": 0.97 - drop}},
            "peer": {"iou": peer}, "job": {"wall_seconds": 300.0, "decision": "promote"}}
    return {"tool": tool, "zero_shot": {"tool": {"iou": zero}, "original_tagged": {"iou": 0.97},
                                        "original_untagged": {"iou": 0.97}}, "steps": [step]}


def test_the_table_holds_the_margin_over_the_peer_and_the_loss_elsewhere() -> None:
    table = review_loop_results.summarise([_row("a", 0.3, 0.93, 0.8), _row("b", 0.3, 0.93, 0.9, 0.004)])
    assert [r["margin"] for r in table] == [0.13, 0.03]
    assert table[1]["original_iou_drop"] == 0.004
    assert review_loop_results.targets_met(table) == {"a": True, "b": False}


def test_finite_turns_nan_and_inf_into_null() -> None:
    assert review_loop_results.finite({"a": [float("inf"), 1.5], "b": float("nan")}) == \
        {"a": [None, 1.5], "b": None}


def test_the_family_has_six_tools_different_in_kind_and_the_independent_check() -> None:
    tools = review_loop_data.all_tools()
    assert len(tools) == 10 and {"drifted", "indep_a", "indep_b", "indep_c"} <= set(tools)
    assert {review_loop_data.synthetic_tool(t).nm_per_px for t in tools[:6]} == {2.0, 4.0}


def test_quick_run_goes_through_the_worker_with_the_peer_beside_it(tmp_path: Path) -> None:
    model = save_tiny_model(tmp_path / "tiny")
    out = tmp_path / "out"
    code = review_loop.main(["--model", str(model), "--tools", "edge_only", "--counts", "5",
                             "--test-count", "2", "--original-count", "2", "--out", str(out),
                             "--workspace", str(tmp_path / "bench"), "--threads", "1",
                             "--finetune", *TINY_OVERRIDES])
    assert code == 0
    result = json.loads((out / "review_loop.json").read_text())
    step = result["rows"][0]["steps"][0]
    assert step["job"]["status"] == "succeeded", step["job"]["error"]
    assert step["job"]["decision"] in ("promote", "reject")
    assert set(step["job"]["tools"]) == {"tool:bench:edge_only"}
    assert step["peer"]["steps"] >= 1 and 0.0 <= step["peer"]["iou"] <= 1.0
    assert result["table"][0]["tool"] == "edge_only"
    assert (out / "review_loop.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
