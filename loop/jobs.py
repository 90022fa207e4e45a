"""The job lifecycle's one owner: the kinds of job and the typed shapes a job row carries.

A job row (``store.job_rows``) keeps JSON: ``params`` (the request), ``plan`` (what a running
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
class Check:
    """One rule of the gate with both models' figures."""

    name: str
    candidate: float | None
    production: float | None
    change: float | None
    limit: str
    passed: bool


@dataclass(frozen=True)
class GateResult:
    """The gate's verdict on a candidate, with every figure it was based on (``loop.gate``)."""

    candidate_version: int
    production_version: int | None
    decision: str  # "promote", "reject", or "none" (someone else decided first)
    reason: str
    checks: tuple[Check, ...]
    candidate: dict  # {"old_data": metrics, "new_data": metrics} (per-tool gates: "tools" too)
    production: dict
    holdout_pairs: int
    broken: str | None
    seconds: float

    def to_dict(self) -> dict:
        """JSON-ready dict (the job result and the candidate's ``metrics["gate"]``)."""
        return {**dataclasses.asdict(self), "checks": [dataclasses.asdict(c) for c in self.checks]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateResult:
        """Back from :meth:`to_dict`."""
        return cls(**{**data, "checks": tuple(Check(**c) for c in data.get("checks", []))})


@dataclass(frozen=True)
class ToolTraining:
    """One tool's adaptation in a per-tool fine-tune (``loop.finetune.tools``)."""

    train_pairs: int
    holdout_pairs: int
    expert: str  # the expert's file in the model folder
    grey_levels: str  # how its grey-level map was chosen
    gain: float
    offset: float
    started_from: str
    holdout_iou_start: float | None
    holdout_iou_best: float | None
    best_step: int | None
    steps: int
    seconds: float
    stop_reason: str
    history: list = dataclasses.field(default_factory=list)  # (step, loss, held-out IoU) rows


# The shared strategy's composition of the candidate (loop.finetune.blend), kept flat in the JSON.
COMPOSITION_KEYS = ("blend", "experts", "shared_pairs")


@dataclass(frozen=True)
class TrainingSummary:
    """What a fine-tune trained: the job result's ``summary`` and the candidate card's ``fine_tune``."""

    job_id: int | None
    trigger: str
    reason: str
    parent_version: int
    init: str
    pairs_used: dict[str, Any]
    steps: int
    train_seconds: float
    wall_seconds: float
    stop_reason: str
    device: str | None
    cpu_threads: int
    config: dict[str, Any]  # FinetuneConfig.to_dict()
    max_pair_id: int | None
    strategy: str = "shared"  # "shared" (one generator fine-tuned) or "tools" (per-tool experts)
    warnings: tuple[str, ...] = ()
    tools: dict[str, ToolTraining] = dataclasses.field(default_factory=dict)
    composition: dict[str, Any] = dataclasses.field(default_factory=dict)
    epochs: float | None = None
    epochs_planned: float | None = None
    steps_planned: int | None = None
    seconds_per_step: float | None = None
    final_losses: dict[str, float] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; the composition's keys sit at the top level, as rows have always had them."""
        data = dataclasses.asdict(self)
        data.pop("composition")
        return {**data, **self.composition, "warnings": list(self.warnings),
                "tools": {tool: dataclasses.asdict(t) for tool, t in self.tools.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingSummary:
        """Back from :meth:`to_dict`; unknown keys are refused, as a malformed row."""
        fields = {f.name for f in dataclasses.fields(cls)} - {"composition"}
        unknown = sorted(set(data) - fields - set(COMPOSITION_KEYS))
        if unknown:
            raise JobParamsError(f"training summary: unknown field(s) {unknown}")
        values = {k: v for k, v in data.items() if k in fields}
        values["warnings"] = tuple(values.get("warnings", ()))
        values["tools"] = {tool: ToolTraining(**t) for tool, t in (values.get("tools") or {}).items()}
        return cls(**values, composition={k: data[k] for k in COMPOSITION_KEYS if k in data})


@dataclass(frozen=True)
class FinetuneResult:
    """A finished fine-tune: its candidate, what it trained and the gate's verdict on it."""

    candidate_version: int
    decision: str  # "promote", "reject" or "none" (the gate could not apply it)
    reason: str
    gate: GateResult
    summary: TrainingSummary

    def to_dict(self) -> dict[str, Any]:
        """The job row's result."""
        return {"candidate_version": self.candidate_version, "decision": self.decision,
                "reason": self.reason, "gate": self.gate.to_dict(), "summary": self.summary.to_dict()}

    @classmethod
    def of(cls, job: Job) -> FinetuneResult | None:
        """The result of a succeeded fine-tune job, else None."""
        if job.kind != FINETUNE or job.status != "succeeded" or not job.result:
            return None
        try:
            data = job.result
            return cls(data["candidate_version"], data["decision"], data["reason"],
                       GateResult.from_dict(data["gate"]), TrainingSummary.from_dict(data["summary"]))
        except (TypeError, KeyError, JobParamsError) as exc:
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
