"""The gate for per-tool adaptations: each corrected tool is judged on its own held-out pairs.

For every tool the candidate adapted, production and candidate predict that tool's held-out
corrected pairs (tagged with the tool, as the engineer's images are). The tool's new adaptation
is kept only if its IoU rises by more than ``min_iou_gain`` with a paired bootstrap over the
images giving a probability ≥ ``min_win_probability`` that the mean gain is positive (so a
handful of pairs does not decide on luck alone), and its mean EPE does not rise by more than
``max_epe_rise_nm``. SSIM is reported, not judged. A tool that fails gets production's
adaptation back in the candidate. Every other tool must be bit-identical to production (the
shared generator's weights and each untouched tool's map and expert file are compared byte
for byte); if anything else changed, the old-data rules of ``loop.gate`` apply as well.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from loop.gate import (
    METRIC_KEYS,
    BrokenModelError,
    Check,
    GateConfig,
    GateResult,
    apply_verdict,
    load_predictor,
)
from loop.pair_folders import export_split
from semgan.calibration import load_calibration, save_calibration
from semgan.errors import SemganError
from semgan.imageio import load_image
from semgan.infer import Predictor
from semgan.metrics import aggregate, evaluate_pair
from semgan.model_card import WEIGHTS, ModelCard
from store import ModelStateError, ModelVersion, Store

BOOTSTRAP_SAMPLES = 2000


def paired_bootstrap(gains: list[float], samples: int = BOOTSTRAP_SAMPLES,
                     seed: int = 0) -> tuple[float, float, float]:
    """(mean gain, P(mean gain > 0) over resamples of the images, 5 % quantile of the mean)."""
    values = np.asarray(gains, dtype=np.float64)
    if values.size == 0:
        return math.nan, 0.0, math.nan
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(samples, values.size))].mean(axis=1)
    return float(values.mean()), float(np.mean(means > 0)), float(np.quantile(means, 0.05))


def _rows(predictor: Predictor, folder: Path, items: list[dict], tool: str,
          nm_per_px: float, check_cancel: Callable[[], None]) -> list[dict]:
    rows = []
    for item in items:
        check_cancel()
        sem = load_image(folder / item["sem"]).pixels
        truth = load_image(folder / item["layout"]).pixels > 0.5
        result = predictor.predict(sem, nm_per_px, tool)
        rows.append(evaluate_pair(result.probability, result.mask, truth, nm_per_px))
    return rows


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


def untouched_tools(candidate_dir: Path, production_dir: Path, adapted: set[str]) -> list[str]:
    """What differs between candidate and production outside the adapted tools (empty: nothing)."""
    changed = []
    if _sha(candidate_dir / WEIGHTS) != _sha(production_dir / WEIGHTS):
        changed.append("the shared generator")
    before, after = load_calibration(production_dir), load_calibration(candidate_dir)
    for entry in before.tools if before is not None else ():
        if entry.tool in adapted:
            continue
        now = after.get(entry.tool) if after is not None else None
        if now != entry or (entry.expert and _sha(candidate_dir / now.expert)
                            != _sha(production_dir / entry.expert)):
            changed.append(entry.tool)
    return changed


def judge_tool(tool: str, candidate: list[dict], production: list[dict],
               config: GateConfig) -> Check:
    """One tool's verdict from both models' per-image metrics on its held-out pairs."""
    if len(candidate) < config.min_holdout_pairs:
        return Check(f"{tool}: IoU on its held-out pairs", None, None, None,
                     f"needs ≥ {config.min_holdout_pairs} held-out pairs (has {len(candidate)})",
                     False)
    gains = [c["iou"] - p["iou"] for c, p in zip(candidate, production, strict=True)]
    mean_gain, win, _ = paired_bootstrap(gains)
    new, old = aggregate(candidate), aggregate(production)
    epe_rise = 0.0 if new["epe_mean_nm"] == old["epe_mean_nm"] else new["epe_mean_nm"] - old["epe_mean_nm"]
    passed = (mean_gain > config.min_iou_gain and win >= config.min_win_probability
              and (epe_rise <= config.max_epe_rise_nm or math.isinf(old["epe_mean_nm"])))
    limit = (f"gain > +{config.min_iou_gain:g}, P(gain > 0) ≥ {config.min_win_probability:g} "
             f"(bootstrap over {len(gains)} image(s): {win:.2f}), mean EPE "
             f"{old['epe_mean_nm']:.2f} → {new['epe_mean_nm']:.2f} nm (rise ≤ "
             f"{config.max_epe_rise_nm:g}), SSIM {old['ssim']:.3f} → {new['ssim']:.3f}")
    return Check(f"{tool}: IoU on its held-out pairs", new["iou"], old["iou"], mean_gain, limit,
                 passed)


def _keep_only(candidate_dir: Path, production_dir: Path, rejected: set[str]) -> None:
    """Give rejected tools production's adaptation (or none) back in the candidate folder."""
    calibration = load_calibration(candidate_dir)
    if calibration is None or not rejected:
        return
    before = load_calibration(production_dir)
    tools = []
    for entry in calibration.tools:
        if entry.tool not in rejected:
            tools.append(entry)
            continue
        if entry.expert:
            (candidate_dir / entry.expert).unlink(missing_ok=True)
        old = before.get(entry.tool) if before is not None else None
        if old is not None:
            if old.expert:
                shutil.copyfile(production_dir / old.expert, candidate_dir / old.expert)
            tools.append(old)
    save_calibration(replace(calibration, tools=tuple(tools)), candidate_dir)


