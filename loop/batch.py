"""Uploads in bulk: store every file now, predict them later in a ``batch_predict`` job.

    batch = ingest_files(store, ["a.tif", "b.png"], nm_per_px=None, tool="cdsem-2")
    batch.job            # the queued batch_predict job (None when nothing is left to predict)
    batch.failed         # files that could not be added, each with the reason

Storing and drift scoring are cheap (decode, PNG encode, a few image statistics), so they
happen at once and a bad file is reported right away. Prediction loads a model and runs a
network, so several images go to one background job that the worker (``loop.worker``) runs
with ``run_batch_predict``; a single image is predicted inline (``inline_limit``), because the
engineer looks at it right away and the Review tab would predict it on view anyway.
The job is idempotent: a sample that already has a prediction by the model is skipped, so a
job that died can simply be run (or queued) again.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from loop import process
from loop.finetune import JobCancelled, Reporter
from loop.jobs import BATCH_PREDICT, BatchPredictRequest, BatchResult, JobParamsError
from loop.predictions import (
    DEFAULT_CACHE,
    IngestError,
    IngestResult,
    PredictorCache,
    ingest_image,
    predict_sample,
)
from semgan.imageio import IMAGE_SUFFIXES
from store import Job, ModelVersion, NotFoundError, Store, StoreError

JOB_KIND = BATCH_PREDICT  # kept: the name other modules import
INLINE_LIMIT = 1  # this many images (or fewer) are predicted at once instead of in a job


class BatchCancelled(JobCancelled):
    """A batch job stopped on request; ``result`` says what it had done by then."""

    def __init__(self, message: str, result: dict) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class FileOutcome:
    """One file of an upload: its stored sample (``result``) or why it was not added."""

    name: str
    result: IngestResult | None
    error: str | None = None
    predict_error: str | None = None  # an inline prediction that failed (retried on view)

    def describe(self) -> str:
        """One plain-text line: stored as which sample (size, pixel size, drift), or skipped why."""
        if self.result is None:
            return f"skipped {self.name}: {self.error}"
        sample, prediction = self.result.sample, self.result.prediction
        again = " (already in the workspace)" if self.result.already_stored else ""
        drift = ("not scored" if sample.drift_scores is None else
                 "FLAGGED" if sample.drift_flagged else "in range")
        predicted = (f", predicted in {prediction.seconds:.2f} s" if prediction is not None
                     else f", prediction failed: {self.predict_error}" if self.predict_error
                     else "")
        return (f"stored {self.name}: sample {sample.id}{again}, {sample.width}×{sample.height} "
                f"px at {sample.nm_per_px:g} nm/px, drift {drift}{predicted}")


@dataclass(frozen=True)
class IngestBatch:
    """What ``ingest_files`` did: each file's outcome and the prediction job, if one was queued."""

    files: tuple[FileOutcome, ...]
    job: Job | None
    model_version: int | None  # production at the time (None: no model, nothing predicted)
    waiting_behind: tuple[Job, ...] = ()  # active jobs the worker runs before this one

    @property
    def stored(self) -> list[IngestResult]:
        """The files that became (or already were) samples."""
        return [f.result for f in self.files if f.result is not None]

    @property
    def failed(self) -> list[FileOutcome]:
        """The files that could not be added."""
        return [f for f in self.files if f.result is None]


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given, and the image files (IMAGE_SUFFIXES) inside given folders (recursively,
    sorted)."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*")
                                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))
        else:
            found.append(path)  # a missing file is reported by ingest_files, not dropped here
    return found


def _store_one(store: Store, path: str | Path, nm_per_px: float | str | None, source: str,
               tool: str | None) -> FileOutcome:
    """Validate, store and drift-score one file (no prediction)."""
    name = Path(path).name
    if not Path(path).is_file():
        return FileOutcome(name, None, f"{path}: no such file")
    try:
        return FileOutcome(name, ingest_image(store, path, nm_per_px, source, tool or None, name,
                                              predict=False))
    except (IngestError, StoreError, OSError) as exc:
        return FileOutcome(name, None, str(exc))


def _predicted(store: Store, sample_id: int, version: int) -> bool:
    return store.get_prediction(sample_id, version) is not None


def ingest_files(store: Store, paths: Sequence[str | Path], nm_per_px: float | str | None,
                 source: str = "upload", tool: str | None = None,
                 inline_limit: int = INLINE_LIMIT, spawn: bool = True,
                 cache: PredictorCache = DEFAULT_CACHE) -> IngestBatch:
    """Store each file now (bad ones reported, the rest kept) and queue one job to predict them.

    With a production model, the stored samples it has not predicted yet are predicted inline
    when there are at most ``inline_limit`` of them, else queued as one ``batch_predict`` job
    (and a background worker started when ``spawn``).
    """
    files = [_store_one(store, path, nm_per_px, source, tool) for path in paths]
    production = store.production_model()
    if production is None:
        return IngestBatch(tuple(files), None, None)
    waiting = list(dict.fromkeys(f.result.sample.id for f in files if f.result is not None
                                 and not _predicted(store, f.result.sample.id,
                                                    production.version)))
    if not waiting:
        return IngestBatch(tuple(files), None, production.version)
    if len(waiting) <= inline_limit:
        return IngestBatch(tuple(_predict_inline(store, f, production.version, cache)
                                 for f in files), None, production.version)
    request = BatchPredictRequest(tuple(waiting), production.version, source, time.time())
    job = store.enqueue_job(JOB_KIND, request.to_params())
    ahead = tuple(j for j in store.list_jobs(limit=50)
                  if j.active and j.id < job.id and j.kind in ("finetune", JOB_KIND))
    if spawn:
        process.spawn_worker(store.workspace)
    return IngestBatch(tuple(files), job, production.version, ahead)


