"""Per-image uncertainty: dihedral TTA, disagreement map, edge evidence, the logistic model."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from semgan.infer import LayoutPrediction, Predictor
from semgan.semsim import PROFILES
from semgan.synth import make_pair
from semgan.uncertainty import (
    assess,
    dihedral,
    disagreement_map,
    edge_blur,
    missed_edges,
    tta_probabilities,
    undo_dihedral,
)
from semgan.uncertainty_model import (
    DEFAULT_UNCERTAINTY_FILE,
    UncertaintyError,
    UncertaintyModel,
    auroc,
    fit_logistic,
    load_model,
    save_model,
)
from tests.e2e.tiny_model import make_tiny_model


def _prediction(probability: np.ndarray) -> LayoutPrediction:
    return LayoutPrediction(probability > 0.5, probability, np.abs(2 * probability - 1), 0.0)


class _StubPredictor:
    """A 'model' that thresholds the image, optionally adding a left-right bias (not mirror-safe)."""

    def __init__(self, lopsided: bool) -> None:
        self.lopsided, self.card, self.nm_per_px = lopsided, {}, 4.0

    def predict(self, sem_image: np.ndarray, nm_per_px: float | None = None,
                tool: str | None = None) -> LayoutPrediction:
        probability = (np.asarray(sem_image, np.float32) / 255 > 0.3).astype(np.float32)
        if self.lopsided:  # always marks the left quarter as pattern, whatever the image shows
            probability[:, : probability.shape[1] // 4] = 1.0
        return _prediction(probability)


@pytest.mark.parametrize("index", range(8))
def test_undo_dihedral_inverts_every_transform(index):
    image = np.arange(12.0).reshape(3, 4)
    assert np.array_equal(undo_dihedral(dihedral(image, index), index), image)


def test_the_eight_transforms_are_distinct():
    image = np.arange(9.0).reshape(3, 3)
    assert len({dihedral(image, index).tobytes() for index in range(8)}) == 8


def test_disagreement_map_is_zero_when_all_agree_and_one_when_split():
    agree = np.full((4, 5, 5), 0.8, np.float32)
    split = np.stack([np.zeros((5, 5)), np.ones((5, 5))] * 2).astype(np.float32)
    assert disagreement_map(agree).max() == 0.0
    assert disagreement_map(split).min() == pytest.approx(1.0)


def test_missed_edges_is_one_for_an_empty_layout_and_zero_for_the_truth():
    pair = make_pair(1, size=128, nm_per_px=4.0, profiles=[PROFILES["clean"]], seed=3)
    assert missed_edges(pair.sem_image, np.zeros_like(pair.layout_mask)) == 1.0
    assert missed_edges(pair.sem_image, pair.layout_mask) == 0.0


def test_missed_edges_is_zero_for_an_empty_layout_on_a_blank_image():
    blank = make_pair(0, size=128, nm_per_px=4.0, profiles=[PROFILES["noisy"]], seed=3)
    assert not blank.layout_mask.any()  # this clip happens to print nothing
    assert missed_edges(blank.sem_image, blank.layout_mask) == 0.0


def test_edge_blur_is_wider_for_a_blurred_step_and_zero_without_outlines():
    mask = np.zeros((64, 64), bool)
    mask[:, 32:] = True
    sharp = np.where(mask, 200, 50).astype(np.uint8)
    blurred = cv2.GaussianBlur(sharp, (0, 0), 4.0)
    assert edge_blur(blurred, mask) > 2 * edge_blur(sharp, mask)
    assert edge_blur(sharp, np.zeros_like(mask)) == 0.0


def test_tta_of_a_mirror_safe_model_agrees_and_of_a_lopsided_one_does_not():
    pair = make_pair(1, size=64, nm_per_px=4.0, profiles=[PROFILES["clean"]], seed=3)
    fair = tta_probabilities(_StubPredictor(False), pair.sem_image, None, transforms=8)
    lopsided = tta_probabilities(_StubPredictor(True), pair.sem_image, None, transforms=4)
    assert fair.shape == (8, 64, 64)
    assert disagreement_map(fair).max() == 0.0
    assert disagreement_map(lopsided)[:, :16].mean() > 0.3


def test_tta_refuses_an_unknown_transform_count():
    with pytest.raises(UncertaintyError, match="transforms"):
        tta_probabilities(_StubPredictor(False), np.zeros((8, 8), np.uint8), None, transforms=3)


def test_auroc_counts_ranked_pairs_and_ties_half():
    assert auroc([0.9, 0.8, 0.1, 0.2], [True, True, False, False]) == 1.0
    assert auroc([0.1, 0.9], [True, False]) == 0.0
    assert auroc([0.5, 0.5], [True, False]) == 0.5
    assert np.isnan(auroc([0.5, 0.7], [True, True]))


def test_fit_logistic_ranks_separable_data_perfectly():
    rng = np.random.default_rng(0)
    wrong = rng.random(60) < 0.4
    rows = [{"tta_disagreement": (0.2 if w else 0.002) * rng.uniform(0.5, 2), "drift": rng.random()}
            for w in wrong]
    model = fit_logistic(rows, wrong, ("tta_disagreement", "drift"), note="test")
    assert auroc([model.score(r) for r in rows], wrong) == 1.0
    assert model.weights[0] > 0


def test_fit_logistic_needs_both_classes():
    with pytest.raises(UncertaintyError, match="both classes"):
        fit_logistic([{"drift": 1.0}] * 3, [True] * 3, ("drift",))


def test_model_round_trips_through_json(tmp_path):
    model = UncertaintyModel(("drift", "extreme_fill"), (0.0, 0.1), (1.0, 0.3), (1.5, 2.0), -1.0, 4, "n")
    assert load_model(save_model(model, tmp_path / "u.json")) == model


def test_malformed_coefficients_raise_uncertainty_error(tmp_path):
    path = tmp_path / "u.json"
    path.write_text(json.dumps({"features": ["drift"], "centers": [0], "scales": [0], "weights": [1],
                                "bias": 0, "transforms": 4, "note": ""}))
    with pytest.raises(UncertaintyError, match="scales positive"):
        load_model(path)
    with pytest.raises(UncertaintyError, match="unknown feature"):
        UncertaintyModel(("colour",), (0.0,), (1.0,), (1.0,), 0.0)


def test_shipped_coefficients_load_and_say_how_they_were_fitted():
    model = load_model(DEFAULT_UNCERTAINTY_FILE)
    assert "bench_uncertainty" in model.note
    assert model.transforms in (4, 8)


def test_shipped_score_rises_with_tta_disagreement_and_an_empty_layout():
    model = load_model()
    calm = {name: 0.0 for name in model.features} | {"tta_disagreement": 0.001, "tta_iou_loss": 0.002,
                                                     "low_confidence": 0.002, "missed_edges": 0.01,
                                                     "drift": 0.5, "mask_fraction": 0.3, "edge_blur": 3.4}
    worse = calm | {"tta_disagreement": 0.05, "tta_iou_loss": 0.3, "missed_edges": 0.9, "extreme_fill": 1.0}
    assert model.score(worse) > 0.5 > model.score(calm)
    assert model.reason(calm).startswith("consistent")


@pytest.fixture(scope="module")
def tiny_predictor(tmp_path_factory) -> Predictor:
    return Predictor.from_dir(make_tiny_model(tmp_path_factory.mktemp("tiny") / "m", steps=40),
                              device="cpu")


def test_assess_returns_a_score_a_reason_and_a_map_of_the_image_size(tiny_predictor):
    pair = make_pair(2, size=96, nm_per_px=4.0, profiles=[PROFILES["clean"]], seed=5)
    result = assess(tiny_predictor, pair.sem_image, 4.0)
    assert 0.0 <= result.score <= 1.0
    assert result.pixel_map.shape == (96, 96)
    assert 0.0 <= result.pixel_map.min() <= result.pixel_map.max() <= 1.0
    assert result.reason
    assert set(result.summary()) == {"uncertainty", "uncertainty_reason", "uncertainty_features"}
