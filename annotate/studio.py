"""The app's context: the open store, loaded models, and the queries the tabs share.

Tabs call these methods and render what they return; no tab touches SQL or tensors.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from annotate import format as fmt
from loop.batch import JOB_KIND, waiting_samples
from loop.predictions import (
    DEFAULT_CACHE,
    NoProductionModelError,
    PredictorCache,
    prediction_for,
    probability_of,
)
from loop.triggers import check_triggers, describe_due
from semgan.metrics import evaluate_pair
from store import SAMPLE_SOURCES, Job, ModelVersion, Prediction, Sample, Store

QUEUE_ORDERS = {"drift score": "drift", "uncertainty": "uncertainty", "date added": "created"}
QUEUE_LIMIT = 200
ALL = "all"


def default_author() -> str:
    """The reviewer name corrections are saved under: $SEMGAN_AUTHOR, else the login name."""
    try:
        login = getpass.getuser()
    except (KeyError, OSError):
        login = "engineer"
    return os.environ.get("SEMGAN_AUTHOR") or login


@dataclass(frozen=True)
class QueueFilter:
    """What the review queue shows, as chosen in the Review tab."""

    order: str = "drift score"
    uncorrected_only: bool = True
    source: str = ALL
    tool: str = ALL
    flagged_only: bool = False


@dataclass(frozen=True)
class SampleView:
    """Everything the tabs show about one sample."""

    sample: Sample
    sem_image: np.ndarray  # (H, W) uint8
    prediction: Prediction | None  # by the production model; None without a model
    mask: np.ndarray | None  # (H, W) bool predicted layout
    truth: np.ndarray | None  # (H, W) bool known true layout (demo data), if any
    truth_label: str  # where the truth comes from


@dataclass
class Studio:
    """An open workspace with its predictor cache; the one object the UI's handlers use."""

    store: Store
    cache: PredictorCache = field(default_factory=lambda: DEFAULT_CACHE)
    author: str = field(default_factory=default_author)
    notice: str | None = None  # shown under the counters, e.g. "no model installed"

    @property
    def exports_dir(self) -> Path:
        """Where exports are written inside the workspace."""
        return self.store.workspace / "exports"

    def counters(self) -> str:
        """The status strip HTML."""
        notice = self.notice if self.store.production_model() is None else None
        return fmt.counters_html(self.store.counts(), notice)

    # -- the queue -------------------------------------------------------------------------

    def queue(self, chosen: QueueFilter, limit: int = QUEUE_LIMIT) -> tuple[list[Sample], int]:
        """A page of the review queue and how many samples match in all."""
        filters = {"uncorrected_only": chosen.uncorrected_only,
                   "source": None if chosen.source == ALL else chosen.source,
                   "tool": None if chosen.tool == ALL else chosen.tool,
                   "flagged_only": chosen.flagged_only}
        samples = self.store.list_samples(order_by=QUEUE_ORDERS.get(chosen.order, "drift"),
                                          limit=limit, **filters)
        return samples, self.store.count_samples(**filters)

    def sources(self) -> list[str]:
        """Choices of the source filter."""
        return [ALL, *SAMPLE_SOURCES]

    def prediction_backlog(self) -> list[tuple[Job, int]]:
        """Active batch prediction jobs, each with how many of its samples still wait."""
        return [(job, len(waiting_samples(self.store, job)))
                for job in self.store.list_jobs(kind=JOB_KIND, limit=20) if job.active]

    def tools(self, scan: int = 2000) -> list[str]:
        """Choices of the tool filter: the tools of the most recent samples."""
        found = {s.tool for s in self.store.list_samples(limit=scan) if s.tool}
        return [ALL, *sorted(found)]

    # -- one sample ------------------------------------------------------------------------

    def view(self, sample_id: int) -> SampleView:
        """The sample, its SEM, production's prediction (made now if missing) and its truth."""
        sample = self.store.get_sample(sample_id)
        prediction = mask = None
        try:
            # the engineer is waiting: the uncertainty score follows from a background thread
            prediction = prediction_for(self.store, sample_id, None, self.cache, uncertainty_now=False)
            mask = self.store.prediction_mask(prediction)
        except NoProductionModelError:
            pass
        truth, label = None, ""
        if sample.truth_sha is not None:
            truth, label = self.store.read_mask(sample.truth_sha), "known true layout"
        else:
            pair = self.store.latest_pair(sample_id)
            if pair is not None and pair.kind != "accepted":
                truth, label = self.store.pair_mask(pair), f"saved correction v{pair.version}"
        return SampleView(sample, self.store.sample_image(sample_id), prediction, mask, truth,
                          label)

    def truth_metrics(self, view: SampleView, prediction: Prediction | None = None) -> dict | None:
        """IoU, EPE, CD error, SSIM, PSNR, L1 of a prediction against the sample's truth."""
        prediction = prediction or view.prediction
        if view.truth is None or prediction is None:
            return None
        return evaluate_pair(probability_of(self.store, prediction),
                             self.store.prediction_mask(prediction), view.truth,
                             view.sample.nm_per_px)

    # -- after a save --------------------------------------------------------------------

    def after_pair_saved(self) -> str | None:
        """Run the automatic trigger after a saved or accepted pair; a message only if it fired.

        Never raises: the pair is saved whatever happens here, so a failing check becomes a
        message the engineer can read instead of an error over the saved work.
        """
        try:
            decision = check_triggers(self.store, spawn=True)
        except Exception as exc:  # a busy database, a broken setting, a worker that cannot start
            return f"The automatic fine-tune check failed ({type(exc).__name__}: {exc})."
        if not decision.fired or decision.job is None:
            return None
        return (f"{describe_due(decision.state)}: fine-tune job {decision.job.id} queued "
                "(it runs in the background; see the Fine-tune tab).")

    def models(self) -> list[ModelVersion]:
        """Registered versions, newest first."""
        return self.store.list_models()

    def model_choices(self) -> list[tuple[str, str]]:
        """Dropdown labels of every registered version."""
        return [fmt.model_choice(m) for m in self.models()]


def step_in_queue(queue_ids: list[int], current: int | None, step: int) -> int | None:
    """The id ``step`` places from ``current`` in the queue (clamped; first if not in it)."""
    if not queue_ids:
        return current
    if current not in queue_ids:
        return queue_ids[0]
    index = min(max(queue_ids.index(current) + step, 0), len(queue_ids) - 1)
    return queue_ids[index]


def after_removal(queue_ids: list[int], current: int | None) -> int | None:
    """The sample to show once ``current`` is done: the next one, else the previous one."""
    if current not in queue_ids:
        return queue_ids[0] if queue_ids else None
    index = queue_ids.index(current)
    rest = queue_ids[index + 1:] or queue_ids[:index][-1:]
    return rest[0] if rest else current
