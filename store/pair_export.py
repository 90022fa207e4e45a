"""Export corrected pairs as PNG files with a JSON and CSV manifest (``semgan.pairfolder``'s shape)."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from semgan.pairfolder import PairItem, pairs_manifest
from store import blobs
from store.errors import InvalidInputError

if TYPE_CHECKING:
    from store.core import Store

MANIFEST_FIELDS = ("sample_id", "pair_id", "version", "name", "sem_file", "layout_file",
                   "nm_per_px", "height", "width", "source", "tool", "split", "kind", "author",
                   "created", "prediction_id", "prediction_model_version",
                   "iou_vs_prediction", "pixels_added", "pixels_removed")


def iso_utc(seconds: float) -> str:
    """Unix seconds as an ISO-8601 UTC timestamp."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


def export_pairs(store: Store, out_dir: Path, split: str | None = None) -> Path:
    """Write the latest pair of every corrected sample to ``out_dir``; returns ``out_dir``."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InvalidInputError(f"export target {out_dir} exists and is not a folder")
    (out_dir / "sem").mkdir(parents=True, exist_ok=True)
    (out_dir / "layout").mkdir(exist_ok=True)
    items = []
    for pair in store.list_pairs(split=split):
        sample = store.get_sample(pair.sample_id)
        stem = f"{sample.id:06d}.png"
        # Blob bytes are already lossless grey PNGs (masks 0/255): copy them, checked.
        (out_dir / "sem" / stem).write_bytes(blobs.read_blob(store.blobs_dir, sample.image_sha))
        (out_dir / "layout" / stem).write_bytes(blobs.read_blob(store.blobs_dir, pair.mask_sha))
        prediction = (store.get_prediction_by_id(pair.prediction_id)
                      if pair.prediction_id is not None else None)
        items.append(PairItem(
            sample.name or stem, f"sem/{stem}", f"layout/{stem}", sample.nm_per_px,
            sample.height, sample.width, tool=sample.tool, split=pair.split, kind=pair.kind,
            details={"sample_id": sample.id, "pair_id": pair.id, "version": pair.version,
                     "source": sample.source, "author": pair.author,
                     "created": iso_utc(pair.created), "prediction_id": pair.prediction_id,
                     "prediction_model_version": prediction.model_version if prediction
                     else None, "iou_vs_prediction": pair.iou_vs_prediction,
                     "pixels_added": pair.pixels_added, "pixels_removed": pair.pixels_removed}))
    manifest = pairs_manifest(items, exported=iso_utc(datetime.now(UTC).timestamp()),
                              workspace=str(store.workspace), split=split)
    records = manifest["pairs"]
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    with open(out_dir / "manifest.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_FIELDS)
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in records)
    return out_dir
