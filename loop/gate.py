"""The promotion gate: a candidate replaces production only if it is demonstrably better.

Both models are scored on (a) old data — the anchor test set, tools the model was trained on —
and (b) new data — the workspace's ``holdout`` corrected pairs, which no fine-tune trains on.
The candidate is promoted only if
  * SSIM on new data rises by more than ``min_ssim_gain`` (the seed's primary criterion), and
  * IoU on old data drops by at most ``max_iou_drop``, and
  * mean EPE on old data rises by at most ``max_epe_rise_nm``.
Without held-out corrected pairs the first rule cannot be checked, and the gate refuses: a
candidate is never promoted blind (old-data figures are still recorded, and an engineer can
promote it by hand from the Models tab). A broken candidate (does not load, NaN/inf weights,
constant output) is rejected before any comparison. Every verdict goes to the registry with
both models' figures (store.promote/reject → model_audit), and promotion passes
``expected_production`` so a manual promotion during the evaluation is never overwritten.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from loop.config_fields import setting
from loop.jobs import Check, GateResult
from loop.pair_folders import export_split
from semgan.errors import SemganError
from semgan.evaluate import evaluate_folder
from semgan.infer import Predictor
from semgan.model_card import ModelCard
from store import ModelStateError, ModelVersion, PromotionConflictError, Store

METRIC_KEYS = ("iou", "epe_mean_nm", "epe_p95_nm", "cd_error_nm", "cd_abs_error_nm", "ssim",
               "psnr", "l1", "count")
CACHE_SETTING = "loop.gate_old_data_cache"  # production's old-data figures: anchors never change
CACHE_ENTRIES = 8


@dataclass(frozen=True)
class GateConfig:
    """Promotion rules: what counts as better on new data and as a regression on old data."""

    min_ssim_gain: float = setting(0.001, "new-data SSIM must rise by more than this")
    max_iou_drop: float = setting(0.005, "old-data IoU may fall by at most this")
    max_epe_rise_nm: float = setting(0.5, "old-data mean EPE may rise by at most this (nm)")
    min_holdout_pairs: int = setting(1, "fewer held-out corrected pairs: never promote")
    min_iou_gain: float = setting(0.005, "per tool: held-out IoU must rise by more than this")
    min_win_probability: float = setting(
        0.9, "per tool: paired-bootstrap P(gain > 0) at least this")
    constant_output_range: float = setting(
        1e-3, "P(feature) spread below this = broken (blank) output")


class BrokenModelError(SemganError):
    """A model folder cannot be used: it does not load, or its weights are not finite."""


def load_predictor(model_dir: str | Path, device: str = "auto") -> Predictor:
    """The model's Predictor; a load failure or NaN/inf weights raise BrokenModelError."""
    try:
        predictor = Predictor.from_dir(Path(model_dir), device=device)
    except (SemganError, OSError, RuntimeError, ValueError) as exc:
        raise BrokenModelError(f"{model_dir} does not load: {exc}") from exc
    modules = {"": predictor.models, **{f"expert of {t}: ": e for t, e in predictor.experts.items()}}
    for prefix, module in modules.items():
        for name, tensor in module.state_dict().items():
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise BrokenModelError(f"{model_dir}: weight {prefix}{name} holds NaN or inf")
    return predictor


def evaluate_on(predictor: Predictor, data_dir: Path,
                check_cancel: Callable[[], None] = lambda: None) -> tuple[dict, float]:
    """(mean metrics over a paired folder, widest max−min of P(feature) over its images)."""
    spread = [0.0]

    def method(sem_image: np.ndarray, nm_per_px: float) -> tuple[np.ndarray, np.ndarray]:
        result = predictor.predict(sem_image, nm_per_px)
        spread[0] = max(spread[0], float(result.probability.max() - result.probability.min()))
        return result.probability, result.mask

    result = evaluate_folder(data_dir, {"model": method}, progress=lambda _: check_cancel())
    overall = result["methods"]["model"]["overall"]
    return {key: overall[key] for key in METRIC_KEYS if key in overall}, spread[0]


def _change(candidate: float, production: float) -> float:
    """candidate − production, 0 when both are the same infinity (both found no edge)."""
    return 0.0 if candidate == production else candidate - production


def decide(candidate: dict, production: dict, holdout_pairs: int,
           config: GateConfig = GateConfig()) -> tuple[str, str, tuple[Check, ...]]:
    """(decision, reason, checks) from both models' {"old_data", "new_data"} metrics."""
    checks = []
    if holdout_pairs >= config.min_holdout_pairs:
        new_c, new_p = candidate["new_data"]["ssim"], production["new_data"]["ssim"]
        gain = _change(new_c, new_p)
        checks.append(Check("SSIM on new data", new_c, new_p, gain,
                            f"> +{config.min_ssim_gain:g}", gain > config.min_ssim_gain))
    else:
        checks.append(Check("SSIM on new data", None, None, None,
                            f"needs ≥ {config.min_holdout_pairs} held-out corrected pairs "
                            f"(have {holdout_pairs})", False))
    old_c, old_p = candidate["old_data"], production["old_data"]
    drop = -_change(old_c["iou"], old_p["iou"])
    checks.append(Check("IoU on old data", old_c["iou"], old_p["iou"], -drop,
                        f"drop ≤ {config.max_iou_drop:g}", drop <= config.max_iou_drop))
    rise = _change(old_c["epe_mean_nm"], old_p["epe_mean_nm"])
    checks.append(Check("mean EPE on old data (nm)", old_c["epe_mean_nm"], old_p["epe_mean_nm"],
                        rise, f"rise ≤ {config.max_epe_rise_nm:g} nm",
                        rise <= config.max_epe_rise_nm))
    # NaN compares False everywhere, so a NaN figure fails its check instead of passing it.
    text = "; ".join(_describe(c) for c in checks)
    if all(c.passed for c in checks):
        return "promote", f"better on new data, no regression on old data: {text}", tuple(checks)
    failed = ", ".join(c.name for c in checks if not c.passed)
    return "reject", f"failed {failed}: {text}", tuple(checks)


