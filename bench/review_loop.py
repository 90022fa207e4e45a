"""The review-loop benchmark: does correcting a drifted tool's images win its accuracy back?

An engineer meets a tool profile the production model never saw ("drifted": inverted material
contrast, dark, heavy charging). For N = 0, 10, 25, 50 reviewed images, the model's predictions
are corrected with the true layouts (stored as corrected pairs exactly as ``loop import-pairs``
stores them, same 80/20 train/holdout rule), then a fine-tune is queued as **Fine-tune now**
queues it and run by the real background worker process, gated, and promoted or rejected. After
every step the production model (and the candidate) is scored on two held-out sets the loop never
trains on: drifted images and images of the original tool profiles.

Run: ``.venv/bin/python bench/review_loop.py`` (default model, ~16 min on 2 CPU cores) → prints
JSON and writes bench/results/review_loop.json and review_loop.png. ``--model DIR --counts 0,4
--finetune max_steps=5 …`` gives a quick run (tests use it with a tiny model).

Target (issue 6): at N = 50 at least 80 % of the IoU gap between drifted and original data is
recovered, and IoU on original data drops by at most 0.005.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from loop.bootstrap import install_model
from loop.finetune import finetune_config, request_finetune, set_finetune_config, with_overrides
from loop.pairs import import_pairs
from loop.triggers import set_trigger_settings
from loop.worker import spawn_worker, worker_pid
from semgan.evaluate import evaluate_folder, predictor_method
from semgan.infer import Predictor
from semgan.semsim import TRAINING_PROFILES
from semgan.synth import resolve_profiles, write_dataset
from store import Store

RESULTS = Path(__file__).resolve().parent / "results"
DRIFTED = "drifted"
METRICS = ("iou", "epe_mean_nm", "epe_p95_nm", "cd_abs_error_nm", "ssim")
TARGET_RECOVERY = 0.8
TARGET_ORIGINAL_DROP = 0.005
SEEDS = {"pool": 41, "drifted_test": 42, "original_test": 43}


def make_data(root: Path, pool: int, test_count: int, size: int, nm_per_px: float) -> dict:
    """The drifted images to review, and the two held-out test sets (all synthetic)."""
    drifted = resolve_profiles(DRIFTED)
    original = resolve_profiles(",".join(TRAINING_PROFILES))
    sets = {"pool": (pool, drifted), "drifted_test": (test_count, drifted),
            "original_test": (test_count, original)}
    for name, (count, profiles) in sets.items():
        write_dataset(root / name, count, size=size, nm_per_px=nm_per_px, profiles=profiles,
                      seed=SEEDS[name])
    return {name: root / name for name in sets}


def chunk_folder(pool: Path, start: int, stop: int, out: Path) -> tuple[Path, Path]:
    """SEM and layout folders holding pool items ``start:stop`` (what the engineer corrected)."""
    items = json.loads((pool / "manifest.json").read_text())["items"][start:stop]
    sem_dir, layout_dir = out / "sem", out / "layout"
    for folder in (sem_dir, layout_dir):
        folder.mkdir(parents=True, exist_ok=True)
    for item in items:
        shutil.copy2(pool / item["sem"], sem_dir / Path(item["sem"]).name)
        shutil.copy2(pool / item["layout"], layout_dir / Path(item["layout"]).name)
    return sem_dir, layout_dir


def score(model_dir: Path, data: dict) -> dict:
    """Mean metrics of one model on both held-out sets."""
    predictor = Predictor.from_dir(model_dir)
    scores = {}
    for name in ("drifted_test", "original_test"):
        result = evaluate_folder(data[name], {"model": predictor_method(predictor)})
        overall = result["methods"]["model"]["overall"]
        # One image whose features are all missed makes the mean EPE ∞; the median per-image
        # EPE and the count of such images say more about a tool the model is learning.
        epe = [float(row["epe_mean_nm"]) for row in result["methods"]["model"]["rows"]]
        scores[name.removesuffix("_test")] = {
            **{key: round(float(overall[key]), 4) for key in METRICS},
            "epe_median_nm": round(float(np.median(epe)), 4) if epe else math.nan,
            "images_without_epe": sum(not math.isfinite(value) for value in epe)}
    return scores


def run_job(store: Store, reason: str, timeout_s: float) -> dict:
    """Queue a fine-tune as the button does, let the background worker run it, return the job."""
    job = request_finetune(store, "manual", reason=reason)
    started = time.perf_counter()
    spawn_worker(store.workspace)
    while True:
        job = store.get_job(job.id)
        if job.status in ("succeeded", "failed", "cancelled"):
            break
        if time.perf_counter() - started > timeout_s:
            raise TimeoutError(f"fine-tune job {job.id} still {job.status} after {timeout_s} s")
        time.sleep(2)
    result = job.result or {}
    summary = result.get("summary") or {}
    return {"job_id": job.id, "status": job.status, "error": job.error,
            "decision": result.get("decision"), "reason": result.get("reason"),
            "candidate_version": result.get("candidate_version"),
            "wall_seconds": round(time.perf_counter() - started, 1),
            "steps": summary.get("steps"), "train_seconds": summary.get("train_seconds"),
            "stop_reason": summary.get("stop_reason")}


def stop_worker(workspace: Path, wait_s: float = 10.0) -> None:
    """End the bench workspace's idle background worker instead of leaving it for its timeout."""
    pid = worker_pid(workspace)
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait_s
    while worker_pid(workspace) is not None and time.monotonic() < deadline:
        time.sleep(0.2)


