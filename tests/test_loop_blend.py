"""Blending a fine-tuned candidate back towards production (loop/finetune/blend.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from loop.finetune import FinetuneConfig, FinetuneError, request_finetune, set_finetune_config
from loop.finetune.blend import blend_checkpoint
from loop.worker import run_worker
from semgan.checkpoint import CheckpointError, export_inference, load_checkpoint
from store import Store
from tests.support import (
    TINY_FINETUNE,
    add_pairs,
    install_production,
    perturbed_copy,
    save_tiny_model,
)

torch.manual_seed(0)


def blended_halfway(tmp_path: Path) -> tuple[dict, dict]:
    """(base state, state of base + 1 blended back halfway)."""
    base = save_tiny_model(tmp_path / "base")
    tuned = perturbed_copy(base, tmp_path / "tuned", 1.0)
    blend_checkpoint(tuned, base, 0.5)
    return load_checkpoint(base).models.state_dict(), load_checkpoint(tuned).models.state_dict()


def test_blend_half_lands_midway_between_base_and_tuned(tmp_path: Path) -> None:
    start, mixed = blended_halfway(tmp_path)
    weight = next(k for k in start if k.endswith("weight") and start[k].dim() == 4)
    assert torch.allclose(mixed[weight], start[weight] + 0.5, atol=1e-6)
    running = next(k for k in start if k.endswith("running_mean"))
    assert torch.allclose(mixed[running], start[running] + 0.5, atol=1e-6)


def test_blend_keeps_integer_counters_of_the_tuned_model(tmp_path: Path) -> None:
    start, mixed = blended_halfway(tmp_path)
    counter = next(k for k in start if k.endswith("num_batches_tracked"))
    assert int(mixed[counter]) == int(start[counter]) + 7


def test_blend_keeps_tuned_critics_when_base_export_has_none(tmp_path: Path) -> None:
    full = save_tiny_model(tmp_path / "full")
    export = export_inference(full, tmp_path / "export")  # generators only
    tuned = perturbed_copy(full, tmp_path / "tuned", 1.0)
    before = load_checkpoint(tuned).models.layout_critic.state_dict()
    assert blend_checkpoint(tuned, export, 0.5) > 0
    after = load_checkpoint(tuned).models.layout_critic.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_blended_checkpoint_stays_a_resumable_full_checkpoint(tmp_path: Path) -> None:
    base = save_tiny_model(tmp_path / "base")
    tuned = perturbed_copy(base, tmp_path / "tuned", 1.0)
    blend_checkpoint(tuned, base, 0.25)
    assert load_checkpoint(tuned).is_full  # train_state.json hashes match the rewritten files


def test_blend_weight_outside_unit_interval_raises(tmp_path: Path) -> None:
    base = save_tiny_model(tmp_path / "base")
    with pytest.raises(CheckpointError):
        blend_checkpoint(base, base, 1.5)


def test_config_rejects_zero_blend() -> None:
    with pytest.raises(FinetuneError):
        FinetuneConfig(blend=0.0)


def test_fine_tune_with_blend_records_and_logs_it(tmp_path: Path) -> None:
    with Store.open(tmp_path / "ws") as store:
        install_production(store)
        set_finetune_config(store, replace(TINY_FINETUNE, blend=0.6))
        add_pairs(store, 8)
        job = request_finetune(store)
        run_worker(store.workspace, once=True)
        finished = store.get_job(job.id)
        summary = store.get_model(finished.result["candidate_version"]).training_summary
        assert summary["blend"] == 0.6
        assert any(line.startswith("blended ") for line in finished.log_lines)
