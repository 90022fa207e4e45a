"""The speed benches' rules: which tiling is chosen, and how the issue's ratios are judged."""

from __future__ import annotations

import numpy as np

from bench.bench_model import _targets
from bench.bench_tiling import choose, seam_band


def _row(precision: str, tile: int, seconds: float, iou: float = 0.965, agree: float = 0.9995,
         seam: float = 0.001, off_seam: float = 0.001) -> dict:
    return {"precision": precision, "tile": tile, "overlap": 32, "tiles": "fixed", "seconds": seconds,
            "iou": iou, "agree_today": agree, "seam_disagree": seam, "off_seam_disagree": off_seam}


def test_the_fastest_tiling_that_keeps_accuracy_and_shows_no_seam_is_chosen() -> None:
    rows = [_row("fp32", 256, 10.0), _row("bf16", 256, 2.0), _row("bf16", 384, 1.0, seam=0.002),
            _row("bf16", 512, 1.5, iou=0.9640), _row("bf16", 320, 1.8)]
    assert choose(rows, "bf16")["tile"] == 320  # 384 shows a seam, 512 lost IoU


def test_a_tiling_that_changes_too_many_pixels_is_not_chosen() -> None:
    rows = [_row("fp32", 256, 10.0), _row("fp32", 384, 1.0, agree=0.998), _row("fp32", 512, 5.0)]
    assert choose(rows, "fp32")["tile"] == 512


def test_seam_band_marks_internal_tile_borders_only() -> None:
    band = seam_band((512, 512), 256, 32, 32, longest=256)  # tiles at 0, 128, 256: borders 128, 256, 384
    assert band[:, 126].all() and band[:, 259].all() and band[380, :].all()
    assert not band[50, 50] and not band[200, 200] and not band[50, 511] and band.mean() < 0.15


def test_targets_compare_each_ratio_with_its_bar() -> None:
    tile = {"ms_per_tile": 1.0, "achieved_gflop_s_best": 300.0}
    results = {"matmul_fp32_gflop_s": 150.0, "matmul_bf16_gflop_s": 375.0,
               "inference_default_256_tile": {
                   "fp32_channels_last_batch1": {**tile, "achieved_gflop_s_best": 130.0},
                   "fp32_channels_last_batch8": {**tile, "achieved_gflop_s_best": 125.0},
                   "bf16_channels_last_batch1": tile, "bf16_channels_last_batch8": tile},
               "predict_2048_image": {"seconds": 1.4, "vs_whole_image_pass": 0.5},
               "training_default": [{"crop": 128, "precision": "float32", "seconds_per_step_min": 0.9},
                                    {"crop": 128, "precision": "bfloat16", "seconds_per_step_min": 0.6},
                                    {"crop": 256, "precision": "float32", "seconds_per_step_min": 3.6},
                                    {"crop": 256, "precision": "bfloat16", "seconds_per_step_min": 1.8}]}
    targets = _targets(results)
    assert targets["tile_fp32_vs_fp32_gemm"] == {"value": 0.867, "bar": 0.8, "met": True}
    assert targets["tile_bf16_vs_bf16_gemm"]["value"] == 0.8 and targets["tile_bf16_vs_bf16_gemm"]["met"]
    assert targets["train_step_bf16_speedup_crop128"] == {"value": 1.5, "bar": 1.8, "met": False}
    assert targets["train_step_bf16_speedup_crop256"]["met"]
    assert targets["image_2048_seconds"]["met"] and targets["image_2048_vs_whole_image_pass"]["met"]
    assert np.isclose(targets["image_2048_seconds"]["value"], 1.4)
