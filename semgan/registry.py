"""Workspace model names ("production", "v3") → model folders, read from ``models/registry.json``.

The app's store keeps the model registry in SQLite and mirrors it to ``W/models/registry.json``
after every change; semgan reads only that file (semgan has no SQL and never imports the store).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from semgan.errors import SemganError
from semgan.model_card import WEIGHTS

WORKSPACE_ENV = "SEMGAN_WORKSPACE"
REGISTRY_FILE = Path("models") / "registry.json"
REGISTRY_FORMAT = "semgan-registry"
PRODUCTION = "production"
_VERSION_NAME = re.compile(r"[vV]?(\d+)")


class RegistryError(SemganError):
    """The workspace or its registry file cannot be read."""


class RegistryModelError(RegistryError):
    """A registry name does not resolve to a usable model folder."""


@dataclass(frozen=True)
class RegistryModel:
    """One registered model version as the registry file describes it."""

    version: int
    status: str
    path: Path  # the model folder
    weights_sha256: str
    parent_version: int | None


def is_registry_name(name: str) -> bool:
    """True for names the registry resolves: "production", "vN" or "N"."""
    return name.strip().lower() == PRODUCTION or _VERSION_NAME.fullmatch(name.strip()) is not None


def workspace_from_env() -> str | None:
    """The workspace named by $SEMGAN_WORKSPACE, if set and not empty."""
    return os.environ.get(WORKSPACE_ENV) or None


def read_registry(workspace: str | Path) -> dict:
    """The parsed ``W/models/registry.json`` (RegistryError if absent or malformed)."""
    root = Path(workspace).expanduser()
    if not root.is_dir():
        raise RegistryError(f"workspace {root} does not exist (or is not a folder); check "
                            f"--workspace / ${WORKSPACE_ENV}")
    path = root / REGISTRY_FILE
    if not path.is_file():
        raise RegistryError(
            f"{root} has no {REGISTRY_FILE.as_posix()}: not a semgan workspace, or never opened "
            f"by the app; run `python app.py --workspace {root}` or "
            f"`python -m store --workspace {root} models` once")
    try:
        registry = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RegistryError(f"{path}: unreadable model registry ({exc}); open the workspace "
                            f"once with `python -m store --workspace {root} models` to rewrite it") \
            from exc
    if (not isinstance(registry, dict) or registry.get("format") != REGISTRY_FORMAT
            or not isinstance(registry.get("models"), list)):
        raise RegistryError(f"{path}: not a semgan model registry (expected format "
                            f"{REGISTRY_FORMAT!r} with a 'models' list)")
    return registry


def _entry(root: Path, item: dict, path: Path) -> RegistryModel:
    """A RegistryModel from one 'models' item; relative paths resolve against the workspace."""
    try:
        relative = item.get("relative_path")
        folder = root / relative if relative else Path(item["path"])
        return RegistryModel(int(item["version"]), str(item["status"]), folder,
                             str(item.get("weights_sha256") or ""), item.get("parent_version"))
    except (KeyError, TypeError, ValueError) as exc:
        raise RegistryError(f"{path}: malformed model entry {item!r}") from exc


def registry_model(workspace: str | Path, name: str) -> RegistryModel:
    """The registered model that ``name`` ("production", "vN" or "N") names, checked on disk."""
    root = Path(workspace).expanduser().resolve()
    registry = read_registry(root)
    path = root / REGISTRY_FILE
    models = {m.version: m for m in (_entry(root, item, path) for item in registry["models"])}
    known = ", ".join(f"v{v} ({m.status})" for v, m in sorted(models.items())) or "none"
    key = name.strip()
    if key.lower() == PRODUCTION:
        production = [m for m in models.values() if m.status == PRODUCTION]
        if not production:
            raise RegistryModelError(
                f"workspace {root} has no production model (registered: {known}); promote one "
                "in the app's Models tab, or pass --model vN")
        model = production[0]
    else:
        match = _VERSION_NAME.fullmatch(key)
        if match is None:
            raise RegistryModelError(f"{name!r} is not a registry name: use 'production', "
                                     "'vN' or 'N'")
        version = int(match.group(1))
        if version not in models:
            raise RegistryModelError(f"model v{version} is not registered in {root}; "
                                     f"registered: {known}")
        model = models[version]
    if not model.path.is_dir():
        raise RegistryModelError(
            f"model v{model.version} is registered at {model.path}, but that folder is missing "
            "(deleted, or the workspace was copied without its models/ folder)")
    if not (model.path / WEIGHTS).is_file():
        raise RegistryModelError(f"model v{model.version}: {model.path} has no {WEIGHTS}")
    return model


def resolve_registry_model(workspace: str | Path, name: str) -> Path:
    """The folder of the model ``name`` ("production", "vN" or "N") registered in ``workspace``."""
    return registry_model(workspace, name).path


def resolve_model_spec(spec: str, workspace: str | Path | None) -> tuple[str | Path, str]:
    """A CLI ``--model`` value → (folder or "default" for ``resolve_model``, a display label).

    With a workspace, "production", "vN" and "N" go through its registry; a folder path or
    "default" is returned unchanged. Without one, a registry name is an error that says to
    pass --workspace, unless a model folder of that name exists here.
    """
    if not is_registry_name(spec):
        return spec, spec
    if workspace is None:
        if (Path(spec) / WEIGHTS).is_file():
            return spec, spec  # an existing model folder named like a version keeps working
        raise RegistryError(
            f"--model {spec} names a model in a workspace's registry: pass --workspace W (or "
            f"set ${WORKSPACE_ENV}), or give a model folder path")
    model = registry_model(workspace, spec)
    label = f"v{model.version}" + (" (production)" if model.status == PRODUCTION else "")
    return model.path, label
