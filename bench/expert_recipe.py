"""Choose the tool-expert recipe on development tools that are not in the foreign-tool family.

For each development tool (``drifted`` and two variants defined here only), N corrected pairs
(80/20 train/held-out) and 40 test images are simulated; production's shared generator is scored
zero-shot, then each candidate recipe trains an expert from it (``loop.finetune.expert``) and the
from-scratch ResNet-18 U-Net peer trains for the same wall time as the first recipe. The family
of ``bench/review_loop.py`` is scored only after the recipe is fixed here.

    .venv/bin/python -m bench.expert_recipe --pairs 50 --budget 150   # → bench/results/expert_recipe.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from bench.peer import SIZE_MULTIPLE, ResNet18UNet
from loop.finetune.expert import ExpertRecipe, holdout_iou, train_expert
from loop.pair_folders import resample_pair
from semgan.calibration import fit_tool, reference_set
from semgan.checkpoint import load_checkpoint
from semgan.infer import resolve_model
from semgan.semsim import PROFILES, TRAINING_PROFILES, ToolProfile
from semgan.semsim.foreign import ForeignTool, _variant
from semgan.synth import make_pair

RESULTS = Path(__file__).resolve().parent / "results"
FIELD_NM = 1024.0  # every tool's images span the same field; finer pixels give bigger images

DEV_TOOLS = {
    "drifted": ForeignTool(PROFILES["drifted"]),
    "dev_soft": ForeignTool(_variant("dev_soft", "low contrast, blurred, mid dose",
                                     substrate_level=(0.24, 0.28), feature_level=(0.34, 0.38),
                                     beam_sigma_nm=(4.0, 8.0), dose_electrons_per_px=(8.0, 20.0))),
    "dev_bright_bg": ForeignTool(_variant("dev_bright_bg", "bright substrate, weak bloom, 3 nm/px",
                                          substrate_level=(0.45, 0.52), feature_level=(0.25, 0.30),
                                          edge_bloom_gain=(0.2, 0.4)), nm_per_px=3.0),
}


def tool_pairs(tool: ForeignTool, count: int, seed: int, model_nm: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` simulated (SEM [0, 1], mask) pairs of ``tool`` resampled to the model's nm/px."""
    size = round(FIELD_NM / tool.nm_per_px)
    pairs = []
    for index in range(count):
        pair = make_pair(index, size=size, nm_per_px=tool.nm_per_px, profiles=[tool.profile], seed=seed)
        sem, mask = resample_pair(pair.sem_image, pair.layout_mask, tool.nm_per_px, model_nm)
        pairs.append((sem.astype(np.float32) / 255.0, mask))
    return pairs


def profile_pairs(profiles: list[ToolProfile], count: int, seed: int, nm: float) -> list:
    """Pairs of the training tools (the calibration reference)."""
    out = []
    for index in range(count):
        pair = make_pair(index, size=256, nm_per_px=nm, profiles=profiles, seed=seed)
        out.append((pair.sem_image.astype(np.float32) / 255.0, pair.layout_mask))
    return out


def calibrated(pairs: list, tool_name: str, reference, train: list) -> tuple[list, dict]:
    """Pairs mapped by the tool's grey-level calibration when its levels are far from the reference."""
    fitted = fit_tool(tool_name, train, reference)
    ref = reference.reference_levels
    shift = max(abs(fitted.levels.pattern - ref.pattern), abs(fitted.levels.background - ref.background))
    info = {"gain": round(fitted.gain, 3), "offset": round(fitted.offset, 3), "shift": round(shift, 3)}
    if shift <= 0.1:
        return pairs, {**info, "applied": False}
    return [(fitted.apply(s), m) for s, m in pairs], {**info, "applied": True}


