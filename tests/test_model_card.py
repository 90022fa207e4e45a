"""ModelCard: card.json round-trips byte for byte, unknown keys survive, one rule for nm/px."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from semgan.config import PRESETS
from semgan.infer import DEFAULT_MODEL_DIR
from semgan.model_card import CARD, ModelCard, ModelCardError

SHIPPED = DEFAULT_MODEL_DIR / CARD


def test_the_shipped_card_loads_and_resaves_byte_for_byte(tmp_path: Path) -> None:
    card = ModelCard.read(DEFAULT_MODEL_DIR)
    assert card.nm_per_px == 4.0 and card.export["critics"] is True and card.lineage
    assert card.to_dict() == json.loads(SHIPPED.read_text())
    card.write(tmp_path)
    assert (tmp_path / CARD).read_bytes() == SHIPPED.read_bytes()
    assert card.copy() == card and card.copy().to_json() == card.to_json()


def test_an_unknown_key_survives_in_place_and_a_null_stays_null(tmp_path: Path) -> None:
    data = {"format": "semgan-model-card", "from_the_future": {"x": [1, 2]}, "device": None, "steps": 3}
    (tmp_path / CARD).write_text(json.dumps(data, indent=2) + "\n")
    card = ModelCard.read(tmp_path)
    assert card.extra == {"from_the_future": {"x": [1, 2]}} and "device" in card and card.device is None
    card.write(tmp_path)
    assert (tmp_path / CARD).read_text() == json.dumps(data, indent=2) + "\n"


def test_new_keys_are_appended_in_the_order_they_are_set() -> None:
    card = ModelCard.from_dict({"steps": 1, "nm_per_px": 2.0})
    card.update(fine_tune={"strategy": "tools"}, note="kept", steps=2)
    card.drift_reference = {}
    assert list(card.to_dict()) == ["steps", "nm_per_px", "fine_tune", "note", "drift_reference"]
    assert card.extra["note"] == "kept" and card.to_dict().get("lineage", "absent") == "absent"
    assert "lineage" not in card and ModelCard.of(card) is card


def test_a_new_training_card_has_every_key_of_a_trained_one() -> None:
    card = ModelCard.new(preset="tiny", nm_per_px=4.0, data_recipe={"size": 64}, command=None,
                         fine_tuned_from=None, lr_scale=1.0, created="now", torch_version="t",
                         semgan_version="s")
    assert list(card.to_dict())[:3] == ["format", "version", "preset"]
    assert card.to_dict()["fine_tuned_from"] is None and card.image_size(256) == 64


def test_pixel_size_is_the_cards_else_the_configs_else_the_default() -> None:
    config = PRESETS["tiny"].replace("data", nm_per_px=2.5)
    assert ModelCard(nm_per_px=3.0).pixel_size(config) == 3.0
    assert ModelCard().pixel_size(config) == 2.5
    assert ModelCard(nm_per_px=0.0).pixel_size(config.to_dict()) == 2.5
    assert ModelCard().pixel_size() == 4.0
    assert ModelCard().image_size(256) == 256


def test_a_card_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(ModelCardError, match="JSON object"):
        ModelCard.from_dict([1, 2])  # type: ignore[arg-type]
