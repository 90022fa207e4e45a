"""bf16 against fp32, in one run: inference masks on the held-out test set, and a short fine-tune.

Run: ``.venv/bin/python -m bench.bench_precision [--steps 120] [--quick]`` → prints JSON and
writes bench/results/precision.json.

- **Inference guard**: the shipped default predicts the held-out test set (the README's recipe:
  300 images, every training tool, hold-out layouts, seed 2) in fp32 and in bf16 with the app's
  tiling; reported: the share of pixels whose mask agrees, and IoU in each precision, overall and
  per tool. The issue's bar: agreement ≥ 99.9 %, |ΔIoU| ≤ 0.001.
- **Training**: the same fine-tune (generators from the shipped default, LR ÷ 10, a tool the
  default knows, aged by default) runs three times: fp32 seed 0, fp32 seed 1, bf16 seed 0. The seed-to-seed
  difference of the fp32 runs is the noise the bf16-vs-fp32 difference is compared with — for the
  loss curve (mean |Δ| of the 10-step-smoothed L1 term) and for the held-out IoU afterwards.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from semgan.config import ExperimentConfig
from semgan.data import PairedDataset, read_manifest
from semgan.device import cpu_has_native_bf16
from semgan.imageio import load_image
from semgan.infer import DEFAULT_MODEL_DIR, Predictor
from semgan.metrics import iou
from semgan.semsim import PROFILES
from semgan.synth import write_dataset
from semgan.train.loop import fit

SHARED_LAYOUTS = Path(__file__).resolve().parents[2] / "shared" / "layouts"


def _items(data_dir: Path) -> list[tuple[np.ndarray, np.ndarray, str]]:
    manifest = read_manifest(data_dir)
    return [(np.rint(load_image(data_dir / item["sem"]).pixels * 255).astype(np.uint8),
             load_image(data_dir / item["layout"]).pixels > 0.5, item.get("profile", "?"))
            for item in manifest["items"]]


def inference_guard(data_dir: Path) -> dict:
    """fp32 vs bf16 masks of the shipped default on every item of ``data_dir``."""
    items = _items(data_dir)
    masks: dict[str, list[np.ndarray]] = {}
    seconds: dict[str, float] = {}
    for precision in ("fp32", "bf16"):
        predictor = Predictor.from_dir("default", "cpu", precision=precision)
        started = time.perf_counter()
        masks[precision] = [predictor.predict(sem).mask for sem, _, _ in items]
        seconds[precision] = round(time.perf_counter() - started, 2)
    agree = [float(np.mean(a == b)) for a, b in zip(masks["fp32"], masks["bf16"], strict=True)]
    scores = {p: [iou(m, truth) for m, (_, truth, _) in zip(masks[p], items, strict=True)] for p in masks}
    per_tool = {}
    for tool in sorted({tool for _, _, tool in items}):
        keep = [i for i, (_, _, t) in enumerate(items) if t == tool]
        per_tool[tool] = {"images": len(keep),
                          "agreement": round(float(np.mean([agree[i] for i in keep])), 6),
                          "iou_fp32": round(float(np.mean([scores["fp32"][i] for i in keep])), 5),
                          "iou_bf16": round(float(np.mean([scores["bf16"][i] for i in keep])), 5)}
    iou32, iou16 = float(np.mean(scores["fp32"])), float(np.mean(scores["bf16"]))
    return {"data": str(data_dir), "images": len(items), "pixel_agreement": round(float(np.mean(agree)), 6),
            "worst_image_agreement": round(min(agree), 6), "iou_fp32": round(iou32, 5),
            "iou_bf16": round(iou16, 5), "iou_delta": round(iou16 - iou32, 5), "seconds": seconds,
            "per_tool": per_tool, "meets_bar": bool(np.mean(agree) >= 0.999 and abs(iou16 - iou32) <= 0.001)}


def _smoothed(log: Path, key: str, window: int = 10) -> np.ndarray:
    values = [json.loads(line)[key] for line in log.read_text().splitlines() if line.strip()]
    return np.convolve(values, np.ones(window) / window, mode="valid")


def finetune_runs(work: Path, steps: int, tool: str) -> dict:
    """Three short fine-tunes of the shipped generators on ``tool``; curves and held-out IoU."""
    from loop.finetune.run import prepare_init

    train_dir, test_dir = work / "train", work / "test"
    write_dataset(train_dir, 64, size=256, profiles=[PROFILES[tool]], seed=31)
    write_dataset(test_dir, 24, size=256, profiles=[PROFILES[tool]], seed=32)
    init, _ = prepare_init(DEFAULT_MODEL_DIR, work / "init")
    base = ExperimentConfig.load(DEFAULT_MODEL_DIR / "config.json")
    test_items = _items(test_dir)
    runs = {}
    for name, precision, seed in (("fp32_seed0", "fp32", 0), ("fp32_seed1", "fp32", 1), ("bf16_seed0", "bf16", 0)):
        config = (base.replace("train", steps=steps, log_every=1, sample_every=steps, checkpoint_every=steps,
                               seed=seed, device="cpu", precision=precision)
                  .replace("data", crop_size=128, batch_size=4))
        dataset = PairedDataset.for_training(train_dir, config.data, seed=seed, crop_size=128)
        out = work / name
        result = fit(config, dataset, out, init_from=init, lr_scale=0.1, resume=False, handle_signals=False)
        predictor = Predictor.from_dir(out, "cpu", precision="fp32")  # one precision to score every run
        held_out = float(np.mean([iou(predictor.predict(sem).mask, truth) for sem, truth, _ in test_items]))
        runs[name] = {"seconds_per_step": round(result.wall_seconds / steps, 3), "held_out_iou": round(held_out, 5),
                      "final_g_l1_smoothed": round(float(_smoothed(out / "train_log.jsonl", "g_l1")[-1]), 5),
                      "curve": out / "train_log.jsonl"}
    curves = {name: _smoothed(run.pop("curve"), "g_l1") for name, run in runs.items()}
    seed_noise = float(np.mean(np.abs(curves["fp32_seed0"] - curves["fp32_seed1"])))
    bf16_gap = float(np.mean(np.abs(curves["bf16_seed0"] - curves["fp32_seed0"])))
    iou_noise = abs(runs["fp32_seed0"]["held_out_iou"] - runs["fp32_seed1"]["held_out_iou"])
    iou_gap = abs(runs["bf16_seed0"]["held_out_iou"] - runs["fp32_seed0"]["held_out_iou"])
    return {"tool": tool, "steps": steps, "train_pairs": 64, "held_out_pairs": 24, "runs": runs,
            "g_l1_curve_mean_abs_diff": {"fp32_seed0_vs_seed1": round(seed_noise, 5),
                                         "bf16_vs_fp32_seed0": round(bf16_gap, 5)},
            "held_out_iou_abs_diff": {"fp32_seed0_vs_seed1": round(iou_noise, 5),
                                      "bf16_vs_fp32_seed0": round(iou_gap, 5)},
            "step_speedup_bf16": round(runs["fp32_seed0"]["seconds_per_step"]
                                       / runs["bf16_seed0"]["seconds_per_step"], 2),
            "within_noise": bool(bf16_gap <= 2 * seed_noise and iou_gap <= max(2 * iou_noise, 0.005))}


def main(argv: list[str] | None = None) -> dict:
    """Measure and report."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=120, help="fine-tune steps per run (default 120)")
    parser.add_argument("--count", type=int, default=300, help="test-set images (default 300)")
    parser.add_argument("--tool", default="aged", choices=sorted(PROFILES),
                        help="the fine-tune's tool (default aged: the shipped model is right on it, so a "
                             "loss of accuracy would show; on drifted 80 steps at LR / 10 learn nothing yet)")
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--skip-inference", action="store_true",
                        help="keep the inference figures of an earlier run's precision.json")
    parser.add_argument("--threads", type=int, help="torch CPU threads (1 is robust on a busy machine)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(__file__).resolve().parent / "results" / "precision.json"
    results: dict = json.loads(out.read_text()) if args.skip_inference and out.is_file() else {}
    results.update(cpu_native_bf16=cpu_has_native_bf16(), torch_threads=torch.get_num_threads())
    with tempfile.TemporaryDirectory(prefix="bench_precision_") as tmp:
        work = Path(tmp)
        if not args.skip_inference:
            layouts = SHARED_LAYOUTS if SHARED_LAYOUTS.is_dir() else None
            test_dir = work / "testset"
            write_dataset(test_dir, args.count, size=256, seed=2, layouts=layouts,
                          profiles=[PROFILES[p] for p in ("clean", "noisy", "aged")],
                          layout_split="holdout" if layouts else None, real_fraction=0.5 if layouts else 0.0)
            results["inference"] = inference_guard(test_dir)
            results["inference"]["real_layouts"] = layouts is not None
            print(json.dumps(results, indent=2), flush=True)
        if not args.skip_training:
            results["training"] = finetune_runs(work, args.steps, args.tool)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
