"""Schema migrations: an ordered list of functions, the schema version in PRAGMA user_version.

Migration N brings a database from version N-1 to N inside one BEGIN IMMEDIATE transaction,
so two processes opening an old workspace at once migrate it exactly once. Migrations only
add (tables, columns, indexes): an old workspace opens with a newer app without loss.
Never edit a released migration; append a new one.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlite_utils import Database

from store.connection import Connections
from store.errors import SchemaVersionError


def _v1_base_tables(db: Database) -> None:
    """The first schema: samples, predictions, pairs, models, audit, jobs, events."""
    db["samples"].create({
        "id": int, "image_sha": str, "content_sha": str, "nm_per_px": float, "height": int,
        "width": int, "source": str, "tool": str, "name": str, "truth_sha": str, "created": float,
    }, pk="id", not_null=["image_sha", "content_sha", "nm_per_px", "height", "width", "source",
                          "created"])
    db["samples"].create_index(["content_sha", "nm_per_px"], unique=True)
    db["predictions"].create({
        "id": int, "sample_id": int, "model_version": int, "mask_sha": str,
        "confidence_sha": str, "confidence_json": str, "seconds": float, "created": float,
    }, pk="id", foreign_keys=[("sample_id", "samples", "id")],
        not_null=["sample_id", "model_version", "mask_sha", "created"])
    db["predictions"].create_index(["sample_id", "model_version"])
    db["pairs"].create({
        "id": int, "sample_id": int, "version": int, "mask_sha": str, "author": str,
        "prediction_id": int, "kind": str, "pixels_added": int, "pixels_removed": int,
        "iou_vs_prediction": float, "split": str, "created": float,
    }, pk="id", foreign_keys=[("sample_id", "samples", "id"),
                              ("prediction_id", "predictions", "id")],
        not_null=["sample_id", "version", "mask_sha", "author", "kind", "split", "created"])
    db["pairs"].create_index(["sample_id", "version"], unique=True)
    db["models"].create({
        "version": int, "parent_version": int, "path": str, "weights_sha256": str,
        "config_json": str, "card_json": str, "training_summary_json": str,
        "metrics_json": str, "status": str, "created": float, "promoted_at": float,
        "data_cutoff_pair_id": int,
    }, pk="version", not_null=["path", "weights_sha256", "status", "created"])
    db["model_audit"].create({
        "id": int, "action": str, "version": int, "previous_version": int, "reason": str,
        "actor": str, "metrics_json": str, "previous_metrics_json": str, "created": float,
    }, pk="id", foreign_keys=[("version", "models", "version")])
    db["jobs"].create({
        "id": int, "kind": str, "params_json": str, "status": str, "created": float,
        "started": float, "finished": float, "heartbeat": float, "pid": int, "step": int,
        "total": int, "eta_seconds": float, "log_json": str, "last_losses_json": str,
        "result_json": str, "error": str, "cancel_requested": int,
    }, pk="id", not_null=["kind", "status", "created"])
    db["job_losses"].create({
        "id": int, "job_id": int, "step": int, "created": float, "losses_json": str,
    }, pk="id", foreign_keys=[("job_id", "jobs", "id")])
    db["job_losses"].create_index(["job_id", "step"])
    db["events"].create({
        "id": int, "created": float, "kind": str, "message": str, "data_json": str,
    }, pk="id", not_null=["created", "kind"])


def _v2_drift_and_indexes(db: Database) -> None:
    """Drift and uncertainty columns on samples, indexes for the review queue and registry."""
    samples = db["samples"]
    samples.add_column("drift_json", str)
    samples.add_column("drift_score", float)
    samples.add_column("drift_flagged", int, not_null_default=0)
    samples.add_column("uncertainty", float)
    samples.create_index(["created"])
    samples.create_index(["drift_flagged", "drift_score"])
    samples.create_index(["uncertainty"])
    samples.create_index(["source"])
    samples.create_index(["tool"])
    db["jobs"].create_index(["status", "kind"])
    db["events"].create_index(["kind"])
    # The database itself refuses a second production model, whatever the code does.
    db.execute("CREATE UNIQUE INDEX one_production_model ON models(status) "
               "WHERE status = 'production'")


def _v3_settings_and_job_host(db: Database) -> None:
    """Loop settings key/value table; the host a job runs on (pid checks are per host)."""
    db["settings"].create({"key": str, "value_json": str, "updated": float}, pk="key")
    db["jobs"].add_column("host", str)


def _v4_sample_designs(db: Database) -> None:
    """The design clip attached to a sample (store.designs) and its registration."""
    db["sample_designs"].create({
        "sample_id": int, "design_sha": str, "file_name": str, "suffix": str, "cell": str,
        "layer": int, "datatype": int, "center_x_nm": float, "center_y_nm": float,
        "search_nm": float, "registration_json": str, "created": float, "updated": float,
    }, pk="sample_id", foreign_keys=[("sample_id", "samples", "id")],
        not_null=["design_sha", "file_name", "suffix", "layer", "datatype", "center_x_nm",
                  "center_y_nm", "search_nm", "created", "updated"])


def _v5_job_plan(db: Database) -> None:
    """What a running job plans to do (loop.jobs.FinetunePlan): steps, steps per epoch, data."""
    db["jobs"].add_column("plan_json", str)


def _v6_job_warnings(db: Database) -> None:
    """A running job's warnings (loss spikes, time budget) as a list, not scraped from its log."""
    db["jobs"].add_column("warnings_json", str)


MIGRATIONS: list[Callable[[Database], None]] = [
    _v1_base_tables,
    _v2_drift_and_indexes,
    _v3_settings_and_job_host,
    _v4_sample_designs,
    _v5_job_plan,
    _v6_job_warnings,
]
LATEST_VERSION = len(MIGRATIONS)


def schema_version(db: Database) -> int:
    """The schema version recorded in the database (0 for a new, empty file)."""
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(connections: Connections, up_to: int | None = None) -> list[int]:
    """Apply the missing migrations (up to ``up_to``, default all); return the versions applied."""
    target = LATEST_VERSION if up_to is None else up_to
    with connections.write() as db:
        current = schema_version(db)
        if current > LATEST_VERSION:
            raise SchemaVersionError(
                f"workspace database {connections.db_path} has schema version {current}, but "
                f"this semgan studio knows versions up to {LATEST_VERSION}: upgrade semgan "
                "studio, or use another --workspace")
        applied = []
        for version in range(current + 1, target + 1):
            MIGRATIONS[version - 1](db)
            db.execute(f"PRAGMA user_version={version}")
            applied.append(version)
    return applied
