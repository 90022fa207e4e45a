"""The workspace store: SQLite (via sqlite-utils) + content-addressed image files. No torch.

    from store import Store
    with Store.open("workspace") as store:
        sample = store.add_sample(sem_image, nm_per_px=4.0, source="upload")
"""

from store.blobs import GcResult
from store.core import Store, resolve_workspace
from store.errors import (
    DatabaseBusyError,
    IntegrityError,
    InvalidInputError,
    JobConflictError,
    JobStateError,
    ModelStateError,
    NotFoundError,
    PromotionConflictError,
    SchemaVersionError,
    StoreError,
    WorkspaceError,
)
from store.pairs import HOLDOUT_FRACTION, split_for
from store.records import (
    JOB_KINDS,
    JOB_STATUSES,
    MODEL_STATUSES,
    PAIR_KINDS,
    SAMPLE_SOURCES,
    AuditEntry,
    CorrectedPair,
    Counts,
    Event,
    Job,
    ModelVersion,
    Prediction,
    Sample,
)

__all__ = [
    "HOLDOUT_FRACTION", "JOB_KINDS", "JOB_STATUSES", "MODEL_STATUSES", "PAIR_KINDS",
    "SAMPLE_SOURCES", "AuditEntry", "CorrectedPair", "Counts", "DatabaseBusyError", "Event",
    "GcResult", "IntegrityError", "InvalidInputError", "Job", "JobConflictError",
    "JobStateError", "ModelStateError", "ModelVersion", "NotFoundError", "Prediction",
    "PromotionConflictError", "Sample", "SchemaVersionError", "Store", "StoreError",
    "WorkspaceError", "resolve_workspace", "split_for",
]
