"""Model versions compared: held-out sets, mean metrics of a version on them, where two disagree.

    from loop.compare import evaluate_version, heldout_sets, most_disagreeing
    sets = heldout_sets(store)                       # {"old data · tool": [ids], ...}
    metrics = evaluate_version(store, 3, sets["new corrections (holdout)"])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from loop.predictions import DEFAULT_CACHE, PredictorCache, prediction_for, probability_of
from semgan.metrics import aggregate, evaluate_pair
from store import Store


def heldout_sets(store: Store, limit: int = 40, scan: int = 2000) -> dict[str, list[int]]:
    """Sample ids of the held-out sets: uncorrected known-truth samples (old data) per tool,
    and the latest holdout pairs (new corrections)."""
    corrected = {pair.sample_id for pair in store.list_pairs()}
    old: dict[str, list[int]] = {}
    for sample in store.list_samples(order_by="created", limit=scan):
        if sample.truth_sha is not None and sample.id not in corrected:
            old.setdefault(f"old data · {sample.tool or 'no tool'}", []).append(sample.id)
    new = [pair.sample_id for pair in store.list_pairs(split="holdout")]
    return {**{name: sorted(ids)[:limit] for name, ids in sorted(old.items())},
            "new corrections (holdout)": new[-limit:]}


def truth_mask(store: Store, sample_id: int) -> np.ndarray | None:
    """The best known layout of a sample: its latest corrected pair, else its stored truth."""
    pair = store.latest_pair(sample_id)
    if pair is not None:
        return store.pair_mask(pair)
    sample = store.get_sample(sample_id)
    return None if sample.truth_sha is None else store.read_mask(sample.truth_sha)


def evaluate_version(store: Store, version: int, sample_ids: list[int],
                     cache: PredictorCache = DEFAULT_CACHE) -> dict[str, float]:
    """Mean IoU, EPE, CD error, SSIM, PSNR, L1 of a version over samples with a known layout."""
    rows = []
    for sample_id in sample_ids:
        truth = truth_mask(store, sample_id)
        if truth is None:
            continue
        prediction = prediction_for(store, sample_id, version, cache)
        rows.append(evaluate_pair(probability_of(store, prediction),
                                  store.prediction_mask(prediction), truth,
                                  store.get_sample(sample_id).nm_per_px))
    return aggregate(rows)


@dataclass(frozen=True)
class Disagreement:
    """Where two versions' masks differ on one sample."""

    sample_id: int
    only_a: int  # pixels only version A marks
    only_b: int
    iou: float  # IoU of the two masks (1.0 when both are empty)


def disagreement(store: Store, sample_id: int, version_a: int, version_b: int,
                 cache: PredictorCache = DEFAULT_CACHE) -> tuple[np.ndarray, np.ndarray,
                                                                 Disagreement]:
    """Both versions' masks for a sample (predicted if missing) and how much they differ."""
    mask_a = store.prediction_mask(prediction_for(store, sample_id, version_a, cache))
    mask_b = store.prediction_mask(prediction_for(store, sample_id, version_b, cache))
    union = int(np.count_nonzero(mask_a | mask_b))
    iou = 1.0 if union == 0 else int(np.count_nonzero(mask_a & mask_b)) / union
    return mask_a, mask_b, Disagreement(sample_id, int(np.count_nonzero(mask_a & ~mask_b)),
                                        int(np.count_nonzero(mask_b & ~mask_a)), iou)


def most_disagreeing(store: Store, version_a: int, version_b: int, sample_ids: list[int],
                     top: int = 10, cache: PredictorCache = DEFAULT_CACHE) -> list[Disagreement]:
    """The samples on which two versions disagree most (lowest mask IoU first)."""
    found = [disagreement(store, sample_id, version_a, version_b, cache)[2]
             for sample_id in sample_ids]
    return sorted(found, key=lambda d: (d.iou, -(d.only_a + d.only_b)))[:top]
