"""``python -m semgan evaluate``: metrics of one or more models next to the Otsu baseline."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tqdm import tqdm

from semgan.commands.predict import add_speed_arguments, add_workspace_argument
from semgan.registry import resolve_model_spec


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the evaluate options."""
    parser.add_argument("--model", action="append", required=True,
                        help="model folder, 'default', or with --workspace 'production' / 'vN' "
                             "from the workspace's registry; repeat to compare several models")
    parser.add_argument("--data", type=Path, required=True, help="paired data folder (synth format)")
    parser.add_argument("--json", type=Path, help="write the full result (per item too) to this file")
    parser.add_argument("--target", choices=("layout", "printed"), default="layout",
                        help="compare against the design layout (default) or the printed contour")
    parser.add_argument("--limit", type=int, help="evaluate only the first N items")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--examples", type=Path,
                        help="also write a PNG grid of examples: SEM | truth | each method")
    parser.add_argument("--examples-count", type=int, default=6)
    parser.add_argument("--examples-items", default="",
                        help="comma-separated item names to add to the examples (e.g. hard cases)")
    parser.add_argument("--no-baseline", action="store_true", help="leave out the Otsu baseline")
    parser.add_argument("--edge-check", choices=("on", "off", "both"), default="on",
                        help="the Predictor's edge-support check (semgan.edgecheck); 'both' scores "
                             "each model with it and, as 'NAME (no edge check)', without")
    add_speed_arguments(parser)
    add_workspace_argument(parser)


def _label(spec: str, registry_label: str, used: set[str]) -> str:
    """A unique column name: the registry label, "default" or the model folder's name."""
    if registry_label != spec:
        label = registry_label
    else:
        label = spec if spec == "default" else Path(spec).name or spec
    while label in used:
        label += "'"
    used.add(label)
    return label


def run(args: argparse.Namespace) -> int:
    """Evaluate, print a table per group and overall, optionally write JSON."""
    from semgan.evaluate import (
        BASELINE,
        baseline_method,
        evaluate_folder,
        format_table,
        predictor_method,
    )
    from semgan.infer import Predictor, resolve_model

    # Baseline first, then the models in the order given: the columns read simple → learned.
    methods = {} if args.no_baseline else {BASELINE: baseline_method}
    used: set[str] = {BASELINE}
    names = [name.strip() for name in args.examples_items.split(",") if name.strip()]
    if names:  # a typo fails now, not after the evaluation
        from semgan.data import read_manifest
        from semgan.evaluate import pick_examples

        pick_examples(read_manifest(args.data), 0, names)
    # Resolve every name first so a bad --model fails before any model is loaded.
    resolved = [(spec, *resolve_model_spec(spec, args.workspace)) for spec in args.model]
    labels: list[str] = []
    for spec, model_dir, registry_label in resolved:
        label = _label(spec, registry_label, used)
        labels.append(label)
        speed = {"precision": args.precision, "tile_size": args.tile_size, "overlap": args.overlap}
        if args.edge_check in ("on", "both"):
            methods[label] = predictor_method(Predictor.from_dir(resolve_model(model_dir), device=args.device,
                                                                 **speed))
        if args.edge_check in ("off", "both"):
            unchecked = Predictor.from_dir(resolve_model(model_dir), device=args.device, edge_check=None, **speed)
            methods[f"{label} (no edge check)" if args.edge_check == "both" else label] = (
                predictor_method(unchecked))
    with tqdm(desc="evaluate", unit="img", leave=False) as bar:
        result = evaluate_folder(args.data, methods, target=args.target, limit=args.limit,
                                 progress=bar.update)
    first = next(iter(result["methods"].values()))
    print(f"{result['items']} images from {args.data} at {result['nm_per_px']} nm/px, "
          f"against the {args.target}")
    for group in ["overall", *first["groups"]]:
        print(f"\n[{group}]")
        print(format_table(result, group))
    if len(labels) > 1:  # the first model against each other one, image by image
        from dataclasses import asdict

        from semgan.paired_stats import compare_methods, format_comparison

        result["comparisons"] = []
        for other in labels[1:]:
            differences = compare_methods(result, labels[0], other)
            print(f"\n[paired: {labels[0]} vs {other}]")
            print(format_comparison(differences, labels[0], other))
            result["comparisons"].append({"first": labels[0], "second": other,
                                          "differences": [asdict(item) for item in differences]})
    if args.examples:
        from PIL import Image

        from semgan.evaluate import examples_figure

        figure = examples_figure(args.data, methods, args.examples_count, target=args.target, names=names)
        args.examples.parent.mkdir(parents=True, exist_ok=True)
        # a 256-colour palette: the masks are flat colours, the SEM greys lose nothing visible,
        # and the file is a quarter of the RGB one's size
        Image.fromarray(figure).quantize(256, method=Image.Quantize.MEDIANCUT).save(
            args.examples, optimize=True)
        print(f"wrote {args.examples}")
    if args.json:
        from dataclasses import asdict

        from semgan.edgecheck import DEFAULT_EDGE_CHECK

        # which settings produced the figures: models without " (no edge check)" used these
        result["edge_check"] = asdict(DEFAULT_EDGE_CHECK) if args.edge_check != "off" else None
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1, default=float))
        print(f"\nwrote {args.json}")
    return 0
