"""The Review tab's own predictions: shown at once, their uncertainty score added a moment later."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from loop.bootstrap import install_model
from loop.predictions import PredictorCache, prediction_for
from semgan.semsim import PROFILES
from semgan.synth import make_pair
from store import NotFoundError, Store
from tests.e2e.tiny_model import make_tiny_model

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A quickly trained tiny model."""
    return make_tiny_model(tmp_path_factory.mktemp("model") / "tiny", steps=40)


@pytest.fixture
def store(tmp_path: Path, model_dir: Path) -> Store:
    """A workspace with the tiny model as production v1."""
    with Store.open(tmp_path / "ws") as opened:
        install_model(opened, model_dir, status="production")
        yield opened


def _sample(store: Store) -> int:
    sem = make_pair(0, size=96, nm_per_px=4.0, profiles=[PROFILES["clean"]], seed=3).sem_image
    return store.add_sample(sem, 4.0, "upload").id


def test_a_deferred_prediction_is_stored_first_and_scored_after(store: Store) -> None:
    sample_id = _sample(store)
    prediction = prediction_for(store, sample_id, cache=PredictorCache(), uncertainty_now=False)
    assert "uncertainty" not in prediction.confidence_summary  # returned before the TTA passes
    deadline = time.monotonic() + 60
    while "uncertainty" not in store.get_prediction(sample_id, 1).confidence_summary:
        assert time.monotonic() < deadline, "the background uncertainty never arrived"
        time.sleep(0.1)
    stored = store.get_prediction(sample_id, 1)
    assert stored.id == prediction.id and stored.confidence_summary["mean"] == prediction.confidence_summary["mean"]
    assert 0 <= stored.confidence_summary["uncertainty"] <= 1
    assert store.get_sample(sample_id).uncertainty == stored.confidence_summary["uncertainty"]


def test_a_summary_is_merged_into_the_stored_prediction(store: Store) -> None:
    sample_id = _sample(store)
    prediction = prediction_for(store, sample_id, cache=PredictorCache())
    updated = store.add_prediction_summary(prediction.id, {"uncertainty": 0.75, "note": "later"})
    assert updated.confidence_summary["note"] == "later" and "p05" in updated.confidence_summary
    assert store.get_sample(sample_id).uncertainty == 0.75


def test_a_summary_for_a_missing_prediction_is_refused(store: Store) -> None:
    with pytest.raises(NotFoundError, match="prediction 999"):
        store.add_prediction_summary(999, {"uncertainty": 0.5})
