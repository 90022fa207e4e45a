"""``python -m semgan predict|evaluate --workspace W --model production|vN`` via models/registry.json."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from semgan.__main__ import main
from semgan.registry import (
    RegistryError,
    RegistryModelError,
    resolve_model_spec,
    resolve_registry_model,
)
from semgan.synth import resolve_profiles, write_dataset
from store import Store
from tests.e2e.tiny_model import make_tiny_model

ROOT = Path(__file__).resolve().parents[1]


def model_folder(path: Path) -> Path:
    """A folder that looks like a model to the resolver (weights file present)."""
    path.mkdir(parents=True)
    (path / "weights.safetensors").write_bytes(b"")
    return path


def register(store: Store, name: str, status: str = "candidate") -> None:
    store.register_model(model_folder(store.models_dir / name), "c" * 64, {}, {}, None, {}, {},
                         status=status)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """v1 archived, v2 production, v3 candidate."""
    with Store.open(tmp_path / "ws") as store:
        register(store, "first", status="production")
        register(store, "second")
        register(store, "third")
        store.promote(2, "better", "tester")
    return tmp_path / "ws"


@pytest.fixture(scope="module")
def tiny_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace whose production model v1 is a real (barely trained) tiny model."""
    root = tmp_path_factory.mktemp("tinyws") / "ws"
    with Store.open(root) as store:
        folder = make_tiny_model(store.models_dir / "tiny", steps=2)
        store.register_model(folder, "d" * 64, {}, {}, None, {}, {}, status="production")
    return root


def test_production_resolves_to_the_production_folder(workspace: Path) -> None:
    assert resolve_registry_model(workspace, "production") == workspace / "models" / "second"


def test_v_number_resolves_to_that_version(workspace: Path) -> None:
    assert resolve_registry_model(workspace, "v3") == workspace / "models" / "third"


def test_bare_number_resolves_to_that_version(workspace: Path) -> None:
    assert resolve_registry_model(workspace, "1") == workspace / "models" / "first"


def test_unknown_version_lists_the_registered_ones(workspace: Path) -> None:
    with pytest.raises(RegistryModelError,
                       match=r"v7 is not registered .*v1 \(archived\), v2 \(production\), "
                             r"v3 \(candidate\)"):
        resolve_registry_model(workspace, "v7")


def test_no_production_model_is_an_error(tmp_path: Path) -> None:
    with Store.open(tmp_path / "ws") as store:
        register(store, "only")
    with pytest.raises(RegistryModelError, match="no production model"):
        resolve_registry_model(tmp_path / "ws", "production")


def test_a_deleted_model_folder_is_an_error(workspace: Path) -> None:
    shutil.rmtree(workspace / "models" / "second")
    with pytest.raises(RegistryModelError, match="that folder is missing"):
        resolve_registry_model(workspace, "production")


def test_a_folder_without_weights_is_an_error(workspace: Path) -> None:
    (workspace / "models" / "third" / "weights.safetensors").unlink()
    with pytest.raises(RegistryModelError, match=r"has no weights\.safetensors"):
        resolve_registry_model(workspace, "v3")


def test_a_folder_never_opened_by_the_app_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="never opened by the app"):
        resolve_registry_model(tmp_path, "production")


def test_a_missing_workspace_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="does not exist"):
        resolve_registry_model(tmp_path / "nowhere", "production")


def test_a_corrupt_registry_file_is_an_error(workspace: Path) -> None:
    (workspace / "models" / "registry.json").write_text("{not json")
    with pytest.raises(RegistryError, match="unreadable model registry"):
        resolve_registry_model(workspace, "production")


def test_a_moved_workspace_still_resolves(workspace: Path, tmp_path: Path) -> None:
    moved = shutil.move(workspace, tmp_path / "moved")
    assert resolve_registry_model(moved, "production") == Path(moved) / "models" / "second"


def test_a_registry_name_without_workspace_asks_for_one() -> None:
    with pytest.raises(RegistryError, match="pass --workspace"):
        resolve_model_spec("production", None)


def test_a_folder_path_passes_through_with_a_workspace(workspace: Path) -> None:
    assert resolve_model_spec("some/model", workspace) == ("some/model", "some/model")


def test_semgan_registry_does_not_import_the_store() -> None:
    code = ("import sys, semgan.registry, semgan.commands.predict; "
            "print(sorted(m for m in ('store', 'sqlite3', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_cli_predict_uses_the_production_model(tiny_workspace: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    Image.fromarray(np.full((40, 48), 90, np.uint8)).save(tmp_path / "a.png")
    code = main(["predict", "--workspace", str(tiny_workspace), "--model", "production",
                 "--input", str(tmp_path / "a.png"), "--out", str(tmp_path / "out"),
                 "--nm-per-px", "4", "--device", "cpu"])
    assert code == 0
    assert np.asarray(Image.open(tmp_path / "out" / "a.png")).shape == (40, 48)
    assert f"model v1 (production): {tiny_workspace / 'models' / 'tiny'}" in capsys.readouterr().err


def test_cli_predict_takes_the_workspace_from_the_environment(
        tiny_workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEMGAN_WORKSPACE", str(tiny_workspace))
    Image.fromarray(np.full((32, 32), 90, np.uint8)).save(tmp_path / "a.png")
    code = main(["predict", "--model", "v1", "--input", str(tmp_path / "a.png"),
                 "--out", str(tmp_path / "out"), "--nm-per-px", "4", "--device", "cpu"])
    assert code == 0
    assert (tmp_path / "out" / "a.png").is_file()


def test_cli_predict_production_without_workspace_exits_2(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("SEMGAN_WORKSPACE", raising=False)
    monkeypatch.chdir(tmp_path)
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "a.png")
    code = main(["predict", "--model", "production", "--input", str(tmp_path / "a.png"),
                 "--out", str(tmp_path / "out")])
    assert code == 2
    assert "pass --workspace" in capsys.readouterr().err


def test_cli_evaluate_labels_the_registry_version(tiny_workspace: Path, tmp_path: Path) -> None:
    write_dataset(tmp_path / "data", 2, size=64, nm_per_px=4.0,
                  profiles=resolve_profiles("clean"), seed=3)
    code = main(["evaluate", "--workspace", str(tiny_workspace), "--model", "v1",
                 "--data", str(tmp_path / "data"), "--json", str(tmp_path / "r.json"),
                 "--device", "cpu", "--no-baseline"])
    assert code == 0
    result = json.loads((tmp_path / "r.json").read_text())
    assert (list(result["methods"]), result["items"]) == (["v1 (production)"], 2)
