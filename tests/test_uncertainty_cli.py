"""``python -m semgan predict --report FILE.json``: per image uncertainty, drift and seconds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from semgan.__main__ import main
from semgan.imageio import save_png
from semgan.semsim import PROFILES
from semgan.synth import make_pair
from tests.e2e.tiny_model import make_tiny_model


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with one clean-tool and one drifted-tool SEM image of the same layout."""
    folder = tmp_path_factory.mktemp("sem")
    for tool in ("clean", "drifted"):
        pair = make_pair(1, size=256, nm_per_px=4.0, profiles=[PROFILES[tool]], seed=7)
        save_png(folder / f"{tool}.png", pair.sem_image)
    return folder


def _report(model: str | Path, images: Path, out: Path) -> dict[str, dict]:
    code = main(["predict", "--model", str(model), "--input", str(images), "--out", str(out / "masks"),
                 "--nm-per-px", "4", "--device", "cpu", "--report", str(out / "report.json")])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["format"] == "semgan-predict-report/1"
    return {entry["name"]: entry for entry in report["images"]}


def test_report_has_one_entry_per_image_with_its_numbers(images: Path, tmp_path: Path) -> None:
    model = make_tiny_model(tmp_path / "tiny", steps=20)
    entries = _report(model, images, tmp_path)
    assert sorted(entries) == ["clean.png", "drifted.png"]
    for entry in entries.values():
        assert set(entry) == {"name", "uncertainty", "drift", "seconds", "reason"}
        assert 0.0 <= entry["uncertainty"] <= 1.0
        assert entry["seconds"] > 0


def test_default_model_reports_the_drifted_image_as_likely_wrong(images: Path, tmp_path: Path) -> None:
    entries = _report("default", images, tmp_path)
    assert entries["drifted.png"]["uncertainty"] > 0.5 > entries["clean.png"]["uncertainty"]
    assert entries["drifted.png"]["drift"] > 1.0  # flagged, as the Review tab's badge says
