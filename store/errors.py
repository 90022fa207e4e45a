"""Named exceptions of the store.

Every error the store raises on purpose derives from ``StoreError`` so the UI and
the CLI can catch it in one place and show the message as it is.
"""


class StoreError(Exception):
    """Base class for errors raised by the store."""


class WorkspaceError(StoreError):
    """The workspace folder or its database cannot be used (wrong path, not a database)."""


class SchemaVersionError(WorkspaceError):
    """The workspace was written by a newer version of semgan studio than this one."""


class NotFoundError(StoreError):
    """A sample, prediction, pair, model, job or blob that was asked for does not exist."""


class InvalidInputError(StoreError, ValueError):
    """An argument has the wrong type, shape, range or value."""


class JobConflictError(StoreError):
    """A training or fine-tuning job is already queued or running."""


class JobStateError(StoreError):
    """The job is not in a state that allows this operation (e.g. it already finished)."""


class ModelStateError(StoreError):
    """The model version is not in a state that allows this registry operation."""


class PromotionConflictError(ModelStateError):
    """Production changed since the caller looked (another promotion won the race)."""


class DatabaseBusyError(StoreError):
    """Another process held the database write lock for longer than the store waits."""


class IntegrityError(StoreError):
    """Stored data is inconsistent (e.g. a row refers to a blob that is missing or corrupt)."""
