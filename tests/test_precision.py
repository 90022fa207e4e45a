"""Precision: which autocast dtype runs where, bf16 inference and training against fp32, tiling plans."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from semgan.config import PRESETS, ConfigError
from semgan.device import DeviceError, autocast_dtype, cpu_has_native_bf16, make_precision
from semgan.infer import Predictor
from semgan.model import build_models
from semgan.semsim import PROFILES
from semgan.synth import make_pair
from semgan.tiling import plan_axis
from semgan.train.step import Networks, build_optimizers, train_step
from tests.e2e.tiny_model import make_tiny_model

CPU = torch.device("cpu")
TINY = PRESETS["tiny"]


@pytest.fixture
def native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend the CPU has native bf16 (the cached answer is recomputed after the test)."""
    monkeypatch.setenv("SEMGAN_CPU_BF16", "1")
    cpu_has_native_bf16.cache_clear()
    yield
    cpu_has_native_bf16.cache_clear()


@pytest.fixture
def no_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend the CPU emulates bf16."""
    monkeypatch.setenv("SEMGAN_CPU_BF16", "0")
    cpu_has_native_bf16.cache_clear()
    yield
    cpu_has_native_bf16.cache_clear()


def test_auto_is_bf16_only_on_a_cpu_with_native_bf16(native_bf16: None) -> None:
    assert autocast_dtype(CPU, "auto") == torch.bfloat16


def test_auto_falls_back_to_fp32_where_bf16_is_emulated(no_native_bf16: None) -> None:
    assert autocast_dtype(CPU, "auto") is None
    assert Predictor(build_models(TINY, critics=False), TINY, device="cpu").precision == "fp32"
    assert make_precision(CPU).dtype is None


def test_explicit_precisions_are_honoured(no_native_bf16: None) -> None:
    assert autocast_dtype(CPU, "fp32") is None
    assert autocast_dtype(CPU, "bf16") == torch.bfloat16
    assert make_precision(CPU, amp=False, precision="bf16").dtype is None  # amp off wins


def test_fp16_on_the_cpu_and_unknown_names_are_refused() -> None:
    with pytest.raises(DeviceError, match="needs a CUDA device"):
        autocast_dtype(CPU, "fp16")
    with pytest.raises(DeviceError, match="unknown precision 'fp8'"):
        autocast_dtype(CPU, "fp8")


def test_config_refuses_an_unknown_training_precision() -> None:
    with pytest.raises(ConfigError, match=r"train\.precision"):
        PRESETS["tiny"].replace("train", precision="int8")


def test_bf16_masks_agree_with_fp32_on_a_trained_tiny_model(tmp_path: Path) -> None:
    model_dir = make_tiny_model(tmp_path / "tiny", steps=150)
    fp32 = Predictor.from_dir(model_dir, "cpu", precision="fp32")
    bf16 = Predictor.from_dir(model_dir, "cpu", precision="bf16")
    assert (fp32.precision, bf16.precision) == ("fp32", "bf16")
    agreement = []
    for index in range(4):
        sem = make_pair(index, size=256, nm_per_px=4.0, profiles=[PROFILES["clean"]], seed=11).sem_image
        agreement.append(np.mean(fp32.predict(sem).mask == bf16.predict(sem).mask))
    assert min(agreement) >= 0.995


def test_a_bf16_train_step_keeps_fp32_weights_and_losses() -> None:
    torch.manual_seed(0)
    models = build_models(TINY).train().to(memory_format=torch.channels_last)
    before = [p.detach().clone() for p in models.sem_to_layout.parameters()]
    layout = (torch.rand(2, 1, 64, 64) > 0.5).float() * 2 - 1
    batch = {"sem_image": 0.6 * layout + 0.1 * torch.randn_like(layout), "layout_mask": layout}
    precision = make_precision(CPU, precision="bf16")
    losses = train_step(Networks.of(models), build_optimizers(models, TINY.optim), batch, TINY.loss, precision)
    assert precision.dtype == torch.bfloat16
    assert all(np.isfinite(v) for v in losses.values()) and losses["g_l1"] > 0
    after = list(models.sem_to_layout.parameters())
    assert all(p.dtype == torch.float32 for p in after)
    assert any(not torch.equal(a, b) for a, b in zip(after, before, strict=True))


@pytest.mark.parametrize(("length", "overlap"), [(2048, 32), (2048, 64), (4096, 32), (1000 // 32 * 32, 64)])
def test_tile_plans_cover_the_axis_with_at_least_the_overlap(length: int, overlap: int) -> None:
    plan = plan_axis(length, 256, overlap, 32)
    assert plan.starts[0] == 0 and plan.starts[-1] + plan.tile == length
    assert all(start % 32 == 0 for start in plan.starts) and 256 <= plan.tile <= 576
    assert all(plan.tile - (b - a) >= overlap for a, b in zip(plan.starts, plan.starts[1:], strict=False))


def test_tile_plan_spends_less_than_fixed_tiles_on_a_2048_image() -> None:
    fixed, adaptive = plan_axis(2048, 256, 32, 32, longest=256), plan_axis(2048, 256, 32, 32)
    assert (fixed.tile, len(fixed.starts)) == (256, 9)
    assert adaptive.covered == 2176 < fixed.covered == 2304


def test_an_axis_up_to_the_longest_tile_is_one_tile() -> None:
    assert plan_axis(544, 256, 32, 32).starts == (0,)
    assert plan_axis(160, 256, 32, 32).tile == 256  # never shorter than the nominal tile