def run_tool(name: str, tool: ForeignTool, args: argparse.Namespace, model_dir: Path,
             reference) -> dict:
    checkpoint = load_checkpoint(model_dir, "cpu", generators_only=True)
    nm = checkpoint.card.pixel_size(checkpoint.config)
    pool = tool_pairs(tool, args.pairs, 51, nm)
    test = tool_pairs(tool, args.test, 52, nm)
    n_hold = max(1, round(0.2 * len(pool)))
    train, hold = pool[n_hold:], pool[:n_hold]
    raw = {"train": train, "hold": hold, "test": test}
    _cal_train, cal_info = calibrated(train, name, reference, train)
    cal = {key: calibrated(value, name, reference, train)[0] for key, value in raw.items()}
    row: dict = {"tool": name, "train_pairs": len(train), "holdout_pairs": len(hold),
                 "calibration": cal_info}
    device = torch.device("cpu")
    generator = checkpoint.models.sem_to_layout
    row["zero_shot_iou"] = holdout_iou(generator, test, "tanh", 32, device)
    row["zero_shot_calibrated_iou"] = holdout_iou(generator, cal["test"], "tanh", 32, device)
    budget = args.budget
    recipes = {
        "crop256_lr2e-4_cal": (ExpertRecipe(crop=256, lr=2e-4, time_budget_s=budget), True),
        "crop128_lr2e-4_cal": (ExpertRecipe(crop=128, batch=8, lr=2e-4, time_budget_s=budget), True),
        "crop256_lr5e-4_cal": (ExpertRecipe(crop=256, lr=5e-4, time_budget_s=budget), True),
        "crop256_lr2e-4_raw": (ExpertRecipe(crop=256, lr=2e-4, time_budget_s=budget), False),
        "no_dropout": (ExpertRecipe(crop=256, lr=2e-4, time_budget_s=budget, dropout=False), True),
        "no_dropout_bce": (ExpertRecipe(crop=256, lr=2e-4, time_budget_s=budget, dropout=False,
                                        loss="bce"), True),
        "no_dropout_bce_lr5e-4": (ExpertRecipe(crop=256, lr=5e-4, time_budget_s=budget,
                                               dropout=False, loss="bce"), True),
    }
    chosen = args.recipes.split(",") if args.recipes else list(recipes)
    recipes = {k: recipes[k] for k in chosen}
    row["recipes"] = {}
    wall = None
    for label, (recipe, use_cal) in recipes.items():
        data = cal if use_cal else raw
        model = load_checkpoint(model_dir, "cpu", generators_only=True).models.sem_to_layout.float()
        result = train_expert(model, data["train"], data["hold"], recipe)
        model.load_state_dict(result.state)
        wall = wall or result.seconds
        row["recipes"][label] = {"test_iou": holdout_iou(model, data["test"], "tanh", 32, device),
                                 "holdout_start": result.start_iou, "holdout_best": result.best_iou,
                                 "best_step": result.best_step, "steps": result.steps,
                                 "seconds": result.seconds, "stop": result.stop_reason}
        print(name, label, row["recipes"][label], flush=True)
    torch.manual_seed(0)
    peer = ResNet18UNet()
    recipe = ExpertRecipe(crop=256, lr=1e-3, time_budget_s=wall, max_steps=100000, patience=10**6)
    result = train_expert(peer, raw["train"], raw["hold"], recipe, kind="logits", multiple=SIZE_MULTIPLE)
    peer.load_state_dict(result.state)
    row["peer"] = {"test_iou": holdout_iou(peer, raw["test"], "logits", SIZE_MULTIPLE, device),
                   "steps": result.steps, "seconds": result.seconds, "best_step": result.best_step}
    print(name, "peer", row["peer"], flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--pairs", type=int, default=50)
    parser.add_argument("--test", type=int, default=40)
    parser.add_argument("--budget", type=float, default=150.0)
    parser.add_argument("--tools", default=",".join(DEV_TOOLS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--recipes", default="", help="comma-separated recipe names (all)")
    parser.add_argument("--name", default="expert_recipe", help="results file name")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model_dir = resolve_model(args.model)
    reference = reference_set(profile_pairs([PROFILES[p] for p in TRAINING_PROFILES], 60, 53, 4.0))
    started = time.perf_counter()
    rows = [run_tool(name, DEV_TOOLS[name], args, model_dir, reference) for name in args.tools.split(",")]
    out = {"bench": "expert_recipe", "args": vars(args), "rows": rows,
           "wall_seconds": round(time.perf_counter() - started, 1),
           "machine": {"cpu_threads": args.threads, "platform": platform.platform()}}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
