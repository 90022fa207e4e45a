"""First run: production v1 from a model folder, a demo set with truth and drift, then nothing."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch

from app import build_parser
from loop.bootstrap import BootstrapReport, bootstrap, sha256_file
from store import Store
from tests.e2e.conftest import free_port
from tests.e2e.tiny_model import make_tiny_model

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model folder standing in for the shipped default."""
    return make_tiny_model(tmp_path_factory.mktemp("model") / "tiny", steps=20)


@pytest.fixture(scope="module")
def booted(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) \
        -> tuple[Path, BootstrapReport]:
    """A workspace after one bootstrap."""
    workspace = tmp_path_factory.mktemp("booted") / "ws"
    with Store.open(workspace) as store:
        return workspace, bootstrap(store, model_dir, log=lambda line: None)


def test_first_run_installs_the_model_as_production_v1(booted, model_dir: Path) -> None:
    workspace, report = booted
    with Store.open(workspace) as store:
        model = store.production_model()
    assert (report.model_version, report.installed_model, model.version) == (1, True, 1)
    assert model.weights_sha256 == sha256_file(model_dir / "weights.safetensors")
    assert Path(model.path).parent == workspace / "models"
    assert sha256_file(Path(model.path) / "weights.safetensors") == model.weights_sha256


def test_first_run_adds_half_clean_half_drifted_demo_images_with_truth(booted) -> None:
    workspace, report = booted
    with Store.open(workspace) as store:
        samples = store.list_samples(limit=100)
    assert report.demo_samples == 12
    assert sorted(s.tool for s in samples) == ["sim:clean"] * 6 + ["sim:drifted"] * 6
    assert all(s.truth_sha is not None and s.source == "demo" for s in samples)


def test_first_run_predicts_every_demo_image(booted) -> None:
    workspace, report = booted
    with Store.open(workspace) as store:
        predicted = [store.get_prediction(s.id, 1) for s in store.list_samples(limit=100)]
    assert report.predicted == 12
    assert all(p is not None for p in predicted)


def test_drifted_demo_images_are_flagged_against_the_built_reference(booted) -> None:
    workspace, _ = booted
    with Store.open(workspace) as store:
        card = store.production_model().card
        drifted = store.list_samples(tool="sim:drifted", limit=100)
    assert "drift_reference" in card and "synthetic" in card["drift_reference_note"]
    assert sum(s.drift_flagged for s in drifted) >= 5


def test_a_second_run_does_nothing(booted, model_dir: Path) -> None:
    workspace, _ = booted
    with Store.open(workspace) as store:
        before = store.counts()
        report = bootstrap(store, model_dir, log=lambda line: None)
        after = store.counts()
    assert (report.installed_model, report.demo_samples, report.predicted) == (False, 0, 0)
    assert report.seconds < 0.5
    assert after == before


def test_without_a_model_the_demo_set_is_added_but_not_predicted(tmp_path: Path) -> None:
    with Store.open(tmp_path / "ws") as store:
        report = bootstrap(store, tmp_path / "no-such-model", demo_count=2,
                           log=lambda line: None)
        counts = store.counts()
    assert report.model_version is None
    assert "not a model folder" in report.messages[0]
    assert (counts.models, counts.samples, counts.predictions) == (0, 2, 0)


def test_the_app_binds_to_localhost_without_share_by_default() -> None:
    args = build_parser().parse_args([])
    assert (args.host, args.share, args.model_dir) == ("127.0.0.1", False, None)


def test_the_app_without_a_model_still_serves_the_ui_and_says_how_to_get_one(
        tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "app.log"
    with open(log, "w") as handle:
        process = subprocess.Popen(
            [sys.executable, str(REPO / "app.py"), "--workspace", str(tmp_path / "ws"),
             "--model-dir", str(tmp_path / "missing"), "--port", str(port), "--demo-count", "1"],
            cwd=REPO, stdout=handle, stderr=subprocess.STDOUT,
            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                 "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 90
        while "Running on local URL" not in log.read_text():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as response:
            assert response.status == 200
        assert "No model installed" in log.read_text()
        assert "--model-dir MODEL_DIR" in log.read_text()
    finally:
        process.terminate()
        process.wait(timeout=20)
