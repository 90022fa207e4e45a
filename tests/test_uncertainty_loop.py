"""The per-image uncertainty in the workspace: stored with each prediction, sorting the queue."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from annotate import format as fmt
from annotate import render
from loop.bootstrap import add_demo_samples, install_model
from loop.prediction_uncertainty import uncertainty_map
from loop.predictions import PredictorCache, predict_sample
from semgan.infer import DEFAULT_MODEL_DIR
from semgan.semsim import PROFILES
from semgan.synth import make_pair
from store import Store
from tests.e2e.tiny_model import make_tiny_model

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny", steps=20)


@pytest.fixture
def store(tmp_path: Path, model_dir: Path) -> Store:
    with Store.open(tmp_path / "ws") as opened:
        install_model(opened, model_dir, status="production")
        yield opened


def _sem(index: int) -> np.ndarray:
    return make_pair(index, size=64, nm_per_px=4.0, profiles=[PROFILES["clean"]], seed=2).sem_image


def test_prediction_stores_the_score_as_the_samples_uncertainty_and_keeps_its_map(store: Store) -> None:
    sample = store.add_sample(_sem(1), 4.0, "upload")
    prediction = predict_sample(store, sample.id, cache=PredictorCache())
    summary = prediction.confidence_summary
    assert 0.0 <= summary["uncertainty"] <= 1.0
    assert store.get_sample(sample.id).uncertainty == summary["uncertainty"]
    store.gc_blobs(grace_s=0.0)  # the map is referenced from the summary JSON only
    pixel_map = uncertainty_map(store, summary)
    assert pixel_map.shape == (64, 64)
    assert 0.0 <= pixel_map.min() <= pixel_map.max() <= 1.0


def test_uncertainty_order_puts_the_likeliest_wrong_first(store: Store) -> None:
    mask = np.zeros((64, 64), bool)
    calm = store.add_sample(_sem(2), 4.0, "upload")
    wrong = store.add_sample(_sem(3), 4.0, "upload")
    # the old key alone would rank ``calm`` first: many low-confidence pixels, yet consistent
    store.add_prediction(calm.id, 1, mask, {"uncertainty": 0.1, "uncertain_fraction": 0.4}, 0.1)
    store.add_prediction(wrong.id, 1, mask, {"uncertainty": 0.9, "uncertain_fraction": 0.0}, 0.1)
    assert [s.id for s in store.list_samples(order_by="uncertainty")] == [wrong.id, calm.id]


def test_summary_without_a_score_falls_back_to_the_uncertain_fraction(store: Store) -> None:
    sample = store.add_sample(_sem(4), 4.0, "upload")
    store.add_prediction(sample.id, 1, np.zeros((64, 64), bool), {"uncertain_fraction": 0.25}, 0.1)
    assert store.get_sample(sample.id).uncertainty == 0.25


def test_uncertainty_note_gives_the_score_verdict_and_reason() -> None:
    note = fmt.uncertainty_note({"uncertainty": 0.97, "uncertainty_reason": "the layout is empty"})
    assert note == " · uncertainty **0.97** (**likely wrong**: the layout is empty)"
    assert fmt.uncertainty_note({"mean": 0.99}) == ""


def test_uncertainty_overlay_paints_only_where_the_map_is_high() -> None:
    picture = np.full((2, 2, 3), 100, np.uint8)
    painted = render.uncertainty_overlay(picture, np.array([[1.0, 0.0], [0.0, 0.0]]))
    assert painted[0, 0].tolist() != [100, 100, 100]
    assert painted[0, 0, 1] < 100 < painted[0, 0, 0]  # towards magenta
    assert painted[1, 1].tolist() == [100, 100, 100]


def test_default_model_queues_every_demo_drifted_image_before_the_clean_ones(tmp_path: Path) -> None:
    with Store.open(tmp_path / "ws") as store:
        install_model(store, DEFAULT_MODEL_DIR, status="production")
        cache = PredictorCache(device="cpu")
        for sample_id in add_demo_samples(store, 4.0):  # the app's demo: 6 clean, 6 drifted
            predict_sample(store, sample_id, cache=cache)
        queue = store.list_samples(order_by="uncertainty")
        assert [s.name.split("-")[1] for s in queue] == ["drifted"] * 6 + ["clean"] * 6
        assert min(s.uncertainty for s in queue[:6]) > 0.5 > max(s.uncertainty for s in queue[6:])
