"""Model throughput: per-tile inference latency, training images/s, achieved vs. matmul GFLOP/s.

Run: ``.venv/bin/python -m bench.bench_model [--device auto] [--quick]`` → prints JSON and writes
bench/results/model.json. All figures come from one run on one machine (the default preset
unless noted); compare the achieved generator GFLOP/s with the plain fp32 matmul GFLOP/s
measured in the same run, not with other machines.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from semgan.config import PRESETS
from semgan.device import describe_device, make_precision, pick_device
from semgan.infer import Predictor
from semgan.model import build_models
from semgan.train.step import Networks, build_optimizers, train_step

TILE = 256


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], object], device: torch.device, reps: int, min_seconds: float) -> list[float]:
    """Seconds per call over at least ``reps`` calls and ``min_seconds``, after one warm-up call."""
    fn()
    _sync(device)
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < reps or time.perf_counter() - started < min_seconds:
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


def matmul_gflops(device: torch.device, n: int = 2048, seconds: float = 2.0) -> float:
    """Plain fp32 n×n matmul throughput: the yardstick for the model's achieved GFLOP/s."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    times = _timed(lambda: a @ b, device, reps=3, min_seconds=seconds)
    return 2 * n**3 / statistics.median(times) / 1e9


def generator_flops(generator: torch.nn.Module, batch: torch.Tensor) -> int:
    """FLOPs of one forward pass, counted by torch's FlopCounterMode (convs, matmuls)."""
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        generator(batch)
    return counter.get_total_flops()


def inference(device: torch.device, reps: int, seconds: float) -> dict:
    """Per-256-tile latency of the default SEM → layout generator at batch 1 and 8."""
    config = PRESETS["default"]
    generator = build_models(config, critics=False).sem_to_layout.to(device).eval()
    results = {}
    for batch_size in (1, 8):
        batch = torch.rand(batch_size, 1, TILE, TILE, device=device) * 2 - 1
        with torch.inference_mode():
            times = _timed(lambda b=batch: generator(b), device, reps, seconds)
        median = statistics.median(times)
        flops = generator_flops(generator, batch)
        results[f"batch{batch_size}"] = {
            "ms_per_batch": round(median * 1e3, 2),
            "ms_per_batch_min": round(min(times) * 1e3, 2),
            "ms_per_tile": round(median * 1e3 / batch_size, 2),
            "tiles_per_s": round(batch_size / median, 2),
            "gflop_per_tile": round(flops / batch_size / 1e9, 3),
            "achieved_gflop_s": round(flops / median / 1e9, 1),
            "achieved_gflop_s_best": round(flops / min(times) / 1e9, 1),
            "calls": len(times),
        }
    return results


def whole_image(device: torch.device, size: int = 1024) -> dict:
    """End-to-end Predictor on a ``size``² aged-tool image at the model's pixel size (default tiling,
    the shipped weights), with and without the edge-support check, timed in the same run."""
    from semgan.semsim import PROFILES
    from semgan.synth import make_pair

    image = make_pair(0, size=size, nm_per_px=4.0, profiles=[PROFILES["aged"]], seed=5).sem_image
    checked = Predictor.from_dir("default", device=str(device))
    unchecked = Predictor.from_dir("default", device=str(device), edge_check=None)
    times = {}
    for name, predictor in (("without_edge_check", unchecked), ("with_edge_check", checked)):
        predictor.predict(image)  # warm-up
        times[name] = statistics.median(_timed(lambda p=predictor: p.predict(image), device, reps=3,
                                               min_seconds=0.0))
    return {"image_px": size, "tile": checked.tile_size, "overlap": checked.overlap,
            "seconds": round(times["with_edge_check"], 3),
            "seconds_without_edge_check": round(times["without_edge_check"], 3),
            "edge_check_overhead_ratio": round(times["with_edge_check"] / times["without_edge_check"], 3),
            "edge_flips": checked.predict(image).edge_flips}


def training(device: torch.device, crop: int, batch_size: int, steps: int) -> dict:
    """Default preset (both generators, both critics, all four losses) on random pairs."""
    config = PRESETS["default"]
    models = build_models(config).to(device).train()
    optimizers = build_optimizers(models, config.optim)
    precision = make_precision(device, config.train.amp)
    layout = (torch.rand(batch_size, 1, crop // 16, crop // 16) > 0.5).float()
    layout = torch.nn.functional.interpolate(layout, scale_factor=16) * 2 - 1
    batch = {"sem_image": (0.6 * layout + 0.1 * torch.randn_like(layout)).to(device), "layout_mask": layout.to(device)}
    networks = Networks.of(models)
    times = _timed(lambda: train_step(networks, optimizers, batch, config.loss, precision), device,
                   reps=steps, min_seconds=0.0)
    median = statistics.median(times)
    return {"crop": crop, "batch": batch_size, "seconds_per_step": round(median, 3),
            "seconds_per_step_min": round(min(times), 3),
            "images_per_s": round(batch_size / median, 2), "steps_timed": len(times),
            "precision": str(precision.dtype or torch.float32).removeprefix("torch.")}


def main(argv: list[str] | None = None) -> dict:
    """Measure and report."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (smoke run)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    reps, seconds, steps = (2, 0.0, 2) if args.quick else (5, 5.0, 5)
    results: dict = {
        "machine": {"device": describe_device(device), "cpus": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(), "processor": platform.machine(),
                    "python": platform.python_version(), "torch": torch.__version__},
        "note": ("median (and best) timings; on a shared CPU, other processes inflate them a lot: "
                 "OpenMP threads spin at barriers when a core is taken"),
        "matmul_fp32_gflop_s": round(matmul_gflops(device, seconds=max(1.0, seconds / 2)), 1),
        "inference_default_256_tile": inference(device, reps, seconds),
        "predict_1024_image": whole_image(device),
        "training_default": [training(device, 128, 4, steps), training(device, 256, 4, max(2, steps - 2))],
    }
    best = max(r["achieved_gflop_s_best"] for r in results["inference_default_256_tile"].values())
    results["generator_vs_matmul"] = round(best / results["matmul_fp32_gflop_s"], 3)
    out = Path(__file__).resolve().parent / "results" / "model.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