def run_tool_gate(store: Store, candidate: ModelVersion, production: ModelVersion,
                  adapted: list[str], tile_size: int, config: GateConfig, device: str,
                  work: Path, log: Callable[[str], None],
                  check_cancel: Callable[[], None]) -> GateResult:
    """Judge each adapted tool; keep the winners in the candidate; the verdict for the registry."""
    started = time.perf_counter()
    nm_per_px = ModelCard.from_dict(production.card).pixel_size(production.config)
    holdout = export_split(store, work / "holdout", "holdout", nm_per_px, tile_size)
    items: dict[str, list[dict]] = {}
    if holdout.path is not None:
        for item in json.loads((holdout.path / "manifest.json").read_text())["items"]:
            items.setdefault(str(item.get("profile", "tool:unknown")), []).append(item)
    figures: dict[str, dict] = {"candidate": {"tools": {}}, "production": {"tools": {}}}
    checks: list[Check] = []
    broken = None
    try:
        producer = load_predictor(production.path, device)
        predictor = load_predictor(candidate.path, device)
        for tool in adapted:
            found = items.get(tool, [])
            new = _rows(predictor, holdout.path, found, tool, nm_per_px, check_cancel) if found else []
            old = _rows(producer, holdout.path, found, tool, nm_per_px, check_cancel) if found else []
            for side, rows in (("candidate", new), ("production", old)):
                summary = aggregate(rows) if rows else {}
                figures[side]["tools"][tool] = {k: summary[k] for k in METRIC_KEYS if k in summary}
            checks.append(judge_tool(tool, new, old, config))
    except BrokenModelError as exc:
        broken = str(exc)
    except SemganError as exc:
        broken = f"its predictions cannot be scored: {exc}"
    finally:
        shutil.rmtree(work, ignore_errors=True)
    changed = untouched_tools(Path(candidate.path), Path(production.path), set(adapted))
    checks.append(Check("every other tool bit-identical to production", float(not changed), 1.0,
                        None, "shared generator and untouched tools' adaptations byte for byte"
                        + (f"; changed: {', '.join(changed)}" if changed else ""), not changed))
    winners = [tool for tool, check in zip(adapted, checks, strict=False) if check.passed]
    text = "; ".join(_describe(c) for c in checks)
    if broken is not None:
        decision, reason, checks = "reject", f"broken candidate: {broken}", []
        winners = []
    elif winners and not changed:
        _keep_only(Path(candidate.path), Path(production.path), set(adapted) - set(winners))
        decision = "promote"
        reason = f"better on {', '.join(winners)}, every other tool unchanged: {text}"
    else:
        decision, reason = "reject", f"no tool is better beyond the noise of its pairs: {text}"
    n_holdout = sum(len(items.get(t, [])) for t in adapted)
    return GateResult(candidate.version, production.version, decision, reason, tuple(checks),
                      figures["candidate"], figures["production"], n_holdout, broken,
                      round(time.perf_counter() - started, 3))


def _describe(check: Check) -> str:
    if check.candidate is None or check.production is None:
        return f"{check.name}: not checked ({check.limit})"
    mark = "ok" if check.passed else "FAILED"
    change = "" if check.change is None else f" ({check.change:+.4f})"
    return f"{check.name} {check.production:.4f} → {check.candidate:.4f}{change}, {check.limit}: {mark}"



def adapted_tools(candidate: ModelVersion) -> list[str]:
    """The tools a per-tool fine-tune adapted in ``candidate`` (empty: judge it by loop.gate)."""
    fine_tune = ModelCard.from_dict(candidate.card).fine_tune or {}
    return list(fine_tune.get("tools") or ()) if fine_tune.get("strategy") == "tools" else []


def gate_tools(store: Store, candidate_version: int, tile_size: int, config: GateConfig,
               *, device: str = "auto", log: Callable[[str], None] = print,
               check_cancel: Callable[[], None] = lambda: None) -> GateResult:
    """Judge a per-tool candidate against production and promote or reject it in the registry."""
    candidate = store.get_model(candidate_version)
    production = store.production_model()
    if production is None:
        raise ModelStateError("there is no production model to compare the candidate with")
    tools = adapted_tools(candidate)
    log(f"gate: v{candidate_version} vs production v{production.version}, per tool: "
        f"{', '.join(tools)}")
    work = store.workspace / "data" / f".gate-v{candidate_version}"
    result = run_tool_gate(store, candidate, production, tools, tile_size, config, device, work,
                           log, check_cancel)
    return apply_verdict(store, result, log)