def summarise(rows: list[dict]) -> dict:
    """IoU gap recovered and the drop on original data, per N, against N = 0."""
    base = rows[0]["production"]
    gap = base["original"]["iou"] - base["drifted"]["iou"]
    summary = {"iou_gap_at_0": round(gap, 4), "per_count": []}
    for row in rows:
        production = row["production"]
        recovered = (production["drifted"]["iou"] - base["drifted"]["iou"]) / gap if gap > 0 \
            else float("nan")
        drop = base["original"]["iou"] - production["original"]["iou"]
        summary["per_count"].append({"n": row["n"], "gap_recovered": round(recovered, 4),
                                     "original_iou_drop": round(drop, 4)})
    last = summary["per_count"][-1]
    summary["target"] = {"n": last["n"], "min_gap_recovered": TARGET_RECOVERY,
                         "max_original_iou_drop": TARGET_ORIGINAL_DROP,
                         "met": bool(last["gap_recovered"] >= TARGET_RECOVERY
                                     and last["original_iou_drop"] <= TARGET_ORIGINAL_DROP)}
    return summary


def _series(rows: list[dict], model: str, data: str, key: str) -> tuple[list, list]:
    """(N, value) of ``model`` ("production"/"candidate") where it was scored; ±inf → NaN."""
    points = [(row["n"], row[model][data][key]) for row in rows if row.get(model)]
    return [n for n, _ in points], [v if v is not None and math.isfinite(v) else math.nan
                                    for _, v in points]


def plot(rows: list[dict], out: Path) -> None:
    """Held-out IoU and EPE (drifted, original) of production against N, fine-tune wall time."""
    counts = [row["n"] for row in rows]
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    styles = {"drifted": ("tab:blue", "o"), "original": ("tab:orange", "s")}
    for axis, key, label in ((axes[0], "iou", "IoU"),
                             (axes[1], "epe_median_nm", "median per-image EPE (nm)")):
        for data, (colour, marker) in styles.items():
            axis.plot(*_series(rows, "production", data, key), marker=marker, color=colour,
                      label=f"production, {data} data")
            axis.plot(*_series(rows, "candidate", data, key), "x", color=colour, markersize=9,
                      label=f"candidate, {data} data")
            missing = [n for n, v in zip(*_series(rows, "production", data, key), strict=True)
                       if math.isnan(v)]
            if missing:
                axis.annotate(f"{data}: ∞ at N = {', '.join(map(str, missing))} "
                              "(no edge found)", (0.02, 0.6), xycoords="axes fraction",
                              fontsize=8, va="top", color=colour)
        axis.set(xlabel="corrected drifted images N", ylabel=label, xticks=counts)
        axis.grid(alpha=0.3)
    missed = {data: "/".join(str(row["production"][data].get("images_without_epe", "?"))
                             for row in rows if row.get("production")) for data in styles}
    axes[1].set_title("images with EPE ∞ (a feature missed), N = " + "/".join(map(str, counts))
                      + f"\ndrifted {missed['drifted']}, original {missed['original']}", fontsize=9)
    axes[0].set_ylim(-0.02, 1.02)
    axes[0].legend(fontsize=7, loc="center right")
    jobs = [row for row in rows if row.get("job")]
    axes[2].bar([str(row["n"]) for row in jobs], [row["job"]["wall_seconds"] for row in jobs],
                color=["tab:green" if row["job"]["decision"] == "promote" else "tab:red"
                       for row in jobs])
    axes[2].set(xlabel="N", ylabel="fine-tune job wall time (s)",
                title="green: promoted, red: rejected")
    figure.suptitle("review loop on a drifted tool profile (held-out sets)")
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)


