"""Paired comparison of two methods scored on the same images: is a difference real or noise?

Two models' mean IoU on 300 images can differ by 0.001 while one of them wins on most images; the
per-image differences, a bootstrap confidence interval of their mean and the win/loss count say
which. Reads the per-item rows of ``semgan.evaluate.evaluate_folder``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import bootstrap

from semgan.errors import SemganError

# metric key → (table header, higher is better)
COMPARED_METRICS: dict[str, tuple[str, bool]] = {"iou": ("IoU", True), "epe_mean_nm": ("EPE mean nm", False)}
CONFIDENCE = 0.95


class ComparisonError(SemganError):
    """Two methods cannot be compared image by image."""


@dataclass(frozen=True)
class PairedDifference:
    """first − second for one metric over one group of images, with a 95 % bootstrap interval."""

    metric: str
    group: str  # "overall" or "profile:NAME"
    images: int  # images where both values are finite
    mean: float
    low: float
    high: float
    better: int  # images where the first method is better
    worse: int
    dropped: int = 0  # images left out because a value was infinite (a missed feature)


def paired_difference(first: Sequence[float], second: Sequence[float], metric: str, group: str,
                      higher_is_better: bool, resamples: int = 2000, seed: int = 0) -> PairedDifference:
    """Mean of first − second with a percentile bootstrap interval and the per-image win count."""
    a, b = np.asarray(first, np.float64), np.asarray(second, np.float64)
    if a.shape != b.shape:
        raise ComparisonError(f"{metric}: {a.size} values against {b.size}")
    finite = np.isfinite(a) & np.isfinite(b)
    diff = (a - b)[finite]
    if diff.size == 0:
        return PairedDifference(metric, group, 0, math.nan, math.nan, math.nan, 0, 0, int(a.size))
    low = high = math.nan
    if diff.size > 1 and np.ptp(diff) > 0:
        interval = bootstrap((diff,), np.mean, confidence_level=CONFIDENCE, n_resamples=resamples,
                             method="percentile", rng=np.random.default_rng(seed)).confidence_interval
        low, high = interval.low, interval.high
    elif diff.size > 1:  # every image differs by the same amount: the interval is that point
        low = high = float(diff[0])
    sign = 1.0 if higher_is_better else -1.0
    return PairedDifference(metric, group, int(diff.size), float(diff.mean()), float(low), float(high),
                            int((sign * diff > 0).sum()), int((sign * diff < 0).sum()),
                            int(a.size - diff.size))


def compare_methods(result: Mapping[str, Any], first: str, second: str,
                    metrics: Mapping[str, tuple[str, bool]] = COMPARED_METRICS) -> list[PairedDifference]:
    """``first`` against ``second`` in an evaluate result: overall, then per profile, per metric."""
    methods = result["methods"]
    for name in (first, second):
        if name not in methods or "rows" not in methods[name]:
            raise ComparisonError(f"no per-item rows for {name!r} (known: {', '.join(methods)})")
    second_rows = {row["name"]: row for row in methods[second]["rows"]}
    pairs = [(row, second_rows.get(row["name"])) for row in methods[first]["rows"]]
    if any(other is None for _, other in pairs) or len(pairs) != len(second_rows):
        raise ComparisonError(f"{first!r} and {second!r} were scored on different images")
    groups = {"overall": pairs}
    for pair in pairs:
        groups.setdefault(f"profile:{pair[0]['profile']}", []).append(pair)
    return [paired_difference([a[key] for a, _ in group], [b[key] for _, b in group], key, name,
                              higher_is_better)
            for name, group in groups.items() for key, (_, higher_is_better) in metrics.items()]


def format_comparison(differences: Sequence[PairedDifference], first: str, second: str) -> str:
    """A fixed-width table: per group and metric, the mean difference, its interval and wins."""
    lines = [f"{first} − {second}, per image; {CONFIDENCE:.0%} bootstrap interval of the mean; "
             f"better/worse = images where {first} is better/worse"]
    for item in differences:
        header = COMPARED_METRICS.get(item.metric, (item.metric, True))[0]
        dropped = f", {item.dropped} with ∞ left out" if item.dropped else ""
        lines.append(f"{item.group:<16} {header:<12} {item.mean:+.4f} [{item.low:+.4f}, {item.high:+.4f}]  "
                     f"better {item.better} / worse {item.worse} of {item.images}{dropped}")
    return "\n".join(lines)
