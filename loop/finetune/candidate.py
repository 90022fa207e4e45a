"""Where a fine-tune's result goes: the candidate registered as vN, and the folder an
interrupted run keeps for the next worker to resume from."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from loop.finetune.progress import Reporter
from loop.jobs import TrainingSummary
from semgan.model_card import WEIGHTS, ModelCard
from store import ModelVersion, Store


@dataclass(frozen=True)
class FinetuneOutcome:
    """A registered candidate and what the gate needs next."""

    candidate: ModelVersion
    summary: TrainingSummary
    anchor_test: Path
    tile_size: int


def drift_reference(folders: tuple[Path, ...], nm_per_px: float) -> dict:
    """The drift monitor's reference of the images a candidate learned from (anchor + corrected)."""
    from semgan.drift import build_reference
    from semgan.imageio import load_image

    return build_reference(
        [load_image(folder / item["sem"]).pixels for folder in folders
         for item in json.loads((folder / "manifest.json").read_text())["items"]],
        nm_per_px).to_dict()


def register_candidate(store: Store, trained: Path, config: dict, summary: TrainingSummary,
                       reference: dict, production: ModelVersion, cutoff: int, nm_per_px: float,
                       job_id: int | None) -> ModelVersion:
    """Move the trained folder to models/vN, complete its card, register it as a candidate."""
    version = max((m.version for m in store.list_models()), default=0) + 1
    target = store.models_dir / f"v{version}"
    if target.exists():  # a leftover, or another registration took the number
        target = store.models_dir / f"v{version}-job{job_id or os.getpid()}"
    trained.rename(target)
    card = ModelCard.read(target)
    card.update(nm_per_px=nm_per_px, drift_reference=reference, fine_tune=summary.to_dict(),
                fine_tuned_from=f"model v{production.version}", init_note=summary.init)
    card.write(target)
    weights_sha = hashlib.sha256((target / WEIGHTS).read_bytes()).hexdigest()
    return store.register_model(target, weights_sha, config, card, production.version, summary.to_dict(),
                                {}, status="candidate", data_cutoff_pair_id=cutoff)


def resume_dir(store: Store, job_id: int | None) -> Path:
    """Where an interrupted fine-tune keeps its work folder (checkpoint included)."""
    return store.models_dir / f".finetune-job{job_id or os.getpid()}.resume"


def keep_for_resume(store: Store, job_id: int | None, work: Path, state: dict) -> None:
    """Move the work folder aside with ``resume.json`` so the job's next run picks it up."""
    (work / "resume.json").write_text(json.dumps(state))
    target = resume_dir(store, job_id)
    shutil.rmtree(target, ignore_errors=True)
    work.rename(target)


def take_resume(store: Store, job_id: int | None, production_version: int, work: Path,
                reporter: Reporter) -> dict | None:
    """The saved state of an interrupted run moved back to ``work``, or None (start afresh)."""
    saved = resume_dir(store, job_id)
    try:
        state = json.loads((saved / "resume.json").read_text())
    except (OSError, ValueError):
        shutil.rmtree(saved, ignore_errors=True)
        return None
    if state.get("production_version") != production_version:
        reporter.log(f"production changed since the interruption (v{state.get('production_version')}"
                     f" → v{production_version}): starting over")
        shutil.rmtree(saved, ignore_errors=True)
        return None
    shutil.rmtree(work, ignore_errors=True)
    saved.rename(work)
    reporter.log(f"resuming from the checkpoint saved at step {state['step']}")
    return state
