"""A sample's attached design: the layout file (copied into the workspace), cell, layer, site.

The file is kept by content in ``designs/<sha256><suffix>`` (GDS/OASIS readers need the
suffix and a real path, and a design is not an image blob), so the workspace stays
self-contained. The registration the engineer last accepted is stored with it as JSON; its
shape is owned by ``semgan.design.placement.Registration`` (the store does not interpret it).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

from store.base import StoreBase, check_dict, dumps, loads
from store.blobs import sha256_hex, write_durably
from store.errors import InvalidInputError, NotFoundError

DESIGN_SUFFIXES = (".gds", ".gds2", ".gdsii", ".oas", ".oasis", ".glp")
MAX_DESIGN_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class SampleDesign:
    """The design attached to one sample and its last registration (None until registered)."""

    sample_id: int
    design_sha: str
    file_name: str
    suffix: str
    cell: str | None
    layer: tuple[int, int]
    center_nm: tuple[float, float]
    search_nm: float
    registration: dict | None
    created: float
    updated: float


def _row_to_design(row: dict) -> SampleDesign:
    return SampleDesign(
        sample_id=row["sample_id"], design_sha=row["design_sha"], file_name=row["file_name"],
        suffix=row["suffix"], cell=row["cell"], layer=(row["layer"], row["datatype"]),
        center_nm=(row["center_x_nm"], row["center_y_nm"]), search_nm=row["search_nm"],
        registration=loads(row["registration_json"]), created=row["created"],
        updated=row["updated"])


class DesignsMixin(StoreBase):
    """Attach a design file to a sample, read it back, record its registration."""

    @property
    def designs_dir(self) -> Path:
        """Where attached design files live."""
        return self.workspace / "designs"

    def design_file(self, design: SampleDesign) -> Path:
        """The path of the design's file inside the workspace."""
        return self.designs_dir / f"{design.design_sha}{design.suffix}"

    def _store_design_file(self, data: bytes, suffix: str) -> str:
        sha = sha256_hex(data)
        path = self.designs_dir / f"{sha}{suffix}"
        if not path.exists():
            write_durably(path, data)
        return sha

    def attach_design(self, sample_id: int, source: str | Path, *, cell: str | None,
                      layer: tuple[int, int], center_nm: tuple[float, float],
                      search_nm: float, file_name: str | None = None) -> SampleDesign:
        """Copy a layout file into the workspace and attach it (replacing any earlier one)."""
        source = Path(source)
        suffix = Path(file_name or source.name).suffix.lower()
        if suffix not in DESIGN_SUFFIXES:
            raise InvalidInputError(f"{file_name or source.name}: a design must be one of "
                                    f"{', '.join(DESIGN_SUFFIXES)}")
        if not source.is_file() or source.stat().st_size > MAX_DESIGN_BYTES:
            raise InvalidInputError(f"{source}: not a readable file of at most "
                                    f"{MAX_DESIGN_BYTES // 2**20} MiB")
        values = [*center_nm, search_nm]
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in values) or search_nm < 0:
            raise InvalidInputError(f"the site centre {center_nm} and search radius {search_nm} "
                                    "must be finite numbers of nm (radius ≥ 0)")
        self.get_sample(sample_id)  # NotFoundError before anything is written
        sha = self._store_design_file(source.read_bytes(), suffix)
        now = time.time()
        row = {"sample_id": int(sample_id), "design_sha": sha,
               "file_name": file_name or source.name, "suffix": suffix, "cell": cell or None,
               "layer": int(layer[0]), "datatype": int(layer[1]),
               "center_x_nm": float(center_nm[0]), "center_y_nm": float(center_nm[1]),
               "search_nm": float(search_nm), "registration_json": None, "created": now,
               "updated": now}
        with self._write() as db:
            db["sample_designs"].upsert(row, pk="sample_id")
            self._event(db, "design_attached", f"design {row['file_name']} attached to sample "
                        f"{sample_id}", {"sample_id": int(sample_id), "design_sha": sha})
        return _row_to_design(row)

    def sample_design(self, sample_id: int) -> SampleDesign | None:
        """The design attached to a sample, or None."""
        rows = list(self._conns.db().query(
            "SELECT * FROM sample_designs WHERE sample_id = ?", [int(sample_id)]))
        return _row_to_design(rows[0]) if rows else None

    def save_registration(self, sample_id: int, registration: dict) -> SampleDesign:
        """Record the registration (offset, rotation, scale, score, nudges) of a sample's design."""
        check_dict(registration, "registration")
        with self._write() as db:
            found = db.execute("SELECT 1 FROM sample_designs WHERE sample_id = ?",
                               [int(sample_id)]).fetchone()
            if found is None:
                raise NotFoundError(f"sample {sample_id} has no design attached")
            db.execute("UPDATE sample_designs SET registration_json = ?, updated = ? "
                       "WHERE sample_id = ?", [dumps(registration), time.time(), int(sample_id)])
        design = self.sample_design(sample_id)
        assert design is not None
        return design
