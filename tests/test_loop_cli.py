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
from tests.support import register_dummy_production

REPO = Path(__file__).resolve().parents[1]


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


def _sem_folder(folder: Path, count: int) -> Path:
    """A folder of ``count`` distinct random 32 px SEM PNGs."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(3)
    for index in range(count):
        save_png(folder / f"scan{index}.png", rng.integers(0, 256, (32, 32), dtype=np.uint8))
    return folder


def test_ingest_wait_predicts_every_image_in_the_background(workspace: Path,
                                                            tmp_path: Path) -> None:
    folder = _sem_folder(tmp_path / "lot", 3)
    env = {k: v for k, v in os.environ.items() if k != "SEMGAN_WORKSPACE"}
    done = subprocess.run([sys.executable, "-m", "loop", "ingest", "--workspace", str(workspace),
                           str(folder), "--nm-per-px", "4", "--tool", "cdsem-9", "--wait"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    pid = worker_pid(workspace)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)  # the worker would idle for 10 minutes
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 stored, 0 skipped" in done.stdout
    assert "job 1 succeeded: 3 predicted, 0 already predicted, 0 failed (v1)" in done.stdout
    with Store.open(workspace) as store:
        uploads = store.list_samples(tool="cdsem-9")
        assert [store.get_prediction(s.id, 1) is not None for s in uploads] == [True] * 3


def test_ingest_reports_a_bad_file_and_queues_the_rest(workspace: Path, tmp_path: Path,
                                                       capsys) -> None:
    folder = _sem_folder(tmp_path / "lot", 2)
    (folder / "broken.tif").write_bytes(b"II*\x00garbage")
    code = main(["ingest", "--workspace", str(workspace), str(folder), "--nm-per-px", "4",
                 "--no-spawn"])
    out = capsys.readouterr().out
    assert code == 1
    assert "skipped broken.tif: " in out and "2 stored, 1 skipped" in out
    assert "predicting 2 images in the background with v1 (job 1" in out


def test_import_pairs_runs_the_automatic_trigger(tmp_path: Path, capsys,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("loop.process.spawn_worker", lambda workspace: 0)
    with Store.open(tmp_path / "ws") as store:
        register_dummy_production(store)
    main(["settings", "--workspace", str(tmp_path / "ws"), "--threshold", "3"])
    _sem_folder(tmp_path / "sem", 4)
    (tmp_path / "layout").mkdir()
    for index in range(4):
        save_png(tmp_path / "layout" / f"scan{index}.png", np.eye(32, dtype=bool))
    capsys.readouterr()
    assert main(["import-pairs", "--workspace", str(tmp_path / "ws"), "--sem",
                 str(tmp_path / "sem"), "--layout", str(tmp_path / "layout"),
                 "--nm-per-px", "4"]) == 0
    assert "automatic trigger: queued fine-tune job 1: 4 new corrected pairs" in \
        capsys.readouterr().out
