"""Store throughput: corrections saved per second (256² masks) and listing 10,000 samples.

Run: ``.venv/bin/python bench/bench_store.py`` → prints JSON and writes bench/results/store.json.
Timings are wall-clock on this machine (fsync included: synchronous=FULL, blobs fsync'ed);
compare ratios between runs on the same machine, not absolute figures across machines.
"""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from store import Store

SIZE = 256
LIST_SAMPLES = 10_000


def _median_ms(fn, reps: int = 20) -> float:
    """Median wall time of ``fn()`` in milliseconds (after one warm-up call)."""
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 3)


def bench_corrections(root: Path, count: int = 150) -> dict:
    """Save ``count`` corrections of 256² masks against a prediction, as the UI does."""
    rng = np.random.default_rng(0)
    with Store.open(root) as store:
        store.register_model(root / "models" / "v1.safetensors", "0" * 64, {}, {}, None, {}, {},
                             status="production")
        jobs = []
        for i in range(count):
            image = rng.integers(0, 256, (SIZE, SIZE), dtype=np.uint8)
            sample = store.add_sample(image, 4.0, "upload", name=f"s{i}")
            predicted = image > 128
            prediction = store.add_prediction(sample.id, 1, predicted, {"mean": 0.9}, 0.1)
            corrected = predicted.copy()
            corrected[i % SIZE, :] = ~corrected[i % SIZE, :]  # a stroke of edits
            jobs.append((sample.id, prediction.id, corrected))
        start = time.perf_counter()
        for sample_id, prediction_id, corrected in jobs:
            store.save_correction(sample_id, corrected, "bench", prediction_id)
        seconds = time.perf_counter() - start
        start = time.perf_counter()
        images = [rng.integers(0, 256, (SIZE, SIZE), dtype=np.uint8) for _ in range(50)]
        make_images = time.perf_counter() - start
        start = time.perf_counter()
        for image in images:
            store.add_sample(image, 4.0, "upload")
        add_seconds = time.perf_counter() - start
    return {"corrections": count, "corrections_per_s": round(count / seconds, 1),
            "ms_per_correction": round(1000 * seconds / count, 2),
            "samples_added_per_s": round(50 / add_seconds, 1),
            "note": f"{make_images:.3f} s to make test images is excluded"}


def fill_samples(store: Store, count: int) -> None:
    """Insert ``count`` sample rows (drift scores, some corrected) in one transaction.

    Rows are inserted directly: listing speed depends on rows and indexes, not blobs, and
    10,000 fsync'ed add_sample calls would only measure the disk.
    """
    rng = np.random.default_rng(1)
    now = time.time()
    with store._write() as db:
        db["samples"].insert_all(({
            "image_sha": f"{i:064x}", "content_sha": f"{i:064x}", "nm_per_px": 4.0,
            "height": SIZE, "width": SIZE, "source": ("upload", "import", "demo")[i % 3],
            "tool": f"tool-{i % 4}", "name": f"clip{i}.png", "truth_sha": None,
            "created": now - i, "drift_json": json.dumps({"mean_z": float(z)}),
            "drift_score": abs(float(z)), "drift_flagged": int(abs(z) > 3),
            "uncertainty": float(u)} for i, (z, u) in
            enumerate(zip(rng.normal(0, 1.5, count), rng.random(count), strict=True))),
            batch_size=1000)
        db["pairs"].insert_all(({
            "sample_id": i, "version": 1, "mask_sha": f"{i:064x}", "author": "bench",
            "prediction_id": None, "kind": "corrected", "split": "train", "created": now}
            for i in range(1, count + 1, 10)), batch_size=1000)


def bench_listing(root: Path) -> dict:
    """Time the review-queue queries over 10,000 samples."""
    with Store.open(root) as store:
        fill_samples(store, LIST_SAMPLES)
        assert store.count_samples() == LIST_SAMPLES
        return {
            "samples": LIST_SAMPLES,
            "first_page_by_drift_ms": _median_ms(
                lambda: store.list_samples(order_by="drift", limit=50)),
            "count_ms": _median_ms(store.count_samples),
            "first_page_uncorrected_by_uncertainty_ms": _median_ms(
                lambda: store.list_samples(order_by="uncertainty", uncorrected_only=True,
                                           limit=50)),
            "count_uncorrected_ms": _median_ms(lambda: store.count_samples(uncorrected_only=True)),
            "page_100_by_created_ms": _median_ms(
                lambda: store.list_samples(order_by="created", limit=50, offset=5000)),
            "counts_ms": _median_ms(store.counts),
        }


def main() -> dict:
    """Measure and report store throughput."""
    results: dict = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "sqlite": sqlite3.sqlite_version, "sqlite_utils": metadata.version("sqlite-utils"),
                    "platform": platform.platform()},
        "mask_size": SIZE,
    }
    with tempfile.TemporaryDirectory() as tmp:
        results["corrections"] = bench_corrections(Path(tmp) / "corrections")
        results["listing"] = bench_listing(Path(tmp) / "listing")
    out = Path(__file__).resolve().parent / "results" / "store.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