def _predict_inline(store: Store, outcome: FileOutcome, version: int,
                    cache: PredictorCache) -> FileOutcome:
    """The outcome with its prediction made now (a failure is noted; the view retries it)."""
    if outcome.result is None or outcome.result.prediction is not None:
        return outcome
    sample_id = outcome.result.sample.id
    try:
        prediction = store.get_prediction(sample_id, version) or \
            predict_sample(store, sample_id, version, cache)
    except (StoreError, RuntimeError, ValueError, OSError) as exc:  # a broken model or a huge image
        return dataclasses.replace(outcome, predict_error=f"{type(exc).__name__}: {exc}")
    result = dataclasses.replace(outcome.result, sample=store.get_sample(sample_id),
                                 prediction=prediction)
    return dataclasses.replace(outcome, result=result)


# -- the job ----------------------------------------------------------------------------------


def target_model(store: Store, job: Job) -> ModelVersion:
    """The model a batch job predicts with: production now, else the version it was queued for.

    Production wins when it changed since the job was queued: the review queue shows what
    production predicts, so predictions by a retired version would be wasted work.
    """
    production = store.production_model()
    if production is not None:
        return production
    version = BatchPredictRequest.of(job).model_version
    if version is None:
        raise NotFoundError(f"batch_predict job {job.id}: no production model and no queued "
                            "model version")
    return store.get_model(version)


def waiting_samples(store: Store, job: Job) -> list[int]:
    """The job's samples that still have no prediction by its target model."""
    try:
        version = target_model(store, job).version
        sample_ids = BatchPredictRequest.of(job).sample_ids
    except (JobParamsError, NotFoundError):
        return []
    return [s for s in sample_ids if not _predicted(store, s, version)]


def run_batch_predict(store: Store, job: Job, reporter: Reporter,
                      cache: PredictorCache = DEFAULT_CACHE) -> dict:
    """Predict the job's samples with the production model; returns the job result.

    Reports step i/N with an ETA after every image and stops between images when cancelled
    (raising ``BatchCancelled``; the predictions made so far stay). A sample that fails is
    recorded in ``result["failed"]`` and the job goes on.
    """
    request = BatchPredictRequest.of(job)
    sample_ids, queued_for = request.sample_ids, request.model_version
    model = target_model(store, job)
    if queued_for is not None and queued_for != model.version:
        reporter.log(f"v{queued_for} is no longer production: predicting with v{model.version}")
    cache.get(model)  # load once up front: a model that cannot load fails the whole job
    total, started = len(sample_ids), time.monotonic()
    result: dict = {"model_version": model.version, "total": total, "predicted": 0,
                    "skipped": 0, "failed": []}
    reporter.log(f"predicting {total} samples with v{model.version}")
    reporter.progress(0, total, None, {})
    predict_seconds = 0.0
    for step, sample_id in enumerate(sample_ids, start=1):
        if reporter.cancelled:  # between images: what is predicted stays predicted
            raise BatchCancelled(f"stopped after {step - 1} of {total} samples "
                                 f"({result['predicted']} predicted)", BatchResult(
                                     **{**result, "failed": tuple(result["failed"])},
                                     stopped_at=step - 1).to_dict())
        t0 = time.monotonic()
        try:
            if _predicted(store, sample_id, model.version):
                result["skipped"] += 1  # done before a crash, or viewed in the Review tab
            else:
                predict_sample(store, sample_id, model.version, cache)
                result["predicted"] += 1
                predict_seconds += time.monotonic() - t0
        except Exception as exc:  # one bad sample (deleted, unreadable, too big) is not the job
            result["failed"].append({"sample_id": sample_id,
                                     "error": f"{type(exc).__name__}: {exc}"})
            reporter.log(f"sample {sample_id} failed: {type(exc).__name__}: {exc}")
        # An upper bound: samples predicted meanwhile (viewed in the Review tab) take no time.
        eta = predict_seconds / result["predicted"] * (total - step) if result["predicted"] \
            else None
        reporter.progress(step, total, eta, {})
    result["seconds"] = round(time.monotonic() - started, 3)
    reporter.log(f"done: {result['predicted']} predicted, {result['skipped']} already predicted, "
                 f"{len(result['failed'])} failed in {result['seconds']:.1f} s")
    return BatchResult(**{**result, "failed": tuple(result["failed"])}).to_dict()

