"""A stored prediction's uncertainty: score, reason and signals in its summary, the TTA map as a blob.

The Review queue's "uncertainty" order and the Review tab read ``uncertainty`` (0–1, higher =
more likely wrong, ``semgan.uncertainty``) from the prediction's confidence summary; the
per-pixel TTA disagreement map (0–255) is stored as a blob named by ``uncertainty_map_sha``.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from semgan.infer import LayoutPrediction, Predictor
from semgan.uncertainty import assess
from store import Store


def uncertainty_summary(store: Store, predictor: Predictor, run_lock: threading.Lock,
                        sem_image: np.ndarray, nm_per_px: float, result: LayoutPrediction) -> dict:
    """Summary fields of ``result``'s uncertainty (its map stored as a blob) for add_prediction."""
    started = time.perf_counter()
    with run_lock:  # the TTA passes are forward passes like any other: one at a time
        found = assess(predictor, sem_image, nm_per_px, base=result)
    pixel_map = np.rint(found.pixel_map * 255).astype(np.uint8)
    return {**found.summary(), "uncertainty_map_sha": store.put_blob(pixel_map),
            "uncertainty_seconds": time.perf_counter() - started}


def uncertainty_map(store: Store, summary: dict) -> np.ndarray | None:
    """The stored per-pixel uncertainty map (float32 0–1) of a prediction summary, if it has one."""
    sha = summary.get("uncertainty_map_sha")
    return None if not isinstance(sha, str) else store.read_blob_array(sha).astype(np.float32) / 255.0
