"""`python -m store` smoke tests through a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from store import Store

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, env_workspace: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SEMGAN_WORKSPACE"}
    if env_workspace is not None:
        env["SEMGAN_WORKSPACE"] = str(env_workspace)
    return subprocess.run([sys.executable, "-m", "store", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli") / "ws"
    with Store.open(root) as store:
        for seed in range(3):
            image = np.random.default_rng(seed).integers(0, 256, (16, 16), dtype=np.uint8)
            sample = store.add_sample(image, 4.0, "demo", name=f"clip{seed}.png")
            store.save_correction(sample.id, image > 128, "ann")
        store.register_model(root / "models" / "v1.safetensors", "a" * 64, {}, {}, None, {},
                             {"ssim": 0.71}, status="production")
        store.enqueue_job("finetune", {"epochs": 20})
    return root


def test_samples_table_lists_every_sample(workspace: Path) -> None:
    result = run_cli("--workspace", str(workspace), "samples")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["id", "name", "size"]
    assert [line.split()[1] for line in lines[2:]] == ["clip2.png", "clip1.png", "clip0.png"]


def test_pairs_json_after_the_command(workspace: Path) -> None:
    result = run_cli("pairs", "--json", "--workspace", str(workspace))
    assert result.returncode == 0, result.stderr
    assert [p["sample_id"] for p in json.loads(result.stdout)] == [1, 2, 3]


def test_models_jobs_events_counts_from_env_workspace(workspace: Path) -> None:
    outputs = {c: run_cli("--json", c, env_workspace=workspace) for c in
               ("models", "jobs", "events", "counts", "audit")}
    assert {c: r.returncode for c, r in outputs.items()} == dict.fromkeys(outputs, 0)
    assert json.loads(outputs["models"].stdout)[0]["status"] == "production"
    assert json.loads(outputs["jobs"].stdout)[0]["kind"] == "finetune"
    assert json.loads(outputs["counts"].stdout)["corrected_samples"] == 3
    assert json.loads(outputs["audit"].stdout)[0]["action"] == "promote"
    assert json.loads(outputs["events"].stdout)[0]["kind"] == "job_queued"


def test_export_command_writes_manifest(workspace: Path, tmp_path: Path) -> None:
    result = run_cli("--workspace", str(workspace), "export", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"exported 3 pairs to {tmp_path / 'out'}"
    assert len(list((tmp_path / "out" / "layout").glob("*.png"))) == 3


def test_gc_command_reports(workspace: Path) -> None:
    result = run_cli("--workspace", str(workspace), "gc")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("removed 0 files")


def test_missing_workspace_is_an_error_not_a_new_folder(tmp_path: Path) -> None:
    result = run_cli("--workspace", str(tmp_path / "typo"), "samples")
    assert (result.returncode, (tmp_path / "typo").exists()) == (1, False)
    assert "no workspace at" in result.stderr
