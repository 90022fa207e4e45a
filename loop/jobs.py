"""The job lifecycle's one owner: the kinds of job and the typed shapes a job row carries.

A job row (``store.jobs``) keeps JSON: ``params`` (the request), ``plan`` (what a running
fine-tune will do: steps, steps per epoch, data) and ``result``. These dataclasses are the only
shapes of that JSON, serialised here and read back here; the UI and the CLI read the
dataclasses, never log text.

Lifecycle: queued → running → succeeded | failed | cancelled, and running → interrupted (the
worker shut down, ``loop.shutdown``) → running again (resumed) or cancelled. A worker that dies
(SIGKILL) leaves a running job that the store marks failed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from store import JOB_KINDS, Job
from store.records import TRAINING_JOB_KINDS

# The store owns the list of kinds (store.records.JOB_KINDS); these name the ones the loop runs.
FINETUNE, BATCH_PREDICT = "finetune", "batch_predict"
if not {FINETUNE, BATCH_PREDICT} <= set(JOB_KINDS):
    raise ImportError("loop.jobs names a job kind that store.records.JOB_KINDS does not know")
TRAINING_KINDS = TRAINING_JOB_KINDS  # at most one queued/running/interrupted at a time
WORKER_KINDS = (FINETUNE, BATCH_PREDICT)  # what the worker runs ("train"/"evaluate": CLI only)


class JobParamsError(ValueError):
    """A job row's params are not the request its kind expects."""


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise JobParamsError(f"{what} must be an integer, got {value!r}")
    return value


@dataclass(frozen=True)
class FinetuneRequest:
    """What **Fine-tune now**, ``loop finetune`` and the automatic trigger ask for."""

    trigger: str  # "manual" or "auto"
    reason: str
    config: dict[str, Any]  # FinetuneConfig.to_dict()
    production_version: int | None
    requested_at: float | None = None

    def to_params(self) -> dict[str, Any]:
        """The job row's params."""
        return dataclasses.asdict(self)

    @classmethod
    def of(cls, job: Job) -> FinetuneRequest:
        """The request of a fine-tune job."""
        return cls.from_params(job.params, job.id)

    @classmethod
    def from_params(cls, params: dict[str, Any], job_id: int | None = None) -> FinetuneRequest:
        """The request from a job row's params (older rows: missing fields take defaults)."""
        config = params.get("config", {})
        if not isinstance(config, dict):
            raise JobParamsError(f"fine-tune job {job_id}: params.config must be an object")
        version = params.get("production_version")
        return cls(str(params.get("trigger", "manual")),
                   str(params.get("reason") or f"{params.get('trigger', 'manual')} request"),
                   config, None if version is None else _int(version, "production_version"),
                   params.get("requested_at"))


@dataclass(frozen=True)
class BatchPredictRequest:
    """Predict these uploaded samples in the background (``loop ingest``, the upload)."""

    sample_ids: tuple[int, ...]
    model_version: int | None  # production when queued; used only if none is production now
    source: str = "upload"
    requested_at: float | None = None

    def to_params(self) -> dict[str, Any]:
        """The job row's params."""
        return {**dataclasses.asdict(self), "sample_ids": list(self.sample_ids)}

    @classmethod
    def of(cls, job: Job) -> BatchPredictRequest:
        """The request of a batch_predict job; JobParamsError when its sample ids are not ints."""
        ids = job.params.get("sample_ids")
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool)
                                                for i in ids):
            raise JobParamsError(f"batch_predict job {job.id} needs params.sample_ids, a list "
                                 f"of sample ids; got {ids!r}")
        version = job.params.get("model_version")
        return cls(tuple(dict.fromkeys(ids)),
                   None if version is None else _int(version, "model_version"),
                   str(job.params.get("source", "upload")), job.params.get("requested_at"))


@dataclass(frozen=True)
class FinetunePlan:
    """What a running fine-tune does, set once its data is ready (the Fine-tune tab shows it)."""

    steps: int
    planned_steps: int  # before the max_steps cap
    steps_per_epoch: int
    corrected_pairs: int
    corrected_tiles: int
    anchor_pairs: int
    new_share: float  # of each epoch
    lr_scale: float
    cpu_threads: int

    @property
    def epochs(self) -> float:
        """Epochs the run trains."""
        return self.steps / max(1, self.steps_per_epoch)

    def to_dict(self) -> dict[str, Any]:
        """The job row's plan."""
        return dataclasses.asdict(self)

    @classmethod
    def of(cls, job: Job) -> FinetunePlan | None:
        """The plan of a fine-tune job, None until it is set (or for rows of older versions)."""
        if not job.plan:
            return None
        try:
            return cls(**job.plan)
        except TypeError as exc:
            raise JobParamsError(f"job {job.id}: malformed plan ({exc})") from None


@dataclass(frozen=True)
class FinetuneResult:
    """A finished fine-tune: its candidate and the gate's verdict on it."""

    candidate_version: int
    decision: str  # "promote", "reject" or "none" (the gate could not apply it)
    reason: str
    gate: dict[str, Any]  # loop.gate.GateResult.to_dict()
    summary: dict[str, Any]  # the run's training summary (loop.finetune.run)

    def to_dict(self) -> dict[str, Any]:
        """The job row's result."""
        return dataclasses.asdict(self)

    @classmethod
    def of(cls, job: Job) -> FinetuneResult | None:
        """The result of a succeeded fine-tune job, else None."""
        if job.kind != FINETUNE or job.status != "succeeded" or not job.result:
            return None
        try:
            return cls(**job.result)
        except TypeError as exc:
            raise JobParamsError(f"job {job.id}: malformed fine-tune result ({exc})") from None


@dataclass(frozen=True)
class BatchResult:
    """What a batch prediction did (also when cancelled or interrupted part-way)."""

    model_version: int
    total: int
    predicted: int = 0
    skipped: int = 0  # already predicted
    failed: tuple[dict[str, Any], ...] = ()  # {"sample_id", "error"}
    seconds: float | None = None
    stopped_at: int | None = None  # samples handled before a cancel

    def to_dict(self) -> dict[str, Any]:
        """The job row's result."""
        return {**dataclasses.asdict(self), "failed": [dict(f) for f in self.failed]}

    @classmethod
    def of(cls, job: Job) -> BatchResult | None:
        """The result of a batch_predict job that has one, else None."""
        if job.kind != BATCH_PREDICT or not job.result:
            return None
        try:
            return cls(**{**job.result, "failed": tuple(job.result.get("failed", ()))})
        except TypeError as exc:
            raise JobParamsError(f"job {job.id}: malformed batch result ({exc})") from None
