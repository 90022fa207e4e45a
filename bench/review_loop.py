"""The review-loop benchmark: does correcting a new tool's images teach the model that tool?

For every tool of the foreign-tool family (``semgan.semsim.foreign``), the ``drifted`` tool and
the three tools of the independent simulator (``../shared/eval/indep_sem.py``, a check that is
never trained on or tuned to), in a fresh workspace with the shipped model: for N = 10, 25, 50
reviewed images the true layouts are imported as corrected pairs tagged with the tool (as
``loop import-pairs --tool`` stores them), a fine-tune is queued as **Fine-tune now** queues it,
run by the real background worker and gated. Production is then scored on 40 held-out images
of that tool (tagged) and on 40 held-out images of the training tools, tagged and untagged.
Beside each job, the peer: a from-scratch ResNet-18 U-Net (``bench.peer``) trained on the same
corrected pairs for the same training wall time.

    .venv/bin/python -m bench.review_loop                               # all tools
    .venv/bin/python -m bench.review_loop --tools edge_only,indep_a --name part1
    .venv/bin/python -m bench.review_loop --merge part1,part2           # → review_loop.json/.png

Targets (per tool at N = 50): IoU ≥ 0.90 and ≥ peer + 0.10; training tools lose ≤ 0.002 IoU;
the job ≤ 10 min.
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

import numpy as np
import torch

from bench.peer import SIZE_MULTIPLE, ResNet18UNet
from bench.review_loop_data import all_tools, original_data, tool_data, write_folder
from bench.review_loop_results import finite, merge_rows, write_results
from loop.bootstrap import install_model
from loop.finetune import finetune_config, request_finetune, set_finetune_config, with_overrides
from loop.finetune.expert import ExpertRecipe, train_expert
from loop.finetune.tools import group_by_tool
from loop.pair_folders import export_split, import_pairs, resample_pair
from loop.triggers import set_trigger_settings
from loop.worker import spawn_worker, worker_pid
from semgan.calibration import tool_key
from semgan.infer import Predictor
from semgan.metrics import aggregate, evaluate_pair
from semgan.model_card import ModelCard
from store import Store

RESULTS = Path(__file__).resolve().parent / "results"
COUNTS = (10, 25, 50)
METRICS = ("iou", "epe_mean_nm", "cd_abs_error_nm", "ssim")


def score(predictor: Predictor, pairs: list, nm_per_px: float, tool: str | None) -> dict:
    """Mean metrics (and median per-image EPE) of ``predictor`` on ``pairs`` tagged ``tool``."""
    rows = []
    for sem, mask, *tag in pairs:
        result = predictor.predict(sem, nm_per_px, tag[0] if tag and tool == "own" else tool)
        rows.append(evaluate_pair(result.probability, result.mask, mask, nm_per_px))
    overall = aggregate(rows)
    epe = [r["epe_mean_nm"] for r in rows]
    return {**{k: round(float(overall[k]), 4) for k in METRICS},
            "epe_median_nm": round(float(np.median(epe)), 4),
            "images_without_epe": sum(not math.isfinite(v) for v in epe)}


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
        time.sleep(1)
    result = job.result or {}
    summary = result.get("summary") or {}
    tools = summary.get("tools") or {}
    return {"job_id": job.id, "status": job.status, "error": job.error,
            "decision": result.get("decision"), "reason": result.get("reason"),
            "candidate_version": result.get("candidate_version"),
            "wall_seconds": round(time.perf_counter() - started, 1),
            "train_seconds": summary.get("train_seconds"),
            "tools": {t: {k: v for k, v in s.items() if k != "history"} for t, s in tools.items()}}


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


def share_anchors(cache: Path, workspace: Path, into_workspace: bool) -> None:
    """Reuse one tool's generated anchor sets in the next tool's workspace (same seeds, same
    content: ``loop.anchor`` checks them and regenerates on any mismatch)."""
    for name in ("anchor_train", "anchor_test"):
        source, target = (cache / name, workspace / "data" / name)
        if not into_workspace:
            source, target = target, source
        if source.is_dir() and not target.exists():
            shutil.copytree(source, target)


def run_peer(store: Store, key: str, nm_per_px: float, tile: int, seconds: float,
             test: list, test_nm: float, work: Path, threads: int) -> dict:
    """The from-scratch U-Net on the workspace's corrected pairs of ``key``, ``seconds`` long."""
    train = export_split(store, work / "train", "train", nm_per_px, tile)
    holdout = export_split(store, work / "holdout", "holdout", nm_per_px, tile)
    group = group_by_tool(train, holdout)[key]
    torch.manual_seed(0)
    torch.set_num_threads(threads)
    model = ResNet18UNet()
    recipe = ExpertRecipe(crop=256, lr=1e-3, max_steps=10**6, min_steps=10**6,
                          time_budget_s=seconds, patience=10**6)
    result = train_expert(model, group.train, group.holdout, recipe, kind="logits",
                          multiple=SIZE_MULTIPLE)
    model.load_state_dict(result.state)
    model.eval()
    rows = []
    with torch.inference_mode():
        for sem, mask in test:
            s, m = resample_pair(sem, mask, test_nm, nm_per_px)
            h, w = s.shape
            ph, pw = -(-h // SIZE_MULTIPLE) * SIZE_MULTIPLE, -(-w // SIZE_MULTIPLE) * SIZE_MULTIPLE
            x = np.pad(s.astype(np.float32) / 255, ((0, ph - h), (0, pw - w)), mode="symmetric")
            p = torch.sigmoid(model(torch.from_numpy(x * 2 - 1)[None, None]))[0, 0, :h, :w].numpy()
            rows.append(evaluate_pair(p, p > 0.5, m, nm_per_px))
    shutil.rmtree(work, ignore_errors=True)
    overall = aggregate(rows)
    return {**{k: round(float(overall[k]), 4) for k in METRICS}, "steps": result.steps,
            "seconds": result.seconds, "best_step": result.best_step}


def bench_tool(name: str, args: argparse.Namespace, root: Path, original: list) -> dict:
    """One tool: N = 0 then each N of ``args.counts``, job + peer + scores."""
    pool, test, nm = tool_data(name, max(args.counts), args.test_count, root / "data")
    tag = f"bench:{name}"
    key = tool_key(tag)
    row: dict = {"tool": name, "nm_per_px": nm, "steps": []}
    with Store.open(root / f"ws_{name}") as store:
        install_model(store, args.model)
        share_anchors(root / "anchors", store.workspace, into_workspace=True)
        set_trigger_settings(store, auto_trigger=False)
        config = with_overrides(finetune_config(store), args.finetune)
        set_finetune_config(store, config)
        production = store.production_model()
        card = ModelCard.from_dict(production.card)
        model_nm, tile = card.pixel_size(), card.image_size(256)

        def scores() -> dict:
            predictor = Predictor.from_dir(store.workspace / store.production_model().path)
            return {"tool": score(predictor, test, nm, tag),
                    "original_tagged": score(predictor, original, 4.0, "own"),
                    "original_untagged": score(predictor, original, 4.0, None)}

        row["zero_shot"] = scores()
        print(json.dumps({"tool": name, "n": 0, **finite(row["zero_shot"])}), flush=True)
        previous = 0
        for n in args.counts:
            sem_dir, layout_dir = write_folder(root / "reviewed" / name / f"n{n}", pool[previous:n])
            import_pairs(store, sem_dir, layout_dir, nm, tool=tag, author="review-loop bench")
            counts = store.counts()
            step = {"n": n, "pairs": {"train": counts.train_pairs, "holdout": counts.holdout_pairs},
                    "job": run_job(store, f"review-loop bench {name} N={n}", args.job_timeout)}
            share_anchors(root / "anchors", store.workspace, into_workspace=False)
            step["production"] = scores()
            seconds = float(step["job"]["tools"].get(key, {}).get("seconds") or
                            step["job"]["train_seconds"] or 60.0)
            step["peer"] = run_peer(store, key, model_nm, tile, seconds, test, nm,
                                    root / "peer" / name, args.threads)
            row["steps"].append(step)
            print(json.dumps(finite({"tool": name, **step})), flush=True)
            previous = n
        stop_worker(store.workspace)
    return row


def score_candidates(part: Path, root: Path, test_count: int, original_count: int) -> None:
    """Add every job's candidate's score on its tool's test images to a part's JSON (also the
    rejected ones: what the gate turned down), and production's on the untagged training-tool
    images with today's routing, from the workspaces the run kept under ``root``."""
    result = json.loads(part.read_text())
    pool = max(result["args"]["counts"])  # the independent simulator's test set follows the pool
    original = original_data(original_count)
    for row in result["rows"]:
        _, test, nm = tool_data(row["tool"], pool, test_count, root / "data")
        with Store.open(root / f"ws_{row['tool']}") as store:
            production = 1
            for step in row["steps"]:
                version = step["job"].get("candidate_version")
                if version is None:
                    continue
                predictor = Predictor.from_dir(store.workspace / store.get_model(version).path)
                step["candidate"] = {"version": version,
                                     "tool": score(predictor, test, nm, f"bench:{row['tool']}")}
                production = version if step["job"]["decision"] == "promote" else production
                after = Predictor.from_dir(store.workspace / store.get_model(production).path)
                examples = bool(after.calibration and after.calibration.reference_examples)
                step["production_untagged_now"] = {
                    "version": production, "routing": "examples" if examples else "mean histogram",
                    "original_untagged": score(after, original, 4.0, None)}
                print(row["tool"], step["n"], step["job"]["decision"], step["candidate"]["tool"]["iou"],
                      flush=True)
    part.write_text(json.dumps(finite(result), indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or merge parts); print and write the JSON and the PNG."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", help="starting production model")
    parser.add_argument("--tools", default=",".join(all_tools()))
    parser.add_argument("--counts", default=",".join(map(str, COUNTS)))
    parser.add_argument("--test-count", type=int, default=40)
    parser.add_argument("--original-count", type=int, default=40)
    parser.add_argument("--finetune", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--threads", type=int, default=0, help="peer threads (0: torch default)")
    parser.add_argument("--workspace", help="keep the workspaces here (default: a temp folder)")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--name", default="review_loop", help="JSON/PNG file name")
    parser.add_argument("--merge", help="comma-separated names of parts to merge into --name")
    parser.add_argument("--job-timeout", type=float, default=1800.0)
    parser.add_argument("--score-candidates", action="store_true",
                        help="score the candidates of the part --name kept in --workspace")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.score_candidates:
        score_candidates(out / f"{args.name}.json", Path(args.workspace), args.test_count,
                         args.original_count)
        return 0
    if args.merge:
        parts = [json.loads((out / f"{p}.json").read_text()) for p in args.merge.split(",")]
        rows = merge_rows([row for part in parts for row in part["rows"]])
        result = write_results(rows, out, args.name, {"parts": parts[0].get("args"),
                                                      "merged": args.merge.split(",")})
        print(json.dumps(result["table"], indent=1))
        return 0
    args.counts = sorted({int(c) for c in args.counts.split(",") if int(c) > 0})
    args.threads = args.threads or torch.get_num_threads()
    root = Path(args.workspace or tempfile.mkdtemp(prefix="semgan-review-loop-"))
    started = time.perf_counter()
    original = original_data(args.original_count)
    rows: list[dict] = []
    for name in (t for t in args.tools.split(",") if t):
        rows.append(bench_tool(name, args, root, original))
        extra = {"args": {k: v for k, v in vars(args).items() if k != "finetune"} |
                 {"finetune": args.finetune},
                 "wall_seconds": round(time.perf_counter() - started, 1),
                 "machine": {"cpus": os.cpu_count(), "platform": platform.platform()}}
        result = write_results(rows, out, args.name, extra)  # after every tool: a partial run counts
    print(json.dumps(finite(result["table"]), indent=1))
    if not args.workspace:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