def _describe(check: Check) -> str:
    if check.candidate is None:
        return f"{check.name}: not checked ({check.limit})"
    mark = "ok" if check.passed else "FAILED"
    return (f"{check.name} {check.production:.4g} → {check.candidate:.4g} "
            f"({check.change:+.4g}, rule {check.limit}: {mark})")


def _manifest_sha(data_dir: Path) -> str:
    return hashlib.sha256((data_dir / "manifest.json").read_bytes()).hexdigest()


def _production_old_data(store: Store, production: ModelVersion, predictor: Predictor,
                         anchor_test: Path, check_cancel: Callable[[], None]) -> dict:
    """Production's old-data metrics, cached per (weights, anchor set): both are immutable."""
    key = f"{production.weights_sha256}:{_manifest_sha(anchor_test)}"
    cache = store.get_setting(CACHE_SETTING, {})
    if key in cache:
        return cache[key]
    metrics, _ = evaluate_on(predictor, anchor_test, check_cancel)
    cache = {**dict(list(cache.items())[-(CACHE_ENTRIES - 1):]), key: metrics}
    store.set_setting(CACHE_SETTING, cache)
    return metrics


def run_gate(store: Store, candidate_version: int, anchor_test: str | Path, tile_size: int,
             config: GateConfig = GateConfig(), *, device: str = "auto",
             work_dir: str | Path | None = None, log: Callable[[str], None] = print,
             check_cancel: Callable[[], None] = lambda: None) -> GateResult:
    """Evaluate the candidate against production, then promote or reject it in the registry."""
    started = time.perf_counter()
    candidate = store.get_model(candidate_version)
    production = store.production_model()
    if production is None:
        raise ModelStateError("there is no production model to compare the candidate with")
    anchor_test = Path(anchor_test)
    nm_per_px = ModelCard.from_dict(production.card).pixel_size(production.config)
    work = Path(work_dir) if work_dir is not None else \
        store.workspace / "data" / f".gate-v{candidate_version}"
    holdout = export_split(store, work / "holdout", "holdout", nm_per_px, tile_size)
    n_holdout = len(holdout.pair_ids)
    log(f"gate: v{candidate_version} vs production v{production.version} on "
        f"{anchor_test.name} (old data) and {n_holdout} held-out corrected pairs (new data)")
    figures: dict[str, dict] = {"candidate": {"old_data": {}, "new_data": {}},
                                "production": {"old_data": {}, "new_data": {}}}
    broken = None
    try:
        producer = load_predictor(production.path, device)
        figures["production"]["old_data"] = _production_old_data(store, production, producer,
                                                                 anchor_test, check_cancel)
        if holdout.path is not None:
            figures["production"]["new_data"] = evaluate_on(producer, holdout.path,
                                                            check_cancel)[0]
        try:
            predictor = load_predictor(candidate.path, device)
            figures["candidate"]["old_data"], spread = evaluate_on(predictor, anchor_test,
                                                                   check_cancel)
            if holdout.path is not None:
                figures["candidate"]["new_data"] = evaluate_on(predictor, holdout.path,
                                                               check_cancel)[0]
            if spread < config.constant_output_range:
                broken = f"constant output (P(feature) varies by {spread:.2g} over the test set)"
        except BrokenModelError as exc:
            broken = str(exc)
        except SemganError as exc:  # e.g. NaN outputs that the metrics refuse
            broken = f"its predictions cannot be scored: {exc}"
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if broken is not None:
        decision, reason, checks = "reject", f"broken candidate: {broken}", ()
    else:
        decision, reason, checks = decide(figures["candidate"], figures["production"],
                                          n_holdout, config)
    result = GateResult(candidate_version, production.version, decision, reason, checks,
                        figures["candidate"], figures["production"], n_holdout, broken,
                        round(time.perf_counter() - started, 3))
    return apply_verdict(store, result, log)


def apply_verdict(store: Store, result: GateResult, log: Callable[[str], None]) -> GateResult:
    """Record the verdict: promote (guarded by expected_production) or reject."""
    version = result.candidate_version
    metrics = {**result.candidate, "gate": result.to_dict()}
    try:
        if result.decision == "promote":
            store.set_model_metrics(version, metrics)  # the audit row copies these figures
            try:
                store.promote(version, result.reason, actor="gate",
                              expected_production=result.production_version)
            except PromotionConflictError as exc:
                result = replace(result, decision="reject", reason=f"not promoted: {exc}")
                store.reject(version, result.reason, {"gate": result.to_dict()})
        else:
            store.reject(version, result.reason, metrics)
    except ModelStateError as exc:
        result = replace(result, decision="none", reason=f"left as is: {exc}")
    log(f"gate: v{version} {result.decision}: {result.reason}")
    return result
