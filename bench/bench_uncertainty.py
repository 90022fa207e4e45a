"""Fit and measure the per-image uncertainty (semgan.uncertainty) on the shipped default model.

Held-out synthetic pairs from the training tools (clean, noisy, aged) and from tools the model
never saw ("drifted" plus four foreign profiles below) are predicted under the 8 dihedral
transforms; features are cached, a logistic model is fitted on the fit seeds and AUROC for
IoU < 0.9 is reported per tool on the test seeds, with the top-10 counts against random.

    python -m bench.bench_uncertainty --count 30            # features + fit + report
    python -m bench.bench_uncertainty --count 30 --write    # also ship semgan/weights/uncertainty.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from semgan.infer import LayoutPrediction, Predictor
from semgan.metrics import iou
from semgan.semsim import PROFILES
from semgan.semsim.foreign import FOREIGN_TOOLS
from semgan.synth import make_pair
from semgan.uncertainty import dihedral, image_features, reference_of, undo_dihedral
from semgan.uncertainty_model import (
    DEFAULT_UNCERTAINTY_FILE,
    TRANSFORM_SETS,
    auroc,
    fit_logistic,
    save_model,
)

WRONG_BELOW_IOU = 0.9
# Fit (and feature choice) on two seeds, figures on two others; 400 was generated only for them.
# 500/600 re-measured the shipped score once (2026-12-02); 700/800 were first scored after the
# feature sets below were fixed and chosen on the fit seeds.
FIT_SEEDS, TEST_SEEDS = (100, 200), (300, 400)
FRESH_SEEDS = ((500, 600), (700, 800))
RESULTS = Path(__file__).resolve().parent / "results"
# Chosen by 5-fold cross-validation on the fit seeds alone (best overall AUROC + worst tool's
# AUROC among sets with the empty/full flag the Review reasons need): TTA outline stability, the
# generator's confidence, an empty/full or over-dense layout, a sparse pattern and blurred edges.
# Drift, the edge check's flips and missed SEM edges added nothing once these were in.
FEATURES = ("tta_iou_loss", "low_confidence", "extreme_fill", "mask_fraction", "dense_fill", "edge_blur")
# Sets compared by ``select`` (5-fold cross-validation on the fit seeds, same criterion).
CANDIDATES = {
    "shipped": FEATURES,
    "+outline_ratio": (*FEATURES, "outline_ratio"),
    "edge_loss for edge_blur": (*FEATURES[:-1], "edge_loss"),
    "+edge_loss": (*FEATURES, "edge_loss"),
}
FOLDS = 5


# The foreign tools of the review-loop family this score was fitted with (semgan.semsim.foreign).
FOREIGN = {name: FOREIGN_TOOLS[name].profile
           for name in ("edge_only", "dark_features", "wide_beam", "low_dose")}
TOOLS = {**{name: PROFILES[name] for name in ("clean", "noisy", "aged", "drifted")}, **FOREIGN}


def measure(predictor: Predictor, tool: str, seed: int, index: int, maps_dir: Path) -> dict:
    """Predict one generated pair under the 8 transforms; save the maps, return its IoU and flags."""
    pair = make_pair(index, size=256, nm_per_px=predictor.nm_per_px, profiles=[TOOLS[tool]], seed=seed)
    started = time.perf_counter()
    base = predictor.predict(pair.sem_image, predictor.nm_per_px)
    maps = [base.probability]
    for k in range(1, 8):
        out = predictor.predict(dihedral(pair.sem_image, k), predictor.nm_per_px)
        maps.append(undo_dihedral(out.probability, k))
    quantised = np.rint(np.stack([*maps, base.confidence]) * 255).astype(np.uint8)
    np.savez_compressed(maps_dir / f"{tool}_{seed}_{index}.npz", maps=quantised)
    return {"tool": tool, "seed": seed, "index": index, "iou": iou(base.mask, pair.layout_mask),
            "seconds": time.perf_counter() - started, "flipped_fraction": base.flipped_fraction,
            "edge_check_skipped": base.edge_check_skipped}


def features_of(predictor: Predictor, row: dict, maps_dir: Path, transforms: int) -> dict[str, float]:
    """The uncertainty features of a measured row, from its saved maps."""
    pair = make_pair(row["index"], size=256, nm_per_px=predictor.nm_per_px, profiles=[TOOLS[row["tool"]]],
                     seed=row["seed"])
    stored = np.load(maps_dir / f"{row['tool']}_{row['seed']}_{row['index']}.npz")["maps"] / 255.0
    maps, confidence = stored[:8].astype(np.float32), stored[8].astype(np.float32)
    base = LayoutPrediction(maps[0] > 0.5, maps[0], confidence, 0.0,
                            flipped_fraction=row["flipped_fraction"],
                            edge_check_skipped=row["edge_check_skipped"])
    return image_features(maps[list(TRANSFORM_SETS[transforms])], base, pair.sem_image,
                          reference_of(predictor), predictor.nm_per_px)


def collect(predictor: Predictor, count: int, test_count: int, cache: Path, maps_dir: Path) -> list[dict]:
    """``count`` rows per tool on each fit seed, ``test_count`` on each test seed (cached)."""
    maps_dir.mkdir(parents=True, exist_ok=True)
    rows = json.loads(cache.read_text()) if cache.is_file() else []
    done = {(r["tool"], r["seed"], r["index"]) for r in rows}
    later = (*TEST_SEEDS, *(seed for group in FRESH_SEEDS for seed in group))
    for seed, number in (*((seed, count) for seed in FIT_SEEDS), *((seed, test_count) for seed in later)):
        for tool in TOOLS:
            for index in range(number):
                if (tool, seed, index) not in done:
                    rows.append(measure(predictor, tool, seed, index, maps_dir))
            cache.write_text(json.dumps(rows))
            print(f"seed {seed} {tool}: {len(rows)} rows", flush=True)
    return [r for r in rows if r["index"] < (count if r["seed"] in FIT_SEEDS else test_count)]


def _criterion(rows: list[dict], scores: np.ndarray) -> tuple[float, float]:
    """(overall AUROC, the worst tool's AUROC among tools with both classes)."""
    wrong = np.array([r["iou"] < WRONG_BELOW_IOU for r in rows])
    tools = np.array([r["tool"] for r in rows])
    per_tool = [auroc(scores[tools == t], wrong[tools == t]) for t in TOOLS]
    return auroc(scores, wrong), float(np.nanmin(per_tool))


def select(rows: list[dict], transforms: int, l2: float = 1.0) -> dict[str, tuple[float, float]]:
    """Out-of-fold (overall, worst tool) AUROC of each candidate set on the fit seeds alone."""
    fit = [r for r in rows if r["seed"] in FIT_SEEDS]
    fold = np.arange(len(fit)) % FOLDS
    key, wrong = f"features_{transforms}", [r["iou"] < WRONG_BELOW_IOU for r in fit]
    out = {}
    for name, features in CANDIDATES.items():
        scores = np.zeros(len(fit))
        for k in range(FOLDS):
            train = np.nonzero(fold != k)[0]
            model = fit_logistic([fit[i][key] for i in train], [wrong[i] for i in train], features,
                                 l2, transforms)
            scores[fold == k] = [model.score(fit[i][key]) for i in np.nonzero(fold == k)[0]]
        out[name] = _criterion(fit, scores)
    return out


def report(rows: list[dict], transforms: int, features: tuple[str, ...], l2: float = 1.0,
           test_seeds: tuple[int, ...] = TEST_SEEDS) -> dict:
    """Fit on the fit seeds, score ``test_seeds``: AUROC per tool and overall, top-10 counts."""
    fit = [r for r in rows if r["seed"] in FIT_SEEDS]
    test = [r for r in rows if r["seed"] in test_seeds]
    key = f"features_{transforms}"
    note = (f"logistic regression (L2 {l2}) of IoU < {WRONG_BELOW_IOU} on {len(fit)} synthetic pairs "
            f"(seeds {', '.join(map(str, FIT_SEEDS))}, tools {', '.join(TOOLS)}) predicted by the default model; "
            f"bench/bench_uncertainty.py")
    model = fit_logistic([r[key] for r in fit], [r["iou"] < WRONG_BELOW_IOU for r in fit], features,
                         l2, transforms, note)
    scores = np.array([model.score(r[key]) for r in test])
    wrong = np.array([r["iou"] < WRONG_BELOW_IOU for r in test])
    confidence = np.array([r[key]["low_confidence"] for r in test])
    per_tool = {}
    for tool in TOOLS:
        pick = np.array([r["tool"] == tool for r in test])
        seeds = np.array([r["seed"] for r in test])
        ranked = np.argsort(-scores[pick], kind="stable")[:10]
        per_tool[tool] = {"n": int(pick.sum()), "wrong": int(wrong[pick].sum()),
                          "auroc": auroc(scores[pick], wrong[pick]),
                          "auroc_by_seed": {int(seed): auroc(scores[pick & (seeds == seed)],
                                                             wrong[pick & (seeds == seed)])
                                            for seed in test_seeds},
                          "auroc_confidence": auroc(confidence[pick], wrong[pick]),
                          "top10_wrong": int(wrong[pick][ranked].sum()),
                          "random10_wrong": float(10 * wrong[pick].mean())}
    top = np.argsort(-scores, kind="stable")[:10]
    return {"transforms": transforms, "features": list(features), "model": model,
            "fit_seeds": list(FIT_SEEDS), "test_seeds": list(test_seeds), "per_tool": per_tool,
            "auroc_all": auroc(scores, wrong), "auroc_confidence_all": auroc(confidence, wrong),
            "top10_wrong": int(wrong[top].sum()),
            "random10_wrong": float(10 * wrong.mean()), "n_test": len(test), "wrong_test": int(wrong.sum())}


def main() -> None:
    """Collect, fit, print; --write ships the coefficients."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=30, help="pairs per tool per seed")
    parser.add_argument("--test-count", type=int, help="pairs per tool on each test seed (default --count)")
    parser.add_argument("--transforms", type=int, choices=tuple(TRANSFORM_SETS), default=4)
    parser.add_argument("--write", action="store_true", help="write semgan/weights/uncertainty.json")
    parser.add_argument("--maps", type=Path, default=Path("/tmp/semgan_uncertainty"),
                        help="folder for the predicted maps and measured rows (a cache)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    RESULTS.mkdir(exist_ok=True)
    predictor = Predictor.from_dir("default", device="cpu")
    rows = collect(predictor, args.count, args.test_count or args.count, args.maps / "rows.json",
                   args.maps)
    for row in rows:
        row[f"features_{args.transforms}"] = features_of(predictor, row, args.maps, args.transforms)
    chosen_by = select(rows, args.transforms)
    chosen = max(chosen_by, key=lambda name: sum(chosen_by[name]))
    print("cross-validated (overall, worst tool) AUROC on the fit seeds:", json.dumps(chosen_by))
    result = report(rows, args.transforms, CANDIDATES[chosen])
    model = result.pop("model")
    result["selection"] = {"candidates": {name: list(CANDIDATES[name]) for name in CANDIDATES},
                           "cross_validated": chosen_by, "chosen": chosen}
    result["fresh"] = [{k: v for k, v in report(rows, args.transforms, CANDIDATES[chosen],
                                                test_seeds=group).items() if k != "model"}
                       for group in FRESH_SEEDS]
    print(json.dumps({**result, "weights": dict(zip(model.features, model.weights, strict=True))}, indent=1))
    (RESULTS / "uncertainty.json").write_text(json.dumps(result, indent=1) + "\n")
    if args.write:
        save_model(model, DEFAULT_UNCERTAINTY_FILE)


if __name__ == "__main__":
    main()
