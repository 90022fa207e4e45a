"""First run on an empty workspace: install the default model as production v1, add demo data.

Each step runs once and is remembered in the workspace settings, so a second start does
nothing (one settings read and one registry read).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loop.predictions import (
    DEFAULT_CACHE,
    PredictorCache,
    drift_reference,
    predict_sample,
    score_drift,
)
from semgan.drift import build_reference
from semgan.infer import ModelNotFoundError, resolve_model
from semgan.model_card import CARD, CONFIG, OPTIMIZER, STATE, WEIGHTS, ModelCard
from semgan.semsim import PROFILES, TRAINING_PROFILES
from semgan.synth import make_pair
from store import ModelVersion, Store

DEMO_SETTING = "bootstrap.demo"
DEMO_PROFILES = ("clean", "drifted")  # in-distribution and a tool the model never saw
DEMO_SEED = 2024
REFERENCE_SEED = 7
REFERENCE_IMAGES = 48  # fewer gives feature stds too noisy to trust
MODEL_FILES = (WEIGHTS, CONFIG, CARD, OPTIMIZER, STATE)


@dataclass(frozen=True)
class BootstrapReport:
    """What the first-run bootstrap did (nothing, on later starts)."""

    model_version: int | None  # production version after bootstrap (None: no model found)
    installed_model: bool
    demo_samples: int  # demo samples added by this run
    predicted: int
    seconds: float
    messages: tuple[str, ...]


def sha256_file(path: Path) -> str:
    """sha256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def reference_from_synthetic(nm_per_px: float, count: int = REFERENCE_IMAGES,
                             size: int = 256) -> dict:
    """A drift reference profile from synthetic images of the training tool profiles."""
    profiles = [PROFILES[name] for name in TRAINING_PROFILES]
    images = [make_pair(index, size=size, nm_per_px=nm_per_px, profiles=profiles,
                        seed=REFERENCE_SEED).sem_image for index in range(count)]
    return build_reference(images, nm_per_px).to_dict()


def install_model(store: Store, model_dir: str | Path, status: str = "production",
                  parent_version: int | None = None, training_summary: dict | None = None,
                  ensure_drift_reference: bool = True) -> ModelVersion:
    """Copy a model folder under the workspace's models/ and register it (sha256 of weights).

    Without a ``drift_reference`` in its card, one is built from synthetic images of the
    training tool profiles and written into the copied card (noted as such).
    """
    source = Path(resolve_model(model_dir))
    card = ModelCard.read(source)
    config = json.loads((source / CONFIG).read_text())
    weights_sha = sha256_file(source / WEIGHTS)
    target = store.models_dir / f"{source.name or 'model'}-{weights_sha[:12]}"
    if not target.exists():
        partial = target.with_name(f".{target.name}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        for name in MODEL_FILES:
            if (source / name).is_file():
                shutil.copy2(source / name, partial / name)
        if ensure_drift_reference and not isinstance(card.drift_reference, dict):
            card.drift_reference = reference_from_synthetic(card.pixel_size(config))
            card.drift_reference_note = ("built on install from synthetic images of the "
                                         f"training profiles {', '.join(TRAINING_PROFILES)}")
            card.write(partial)
        partial.rename(target)  # a crash mid-copy leaves only a .partial folder
    card = ModelCard.read(target)
    summary = {"source": str(source.resolve()), **(training_summary or {})}
    return store.register_model(target, weights_sha, config, card, parent_version, summary,
                                card.metrics or {}, status=status)


def add_demo_samples(store: Store, nm_per_px: float, count: int = 12, size: int = 256,
                     seed: int = DEMO_SEED) -> list[int]:
    """Synthetic SEM images, half "clean" and half "drifted", stored with their true layouts."""
    ids = []
    for index in range(count):
        profile = DEMO_PROFILES[index * len(DEMO_PROFILES) // max(count, 1)]
        pair = make_pair(index, size=size, nm_per_px=nm_per_px, profiles=[PROFILES[profile]],
                         seed=seed)
        truth_sha = store.put_blob(pair.layout_mask)
        sample = store.add_sample(pair.sem_image, nm_per_px, "demo", tool=f"sim:{profile}",
                                  name=f"demo-{profile}-{index:02d}", truth_sha=truth_sha)
        ids.append(sample.id)
    return ids


def bootstrap(store: Store, model_dir: str | Path | None = None, demo_count: int = 12,
              demo_size: int = 256, cache: PredictorCache = DEFAULT_CACHE,
              log: Callable[[str], None] = print) -> BootstrapReport:
    """Install the default (or given) model and a demo set on first run; later, do nothing."""
    started = time.perf_counter()
    messages: list[str] = []

    def say(message: str) -> None:
        messages.append(message)
        log(message)

    production = store.production_model()
    installed = False
    if production is None:
        try:
            production = install_model(store, "default" if model_dir is None else model_dir,
                                       training_summary={"installed_by": "bootstrap"})
            installed = True
            say(f"installed model v{production.version} as production "
                f"(weights sha256 {production.weights_sha256[:12]}…)")
        except ModelNotFoundError as exc:
            say(f"no model installed: {exc}")
    elif model_dir is not None:
        say(f"workspace already has production model v{production.version}; "
            "--model-dir is only used on an empty workspace")
    new_ids: list[int] = []
    if store.get_setting(DEMO_SETTING) is None:
        nm_per_px = 4.0 if production is None else \
            ModelCard.from_dict(production.card).pixel_size(production.config)
        new_ids = add_demo_samples(store, nm_per_px, demo_count, demo_size)
        store.set_setting(DEMO_SETTING, {"samples": new_ids, "created": time.time()})
        say(f"added {len(new_ids)} demo SEM images ({' and '.join(DEMO_PROFILES)} tool "
            f"profiles, {demo_size}×{demo_size} px at {nm_per_px:g} nm/px)")
    predicted = 0
    if production is not None and (installed or new_ids):
        reference = drift_reference(production)
        ids = new_ids or store.get_setting(DEMO_SETTING, {}).get("samples", [])
        for sample_id in ids:
            if reference is not None:
                score_drift(store, sample_id, reference)
            if store.get_prediction(sample_id, production.version) is None:
                predict_sample(store, sample_id, production.version, cache)
                predicted += 1
        if predicted:
            say(f"predicted {predicted} demo images with model v{production.version}")
    return BootstrapReport(production.version if production else None, installed,
                           len(new_ids), predicted, time.perf_counter() - started,
                           tuple(messages))

