"""Model registry: versions, exactly one production model, promotion/rollback/rejection audit.

Every committed change to the models table is mirrored to ``models/registry.json`` (see
store/registry_file.py) so that ``python -m semgan`` can resolve "production" without SQL.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

from sqlite_utils import Database

from semgan.model_card import ModelCard
from store import blobs, registry_file
from store.base import StoreBase, check_dict, dumps, loads
from store.errors import (
    DatabaseBusyError,
    InvalidInputError,
    ModelStateError,
    NotFoundError,
    PromotionConflictError,
    StoreError,
)
from store.records import AuditEntry, ModelVersion

log = logging.getLogger(__name__)


def row_to_audit(row: dict) -> AuditEntry:
    """AuditEntry record from a model_audit row."""
    return AuditEntry(
        id=row["id"], action=row["action"], version=row["version"],
        previous_version=row["previous_version"], reason=row["reason"] or "",
        actor=row["actor"] or "", metrics=loads(row["metrics_json"], {}),
        previous_metrics=loads(row["previous_metrics_json"], {}), created=row["created"])


class ModelsMixin(StoreBase):
    """Registered model versions and their lifecycle."""

    def _model(self, row: dict) -> ModelVersion:
        """ModelVersion record; paths inside the workspace are stored relative to it."""
        path = Path(row["path"])
        return ModelVersion(
            version=row["version"], parent_version=row["parent_version"],
            path=str(path if path.is_absolute() else self.workspace / path),
            weights_sha256=row["weights_sha256"], config=loads(row["config_json"], {}),
            card=loads(row["card_json"], {}), training_summary=loads(row["training_summary_json"], {}),
            metrics=loads(row["metrics_json"], {}), status=row["status"], created=row["created"],
            promoted_at=row["promoted_at"], data_cutoff_pair_id=row["data_cutoff_pair_id"] or 0)

    def _model_row(self, db: Database, version: int) -> dict:
        """The models row or NotFoundError."""
        rows = list(db.query("SELECT * FROM models WHERE version = ?", [version]))
        if not rows:
            raise NotFoundError(f"model version {version} is not registered in {self.workspace}")
        return rows[0]

    def _production_row(self, db: Database) -> dict | None:
        """The production models row, if any."""
        rows = list(db.query("SELECT * FROM models WHERE status = 'production'"))
        return rows[0] if rows else None

    def register_model(self, path: str | Path, weights_sha256: str, config: dict, card: ModelCard | dict,
                       parent_version: int | None, training_summary: dict, metrics: dict,
                       status: str = "candidate",
                       data_cutoff_pair_id: int | None = None) -> ModelVersion:
        """Register a checkpoint as the next version ("candidate", or "production" to bootstrap).

        ``data_cutoff_pair_id``: the highest pair id its training data could include (default
        ``training_summary["max_pair_id"]``, else every pair saved so far); pairs after it
        count as new for this model. The card is stored as its JSON (records hold it as a dict).
        """
        blobs.check_sha(weights_sha256)
        if status not in ("candidate", "production"):
            raise InvalidInputError(f"a new model is 'candidate' or 'production', not {status!r}")
        summary = check_dict(training_summary, "training_summary")
        card = card.to_dict() if isinstance(card, ModelCard) else card
        stored_path = Path(path).resolve()
        if stored_path.is_relative_to(self.workspace.resolve()):
            stored_path = stored_path.relative_to(self.workspace.resolve())  # workspace can move
        if data_cutoff_pair_id is None and isinstance(summary.get("max_pair_id"), int):
            data_cutoff_pair_id = summary["max_pair_id"]
        with self._write() as db:
            if parent_version is not None:
                self._model_row(db, parent_version)
            version = (db.execute("SELECT MAX(version) FROM models").fetchone()[0] or 0) + 1
            if data_cutoff_pair_id is None:
                data_cutoff_pair_id = db.execute("SELECT MAX(id) FROM pairs").fetchone()[0] or 0
            db["models"].insert({
                "version": version, "parent_version": parent_version, "path": str(stored_path),
                "weights_sha256": weights_sha256, "config_json": dumps(check_dict(config, "config")),
                "card_json": dumps(check_dict(card, "card")), "training_summary_json": dumps(summary),
                "metrics_json": dumps(check_dict(metrics, "metrics")), "status": "candidate",
                "created": time.time(), "promoted_at": None,
                "data_cutoff_pair_id": data_cutoff_pair_id})
            lineage = f"fine-tuned from v{parent_version}" if parent_version else "no parent"
            self._event(db, "model_registered", f"model v{version} registered ({lineage})",
                        {"version": version, "parent_version": parent_version})
            if status == "production":
                self._make_production(db, version, "promote", "registered as production",
                                      "register")
            model = self._model(self._model_row(db, version))
        self._refresh_registry_mirror()
        return model

    def _make_production(self, db: Database, version: int, action: str, reason: str,
                         actor: str) -> None:
        """Inside a write transaction: archive production, promote ``version``, audit it."""
        target = self._model_row(db, version)
        previous = self._production_row(db)
        if previous is not None:
            db["models"].update(previous["version"], {"status": "archived"})
        db["models"].update(version, {"status": "production", "promoted_at": time.time()})
        self._audit(db, action, target, previous, reason, actor)
        kind, verb = (("model_promoted", "promoted to production") if action == "promote"
                      else ("model_rolled_back", "restored to production by rollback"))
        self._event(db, kind, f"model v{version} {verb} by {actor}: {reason}",
                    {"version": version,
                     "previous_version": previous["version"] if previous else None})

    @staticmethod
    def _audit(db: Database, action: str, target: dict, previous: dict | None, reason: str,
               actor: str) -> None:
        """Append an audit row with both models' figures."""
        db["model_audit"].insert({
            "action": action, "version": target["version"],
            "previous_version": previous["version"] if previous else None, "reason": reason,
            "actor": actor, "metrics_json": target["metrics_json"] or "{}",
            "previous_metrics_json": previous["metrics_json"] if previous else "{}",
            "created": time.time()})

    def promote(self, version: int, reason: str, actor: str,
                expected_production: int | None = None) -> ModelVersion:
        """Make ``version`` the one production model; the old one becomes archived.

        With ``expected_production``, refuse (PromotionConflictError) if production is no
        longer that version, e.g. because another promotion won the race.
        """
        with self._write() as db:
            target = self._model_row(db, version)
            if target["status"] == "production":
                raise ModelStateError(f"model v{version} is already in production")
            current = self._production_row(db)
            current_version = current["version"] if current else None
            if expected_production is not None and current_version != expected_production:
                raise PromotionConflictError(
                    f"production is v{current_version}, not v{expected_production}: another "
                    f"promotion happened first; re-evaluate v{version} against it")
            self._make_production(db, version, "promote", reason, actor)
            model = self._model(self._model_row(db, version))
        self._refresh_registry_mirror()
        return model

    def rollback(self, to_version: int, reason: str, actor: str) -> ModelVersion:
        """Restore an archived former production model; the current one becomes archived."""
        with self._write() as db:
            target = self._model_row(db, to_version)
            if target["status"] != "archived" or target["promoted_at"] is None:
                raise ModelStateError(
                    f"model v{to_version} is {target['status']}; only a former production "
                    "model (archived) can be rolled back to")
            self._make_production(db, to_version, "rollback", reason, actor)
            model = self._model(self._model_row(db, to_version))
        self._refresh_registry_mirror()
        return model

    def reject(self, version: int, reason: str, metrics: dict | None = None,
               actor: str = "gate") -> ModelVersion:
        """Mark a candidate rejected (e.g. by the promotion gate), recording its figures."""
        with self._write() as db:
            target = self._model_row(db, version)
            if target["status"] != "candidate":
                raise ModelStateError(f"model v{version} is {target['status']}; only a candidate "
                                      "can be rejected")
            merged = {**loads(target["metrics_json"], {}), **check_dict(metrics, "metrics")}
            db["models"].update(version, {"status": "rejected", "metrics_json": dumps(merged)})
            target = self._model_row(db, version)
            self._audit(db, "reject", target, self._production_row(db), reason, actor)
            self._event(db, "model_rejected", f"model v{version} rejected by {actor}: {reason}",
                        {"version": version})
            model = self._model(target)
        self._refresh_registry_mirror()
        return model

    def set_model_metrics(self, version: int, metrics: dict, merge: bool = True) -> ModelVersion:
        """Record evaluation metrics (merged into the existing ones unless ``merge=False``)."""
        with self._write() as db:
            target = self._model_row(db, version)
            new = check_dict(metrics, "metrics")
            if merge:
                new = {**loads(target["metrics_json"], {}), **new}
            db["models"].update(version, {"metrics_json": dumps(new)})
            model = self._model(self._model_row(db, version))
        self.sync_registry_mirror()  # metrics are not mirrored: rewrite only if the file is stale
        return model

    def get_model(self, version: int) -> ModelVersion:
        """The model version (NotFoundError if not registered)."""
        return self._model(self._model_row(self._conns.db(), version))

    def production_model(self) -> ModelVersion | None:
        """The production model, or None before the first one is registered."""
        row = self._production_row(self._conns.db())
        return None if row is None else self._model(row)

    def list_models(self, status: str | None = None) -> list[ModelVersion]:
        """Registered versions, newest first, optionally with one status."""
        where, params = ("WHERE status = ?", [status]) if status else ("", [])
        return [self._model(r) for r in self._conns.db().query(
            f"SELECT * FROM models {where} ORDER BY version DESC", params)]

    def model_audit(self, limit: int = 100, version: int | None = None) -> list[AuditEntry]:
        """Promotions, rollbacks and rejections, newest first."""
        where, params = ("WHERE version = ?", [version]) if version is not None else ("", [])
        return [row_to_audit(r) for r in self._conns.db().query(
            f"SELECT * FROM model_audit {where} ORDER BY id DESC LIMIT ?", [*params, int(limit)])]

    # -- models/registry.json ------------------------------------------------------------------

    def registry_mirror_path(self) -> Path:
        """``W/models/registry.json``: the registry as JSON for ``python -m semgan --workspace``."""
        return registry_file.registry_path(self.models_dir)

    def _mirror_content(self, db: Database) -> dict:
        """What the mirror should hold now (without its ``written`` time)."""
        rows = list(db.query(f"SELECT {registry_file.COLUMNS} FROM models ORDER BY version"))
        return registry_file.build(self.workspace, rows)

    def write_registry_mirror(self) -> Path:
        """Rewrite ``models/registry.json`` from the models table; returns its path."""
        path = self.registry_mirror_path()
        # Under the write lock, in a transaction that changes nothing: concurrent writers then
        # mirror one at a time, each from the newest committed state, so the file left last is
        # never older than the last commit. The registry change itself committed before this.
        with self._write() as db:
            registry_file.write(path, self._mirror_content(db))
        return path

    def sync_registry_mirror(self) -> bool:
        """Write the mirror if it is missing or disagrees with the database; True if written."""
        try:
            if registry_file.is_current(self.registry_mirror_path(),
                                        self._mirror_content(self._conns.db())):
                return False
        except (sqlite3.Error, StoreError) as exc:
            self._mirror_failed(exc)
            return False
        return self._refresh_registry_mirror()

    def _refresh_registry_mirror(self) -> bool:
        """After a commit: rewrite the mirror; a failure is a warning event, never an error."""
        try:
            self.write_registry_mirror()
        except (OSError, sqlite3.Error, StoreError) as exc:
            self._mirror_failed(exc)
            return False
        return True

    def _mirror_failed(self, exc: Exception) -> None:
        """Warn (log + event) that the mirror is stale; the database change stands."""
        message = (f"could not update {self.registry_mirror_path()}: {exc}; "
                   "`python -m semgan --workspace` may see an outdated model registry until the "
                   "next registry change or the next time the workspace is opened")
        log.warning(message)
        if isinstance(exc, DatabaseBusyError):
            return  # recording the event would wait for the same lock again
        try:
            with self._write() as db:
                self._event(db, "registry_mirror_failed", message, {"error": str(exc)})
        except (sqlite3.Error, StoreError) as event_exc:
            log.warning("could not record the registry_mirror_failed event: %s", event_exc)
