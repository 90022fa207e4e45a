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
                        sem_image: np.ndarray, nm_per_px: float, result: LayoutPrediction,
                        tool: str | None = None) -> dict:
    """Summary fields of ``result``'s uncertainty (its map stored as a blob) for add_prediction."""
    started = time.perf_counter()
    # The TTA passes are forward passes like any other, one at a time — each under the lock on
    # its own, so a prediction the user is waiting for can run between them.
    found = assess(_Locked(predictor, run_lock), sem_image, nm_per_px, base=result, tool=tool)
    pixel_map = np.rint(found.pixel_map * 255).astype(np.uint8)
    return {**found.summary(), "uncertainty_map_sha": store.put_blob(pixel_map),
            "uncertainty_seconds": time.perf_counter() - started}


class _Locked:
    """A Predictor whose every ``predict`` holds ``lock``; everything else passes through."""

    def __init__(self, predictor: Predictor, lock: threading.Lock) -> None:
        self._predictor, self._lock = predictor, lock

    def predict(self, *args: object, **kwargs: object) -> LayoutPrediction:
        """``Predictor.predict`` under the lock."""
        with self._lock:
            return self._predictor.predict(*args, **kwargs)

    def __getattr__(self, name: str) -> object:
        return getattr(self._predictor, name)


def uncertainty_later(store: Store, predictor: Predictor, run_lock: threading.Lock, sem_image: np.ndarray,
                      nm_per_px: float, result: LayoutPrediction, prediction_id: int,
                      tool: str | None = None) -> threading.Thread:
    """Measure a stored prediction's uncertainty in a background thread and add it to its summary:
    the engineer sees the prediction now (its TTA passes cost 3× the prediction) and the score a
    moment later. A failure leaves the prediction without a score, as before it was measured."""
    def run() -> None:
        try:
            store.add_prediction_summary(prediction_id, uncertainty_summary(
                store, predictor, run_lock, sem_image, nm_per_px, result, tool))
        except Exception as exc:  # a daemon thread: report it, never raise into nothing
            print(f"uncertainty of prediction {prediction_id} not measured: {type(exc).__name__}: {exc}")

    thread = threading.Thread(target=run, name=f"uncertainty-{prediction_id}", daemon=True)
    thread.start()
    return thread


def uncertainty_map(store: Store, summary: dict) -> np.ndarray | None:
    """The stored per-pixel uncertainty map (float32 0–1) of a prediction summary, if it has one."""
    sha = summary.get("uncertainty_map_sha")
    return None if not isinstance(sha, str) else store.read_blob_array(sha).astype(np.float32) / 255.0
