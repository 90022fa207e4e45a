"""`python -m loop` smoke tests: status, finetune --wait (real processes), import-pairs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from loop.__main__ import main
from loop.worker import worker_pid
from semgan.imageio import save_png
from store import Store
from tests.test_loop_support import add_pairs, install_production, register_dummy_production

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    with Store.open(tmp_path / "ws") as store:
        install_production(store)
        add_pairs(store, 8)
    return tmp_path / "ws"


def test_status_json_reports_counters_and_production(workspace: Path, capsys) -> None:
    assert main(["status", "--workspace", str(workspace), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["production"]["version"] == 1
    assert status["counts"]["corrected_samples"] == 8
    assert status["triggers"]["settings"]["threshold"] == 50
    assert status["current_job"] is None


def test_finetune_wait_runs_the_job_and_exits_zero(workspace: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SEMGAN_WORKSPACE"}
    done = subprocess.run([sys.executable, "-m", "loop", "finetune", "--workspace",
                           str(workspace), "--wait"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    pid = worker_pid(workspace)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)  # the worker would idle for 10 minutes
    assert done.returncode == 0, done.stderr
    assert "job 1 succeeded: candidate v2" in done.stdout
    with Store.open(workspace) as store:
        assert store.get_model(2).parent_version == 1


def test_finetune_without_production_exits_two(tmp_path: Path, capsys) -> None:
    assert main(["finetune", "--workspace", str(tmp_path / "empty"), "--no-spawn"]) == 2
    assert "no production model" in capsys.readouterr().err


def test_finetune_set_overrides_the_config(workspace: Path, capsys) -> None:
    assert main(["finetune", "--workspace", str(workspace), "--no-spawn",
                 "--set", "epochs=3", "--set", "gate.max_iou_drop=0.01"]) == 0
    with Store.open(workspace) as store:
        params = store.list_jobs()[0].params
    assert (params["config"]["epochs"], params["config"]["gate"]["max_iou_drop"]) == (3, 0.01)


def test_import_pairs_command_reports_skipped_pair(tmp_path: Path, capsys) -> None:
    for sub in ("sem", "layout"):
        (tmp_path / sub).mkdir()
    rng = np.random.default_rng(0)
    save_png(tmp_path / "sem" / "a.png", rng.integers(0, 256, (32, 32), dtype=np.uint8))
    save_png(tmp_path / "layout" / "a.png", rng.random((32, 32)) > 0.5)
    save_png(tmp_path / "sem" / "b.png", rng.integers(0, 256, (32, 32), dtype=np.uint8))
    save_png(tmp_path / "layout" / "b.png", rng.random((16, 32)) > 0.5)
    code = main(["import-pairs", "--workspace", str(tmp_path / "ws"), "--sem",
                 str(tmp_path / "sem"), "--layout", str(tmp_path / "layout"), "--nm-per-px",
                 "4", "--no-trigger"])
    out = capsys.readouterr().out
    assert code == 0
    assert "1 imported, 1 skipped" in out
    assert "skipped b.png: size mismatch" in out


def test_check_triggers_says_nothing_is_due(tmp_path: Path, capsys) -> None:
    with Store.open(tmp_path / "ws") as store:
        register_dummy_production(store)
    assert main(["check-triggers", "--workspace", str(tmp_path / "ws"), "--no-spawn"]) == 0
    assert capsys.readouterr().out.startswith("nothing due: 0/50 new pairs")


def test_settings_change_threshold(tmp_path: Path, capsys) -> None:
    assert main(["settings", "--workspace", str(tmp_path / "ws"), "--threshold", "20",
                 "--auto-trigger", "off"]) == 0
    shown = json.loads(capsys.readouterr().out)["triggers"]
    assert (shown["threshold"], shown["auto_trigger"]) == (20, False)
