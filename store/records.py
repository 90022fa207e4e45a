"""Typed, frozen records returned by the store, and the vocabularies they use.

Records are snapshots of rows: change them through ``Store`` methods, never in place.
Times are Unix seconds (float, UTC).
"""

from __future__ import annotations

from dataclasses import dataclass

SAMPLE_SOURCES = ("upload", "import", "demo")
PAIR_KINDS = ("corrected", "accepted", "imported")
SPLITS = ("train", "holdout")
MODEL_STATUSES = ("production", "candidate", "rejected", "archived")
JOB_KINDS = ("train", "finetune", "batch_predict", "evaluate")
TRAINING_JOB_KINDS = ("train", "finetune")  # at most one of these queued/running at a time
JOB_STATUSES = ("queued", "running", "interrupted", "succeeded", "failed", "cancelled")
FINISHED_JOB_STATUSES = ("succeeded", "failed", "cancelled")
# "interrupted": its worker shut down (SIGTERM/SIGINT) and kept a checkpoint; the next worker
# resumes it, or the user cancels it. Until then it counts as active (one training job at once).
ACTIVE_JOB_STATUSES = ("queued", "running", "interrupted")
AUDIT_ACTIONS = ("promote", "rollback", "reject")


@dataclass(frozen=True)
class Sample:
    """An SEM image with its pixel size, origin and drift/uncertainty scores."""

    id: int
    image_sha: str  # blob of the lossless PNG
    content_sha: str  # sha256 of shape + pixels: the dedup and split key
    nm_per_px: float
    height: int
    width: int
    source: str
    tool: str | None
    name: str | None
    truth_sha: str | None  # known true layout mask (demo/synthetic data), if any
    created: float
    drift_scores: dict | None
    drift_score: float | None  # sort key: the largest |score|
    drift_flagged: bool
    uncertainty: float | None  # from the latest prediction's confidence summary
    corrected: bool  # at least one corrected pair exists


@dataclass(frozen=True)
class Prediction:
    """A model version's layout mask for a sample, with its confidence summary."""

    id: int
    sample_id: int
    model_version: int
    mask_sha: str
    confidence_sha: str | None
    confidence_summary: dict
    seconds: float
    created: float


@dataclass(frozen=True)
class CorrectedPair:
    """One version of a sample's corrected layout mask; the latest version is the one used."""

    id: int
    sample_id: int
    version: int
    mask_sha: str
    author: str
    prediction_id: int | None
    kind: str
    pixels_added: int | None  # vs the prediction it started from; None without one
    pixels_removed: int | None
    iou_vs_prediction: float | None
    split: str
    created: float


@dataclass(frozen=True)
class ModelVersion:
    """A registered generator checkpoint with its lineage, metrics and status."""

    version: int
    parent_version: int | None
    path: str
    weights_sha256: str
    config: dict
    card: dict
    training_summary: dict
    metrics: dict
    status: str
    created: float
    promoted_at: float | None
    data_cutoff_pair_id: int  # highest pair id the model's training could have seen


@dataclass(frozen=True)
class AuditEntry:
    """One promotion, rollback or rejection with its reason and both models' figures."""

    id: int
    action: str
    version: int
    previous_version: int | None
    reason: str
    actor: str
    metrics: dict
    previous_metrics: dict
    created: float


@dataclass(frozen=True)
class Job:
    """A background job row: what to run, its state, progress and outcome."""

    id: int
    kind: str
    params: dict
    status: str
    created: float
    started: float | None
    finished: float | None
    heartbeat: float | None
    pid: int | None
    host: str | None
    step: int
    total: int
    eta_seconds: float | None
    log_lines: tuple[str, ...]
    last_losses: dict
    result: dict | None
    error: str | None
    cancel_requested: bool
    plan: dict | None = None  # loop.jobs.FinetunePlan.to_dict() once a fine-tune has planned
    warnings: tuple[str, ...] = ()  # what a running job warned of (loss spikes, time budget)

    @property
    def progress(self) -> float:
        """Fraction done in [0, 1] (0 when the total is unknown)."""
        return min(1.0, self.step / self.total) if self.total > 0 else 0.0

    @property
    def active(self) -> bool:
        """True while queued, running or interrupted (to be resumed)."""
        return self.status in ACTIVE_JOB_STATUSES


@dataclass(frozen=True)
class Event:
    """One entry of the append-only event log."""

    id: int
    created: float
    kind: str
    message: str
    data: dict


@dataclass(frozen=True)
class Counts:
    """Totals the UI and the loop's trigger look at."""

    samples: int
    predictions: int
    corrected_samples: int  # samples with at least one pair (latest versions)
    pair_versions: int  # every saved version, history included
    train_pairs: int
    holdout_pairs: int
    new_since_production: int  # latest pairs newer than production's data cut-off
    new_train_since_production: int
    production_version: int | None
    models: int
    drift_flagged: int
    active_jobs: int
