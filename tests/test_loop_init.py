"""``python -m loop init``: a workspace set up headless, then usable by ``semgan predict``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from loop.__main__ import main as loop_main
from semgan.imageio import load_image, save_png
from store import Store
from tests.support import save_tiny_model

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                          cwd=REPO, env=ENV, timeout=300)


def test_init_with_no_demo_then_predict_with_the_production_model(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    init = _run("loop", "init", "--workspace", str(workspace), "--demo", "0")
    assert init.returncode == 0, init.stderr
    assert "ready: production v1" in init.stdout
    (tmp_path / "in").mkdir()
    save_png(tmp_path / "in" / "sem.png", np.full((40, 48), 90, np.uint8))
    predict = _run("semgan", "predict", "--workspace", str(workspace), "--model", "production",
                   "--input", str(tmp_path / "in"), "--out", str(tmp_path / "out"))
    assert predict.returncode == 0, predict.stderr
    assert load_image(next((tmp_path / "out").glob("*.png"))).pixels.shape == (40, 48)
    with Store.open(workspace) as store:
        assert (store.counts().samples, store.production_model().version) == (0, 1)


def test_init_installs_a_model_folder_and_demo_images(tmp_path: Path, capsys) -> None:
    model = save_tiny_model(tmp_path / "tiny")
    assert loop_main(["init", "--workspace", str(tmp_path / "ws"), "--model", str(model),
                      "--demo", "2"]) == 0
    with Store.open(tmp_path / "ws") as store:
        assert store.counts().samples == 2
        assert store.get_prediction(store.list_samples()[0].id, 1) is not None


def test_a_second_init_changes_nothing(tmp_path: Path, capsys) -> None:
    model = str(save_tiny_model(tmp_path / "tiny"))
    argv = ["init", "--workspace", str(tmp_path / "ws"), "--model", model, "--demo", "1"]
    assert loop_main(argv) == 0
    capsys.readouterr()
    assert loop_main([*argv[:-2], "--demo", "5"]) == 0
    assert capsys.readouterr().out.endswith("ready: production v1 (already set up)\n")
    with Store.open(tmp_path / "ws") as store:
        assert (store.counts().samples, len(store.list_models())) == (1, 1)


def test_init_with_a_missing_model_folder_exits_2(tmp_path: Path, capsys) -> None:
    code = loop_main(["init", "--workspace", str(tmp_path / "ws"), "--model",
                      str(tmp_path / "nowhere"), "--demo", "0"])
    assert code == 2
    assert "no production model" in capsys.readouterr().err
