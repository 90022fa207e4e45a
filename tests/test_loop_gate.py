"""The promotion gate: broken candidates, the rules, and what the registry records."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from loop.anchor import ensure_anchor_sets
from loop.gate import GateConfig, decide, run_gate
from store import Store
from tests.support import NM_PER_PX, SIZE, add_pairs, install_production, sha256_of


@pytest.fixture
def store(tmp_path: Path):
    with Store.open(tmp_path / "ws") as opened:
        install_production(opened)
        add_pairs(opened, 10)  # 1 of them lands in the holdout split
        yield opened


def register_copy(store: Store, name: str, change=None) -> int:
    """Register a copy of production as a candidate, its weights passed through ``change``."""
    source = Path(store.production_model().path)
    target = store.models_dir / name
    shutil.copytree(source, target)
    if change is not None:
        weights = target / "weights.safetensors"
        save_file({k: change(v) for k, v in load_file(weights).items()}, weights)
    return store.register_model(target, sha256_of(target / "weights.safetensors"), {}, {}, 1, {},
                                {}).version


def gate(store: Store, version: int, config: GateConfig | None = None):
    anchors = ensure_anchor_sets(store.workspace, NM_PER_PX, SIZE, 4, 3)
    return run_gate(store, version, anchors.test, SIZE, config or GateConfig(), device="cpu",
                    log=lambda _: None)


def test_zeroed_candidate_is_rejected_and_production_stays(store: Store) -> None:
    version = register_copy(store, "zeroed", lambda t: t * 0)
    result = gate(store, version)
    assert (result.decision, store.get_model(version).status) == ("reject", "rejected")
    assert result.reason.startswith("broken candidate: constant output")
    assert store.production_model().version == 1


def test_nan_candidate_is_rejected_as_broken(store: Store) -> None:
    version = register_copy(store, "nan",
                            lambda t: t * math.nan if t.is_floating_point() else t)
    result = gate(store, version)
    assert result.decision == "reject"
    assert "NaN or inf" in result.reason
    assert store.production_model().version == 1


def test_unloadable_candidate_is_rejected_as_broken(store: Store) -> None:
    version = register_copy(store, "truncated")
    weights = store.models_dir / "truncated" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    result = gate(store, version)
    assert result.broken is not None and "does not load" in result.broken


def test_rejection_is_audited_with_both_models_figures(store: Store) -> None:
    version = register_copy(store, "same")  # identical: SSIM does not improve
    result = gate(store, version)
    audit = store.model_audit(version=version)[0]
    assert (result.decision, audit.action) == ("reject", "reject")
    assert audit.metrics["gate"]["production"]["old_data"]["iou"] == \
        result.production["old_data"]["iou"]
    assert "SSIM on new data" in audit.reason


def test_promotion_goes_through_the_registry(store: Store) -> None:
    version = register_copy(store, "same")
    lenient = GateConfig(min_ssim_gain=-1.0, max_iou_drop=1.0, max_epe_rise_nm=math.inf)
    result = gate(store, version, lenient)
    assert result.decision == "promote"
    assert store.production_model().version == version
    assert store.model_audit(version=version)[0].action == "promote"


def figures(new_ssim: float, old_iou: float, old_epe: float) -> dict:
    return {"new_data": {"ssim": new_ssim}, "old_data": {"iou": old_iou, "epe_mean_nm": old_epe}}


def test_better_on_new_data_without_old_regression_promotes() -> None:
    decision, _, _ = decide(figures(0.80, 0.899, 2.3), figures(0.70, 0.900, 2.0), 5)
    assert decision == "promote"


def test_ssim_gain_must_exceed_epsilon() -> None:
    decision, _, _ = decide(figures(0.7005, 0.9, 2.0), figures(0.70, 0.9, 2.0), 5)
    assert decision == "reject"


def test_old_data_iou_drop_beyond_tolerance_rejects() -> None:
    decision, reason, _ = decide(figures(0.80, 0.890, 2.0), figures(0.70, 0.900, 2.0), 5)
    assert decision == "reject" and "IoU on old data" in reason.split(":")[0]


def test_old_data_epe_rise_beyond_tolerance_rejects() -> None:
    decision, reason, _ = decide(figures(0.80, 0.9, 2.6), figures(0.70, 0.9, 2.0), 5)
    assert decision == "reject" and "EPE" in reason.split(":")[0]


def test_without_holdout_pairs_the_gate_refuses() -> None:
    better_everywhere = figures(math.nan, 0.95, 1.0)
    decision, reason, _ = decide(better_everywhere, figures(math.nan, 0.9, 2.0), 0)
    assert decision == "reject" and "held-out" in reason


def test_nan_figure_fails_its_check() -> None:
    decision, _, _ = decide(figures(0.8, math.nan, 2.0), figures(0.7, 0.9, 2.0), 5)
    assert decision == "reject"
