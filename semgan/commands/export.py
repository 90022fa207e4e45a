"""``python -m semgan export``: a trained model folder → a shippable inference model.

Writes generator weights (fp16 by default; the critics too with ``--critics``) + config + card, and records in the card the
drift reference of the training images, the evaluation result and, for a fine-tuned model, the
runs it grew from (``lineage``), so the shipped card is produced by commands only, never edited by hand.
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from semgan.model_card import ModelCard


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the export options."""
    parser.add_argument("--model", type=Path, required=True, help="trained model folder (a checkpoint)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the inference model")
    parser.add_argument("--dtype", choices=("float16", "float32"), default="float16")
    parser.add_argument("--critics", action="store_true",
                        help="also export the discriminators, so fine-tunes start with trained critics")
    parser.add_argument("--reference-data", type=Path,
                        help="training data folder: its SEM images become the card's drift reference")
    parser.add_argument("--reference-count", type=int, default=500,
                        help="at most this many images for the drift reference (evenly spaced)")
    parser.add_argument("--evaluation", type=Path, action="append", default=[],
                        help="JSON from `semgan evaluate --json`; repeat for several data sets")


def run(args: argparse.Namespace) -> int:
    """Export, then add the drift reference and the evaluations to the card."""
    import numpy as np
    import torch

    from semgan.checkpoint import export_inference
    from semgan.data import read_manifest
    from semgan.drift import build_reference
    from semgan.errors import SemganError
    from semgan.imageio import load_image
    from semgan.model_card import ModelCard

    for path in args.evaluation:
        if not path.is_file():
            raise SemganError(f"--evaluation {path}: no such file; write it with `semgan evaluate --json`")
    out = export_inference(args.model, args.out, dtype=getattr(torch, args.dtype), critics=args.critics)
    card = ModelCard.read(out)
    if args.reference_data is not None:
        manifest = read_manifest(args.reference_data)
        items = manifest["items"]
        chosen = np.linspace(0, len(items) - 1, min(args.reference_count, len(items))).round().astype(int)
        images = (load_image(args.reference_data / items[i]["sem"]).pixels for i in chosen)
        reference = build_reference(images, float(manifest["nm_per_px"]))
        card.drift_reference = reference.to_dict()
        card.drift_reference_source = {"data": str(args.reference_data), "images": len(chosen)}
    evaluations = []
    for path in args.evaluation:
        result = json.loads(path.read_text())
        evaluations.append({
            "data": result["data"], "target": result["target"], "items": result["items"],
            "nm_per_px": result["nm_per_px"], "edge_check": result.get("edge_check"),
            "methods": {name: {"overall": scores["overall"], "groups": scores["groups"]}
                        for name, scores in result["methods"].items()},
            "comparisons": result.get("comparisons", []),
        })
    if evaluations:
        card.evaluations = evaluations
        # The exported model's own held-out figures (evaluate labels a model by its folder name).
        own = evaluations[0]["methods"].get(Path(args.model).name)
        if own is not None:
            card.metrics = {"heldout": own["overall"], "heldout_data": evaluations[0]["data"]}
    if card.fine_tuned_from:
        card.lineage = lineage(card)
    card.export["command"] = "python -m semgan export " + " ".join(
        shlex.quote(part) for part in _canonical(args))
    card.write(out)
    size_mb = sum(f.stat().st_size for f in out.iterdir()) / 1e6
    print(f"exported {args.model} → {out} ({size_mb:.1f} MB)")
    return 0


def lineage(card: ModelCard | dict[str, Any], limit: int = 20) -> list[dict[str, Any]]:
    """The runs a fine-tuned model grew from, nearest first: folder, command, steps, wall time.

    Read from each ancestor's ``card.json`` (``fine_tuned_from``), so the shipped card holds every
    command that produced its weights. An ancestor folder that is gone is listed as missing.
    """
    from semgan.model_card import CARD, ModelCard

    chain: list[dict[str, Any]] = []
    source = ModelCard.of(card).fine_tuned_from
    while source and len(chain) < limit:
        if not (Path(source) / CARD).is_file():
            chain.append({"model": source, "missing": True})
            break
        parent = ModelCard.read(source)
        chain.append({"model": source, "command": parent.command, "steps": parent.steps,
                      "wall_seconds": parent.wall_seconds, "device": parent.device, "lr_scale": parent.lr_scale})
        source = parent.fine_tuned_from
    return chain


def _canonical(args: argparse.Namespace) -> list[str]:
    parts = ["--model", str(args.model), "--out", str(args.out), "--dtype", args.dtype]
    if args.critics:
        parts.append("--critics")
    if args.reference_data is not None:
        parts += ["--reference-data", str(args.reference_data), "--reference-count", str(args.reference_count)]
    for path in args.evaluation:
        parts += ["--evaluation", str(path)]
    return parts