def finite(value: object) -> object:
    """JSON-safe copy: NaN and ±inf (e.g. EPE with no predicted edge) become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    return value


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print and write the JSON (and the PNG)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", help="starting production model")
    parser.add_argument("--counts", default="0,10,25,50", help="cumulative N, comma separated")
    parser.add_argument("--test-count", type=int, default=40, help="images per held-out set")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--nm-per-px", type=float, default=4.0)
    parser.add_argument("--finetune", nargs="*", default=[], metavar="KEY=VALUE",
                        help="fine-tune config overrides (as `loop finetune --set`)")
    parser.add_argument("--workspace", help="keep the workspace here (default: a temp folder)")
    parser.add_argument("--out", default=str(RESULTS), help="folder for the JSON and the PNG")
    parser.add_argument("--job-timeout", type=float, default=1800.0)
    args = parser.parse_args(argv)
    counts = sorted({int(c) for c in args.counts.split(",")})
    if counts[0] != 0:
        counts = [0, *counts]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(args.workspace or tempfile.mkdtemp(prefix="semgan-review-loop-"))
    started = time.perf_counter()
    data = make_data(root / "bench_data", max(counts), args.test_count, args.size,
                     args.nm_per_px)
    rows = []
    with Store.open(root / "workspace") as store:
        install_model(store, args.model)
        set_trigger_settings(store, auto_trigger=False)  # only the bench's own jobs run
        config = with_overrides(finetune_config(store), args.finetune)
        set_finetune_config(store, config)
        previous = 0
        for n in counts:
            row: dict = {"n": n}
            if n > previous:
                sem_dir, layout_dir = chunk_folder(data["pool"], previous, n,
                                                   root / "reviewed" / f"n{n}")
                report = import_pairs(store, sem_dir, layout_dir, args.nm_per_px,
                                      tool=DRIFTED, author="review-loop bench")
                counts_now = store.counts()
                row["pairs"] = {"imported": len(report.imported), "skipped": len(report.skipped),
                                "train": counts_now.train_pairs,
                                "holdout": counts_now.holdout_pairs}
                row["job"] = run_job(store, f"review-loop bench N={n}", args.job_timeout)
                candidate = row["job"]["candidate_version"]
                if candidate is not None:
                    model = store.get_model(candidate)
                    row["candidate"] = score(store.workspace / model.path, data)
            production = store.production_model()
            row["production_version"] = production.version
            row["production"] = score(store.workspace / production.path, data)
            rows.append(row)
            print(json.dumps(finite(row)), flush=True)
            previous = n
        stop_worker(store.workspace)
    result = {"bench": "review_loop", "model": args.model, "counts": counts,
              "test_count": args.test_count, "size": args.size, "nm_per_px": args.nm_per_px,
              "finetune_config": config.to_dict(), "rows": rows, "summary": summarise(rows),
              "wall_seconds": round(time.perf_counter() - started, 1),
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "python": platform.python_version()},
              "workspace": str(root) if args.workspace else None}
    (out / "review_loop.json").write_text(json.dumps(finite(result), indent=2) + "\n")
    plot(rows, out / "review_loop.png")
    print(json.dumps(finite(result["summary"]), indent=2))
    if not args.workspace:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
