"""Synthetic data throughput: SEM/layout pairs per second at 256² and 1024², per profile.

Run: ``.venv/bin/python bench/bench_synth.py`` → prints JSON and writes bench/results/synth.json.
Figures are measured in one run on this machine; compare ratios, not absolute times.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from semgan.layouts import random_clip
from semgan.semsim import PROFILES, simulate
from semgan.synth import make_pair

NM_PER_PX = 4.0
CLEAN = [PROFILES["clean"]]


def _rate(fn, min_seconds: float, min_reps: int) -> tuple[float, int]:
    """Return (calls per second, calls) of ``fn`` over at least ``min_seconds``."""
    fn(0)  # warm-up: imports, FFT plans, caches
    reps, start = 0, time.perf_counter()
    while reps < min_reps or time.perf_counter() - start < min_seconds:
        fn(reps + 1)
        reps += 1
    return reps / (time.perf_counter() - start), reps


def main() -> dict:
    """Measure and report synth throughput."""
    results: dict = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "processor": platform.machine()},
        "nm_per_px": NM_PER_PX,
        "sizes": {},
    }
    for size, min_reps in ((256, 20), (1024, 4)):
        pairs_per_s, reps = _rate(
            lambda i, s=size: make_pair(i, size=s, nm_per_px=NM_PER_PX, profiles=CLEAN, seed=1),
            min_seconds=3.0, min_reps=min_reps)
        layout_per_s, _ = _rate(lambda i, s=size: random_clip(s, NM_PER_PX, seed=i), 1.5, min_reps)
        mask = random_clip(size, NM_PER_PX, seed=7).mask
        per_profile = {}
        for name, profile in PROFILES.items():
            rate, _ = _rate(lambda i, p=profile, m=mask: simulate(m, NM_PER_PX, p, np.random.default_rng(i)),
                            1.5, min_reps)
            per_profile[name] = round(rate, 2)
        results["sizes"][str(size)] = {
            "pairs_per_s": round(pairs_per_s, 2),
            "pairs_measured": reps,
            "layout_clips_per_s": round(layout_per_s, 2),
            "simulate_per_s_by_profile": per_profile,
        }
    out = Path(__file__).resolve().parent / "results" / "synth.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
