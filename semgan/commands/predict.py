"""``python -m semgan predict``: SEM → layout (or layout → SEM) for one image or a folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from semgan.config import PRECISIONS
from semgan.errors import SemganError
from semgan.registry import resolve_model_spec, workspace_from_env


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the predict options."""
    parser.add_argument("--model", default="default",
                        help="model folder, 'default' for the shipped model, or with --workspace "
                             "'production' / 'vN' from the workspace's model registry")
    add_workspace_argument(parser)
    parser.add_argument("--input", type=Path, required=True, help="an image file or a folder of images")
    parser.add_argument("--out", type=Path, required=True, help="output folder (one PNG per input)")
    parser.add_argument("--direction", choices=("sem2layout", "layout2sem"), default="sem2layout")
    parser.add_argument("--nm-per-px", type=float,
                        help="input pixel size (default: from the file, else the model's, with a warning)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    add_speed_arguments(parser)
    parser.add_argument("--no-edge-check", action="store_true",
                        help="keep the generator's raw mask: skip the edge-support check that flips "
                             "regions whose outline has no edge in the SEM (semgan.edgecheck)")
    parser.add_argument("--confidence", action="store_true",
                        help="sem2layout: also write NAME_confidence.png (|2p-1| as 0..255)")
    parser.add_argument("--report", type=Path, metavar="FILE.json",
                        help="sem2layout: also write per image its uncertainty (0-1, higher = more likely "
                             "wrong; 3 more passes under flips), drift and seconds (semgan.uncertainty)")


def add_speed_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare ``--precision``, ``--tile-size`` and ``--overlap``, shared by predict and evaluate."""
    parser.add_argument("--precision", choices=PRECISIONS, default=None,
                        help="auto (default, or $SEMGAN_PRECISION): bf16 on GPUs and on CPUs with "
                             "native bf16, else fp32")
    parser.add_argument("--tile-size", type=int, default=256,
                        help="nominal tile size in model pixels (tiles up to 9/4 of it where that saves work)")
    parser.add_argument("--tool", default=None,
                        help="the SEM tool the images came from: its adaptation is used (a TIFF "
                             "naming its instrument is tagged with that); without it the nearest "
                             "grey-level histogram decides")
    parser.add_argument("--overlap", type=int, default=32, help="minimum tile overlap in model pixels")


def add_workspace_argument(parser: argparse.ArgumentParser) -> None:
    """Declare ``--workspace`` (default $SEMGAN_WORKSPACE), shared by predict and evaluate."""
    parser.add_argument("--workspace", type=Path, default=workspace_from_env(),
                        help="app workspace folder whose model registry resolves --model "
                             "production / vN (default: $SEMGAN_WORKSPACE if set)")


def input_files(path: Path) -> list[Path]:
    """The image files named by ``--input``."""
    from semgan.imageio import IMAGE_SUFFIXES  # numpy, OpenCV, Pillow: only once a command runs

    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise SemganError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)})")
        return files
    if not path.is_file():
        raise SemganError(f"{path}: no such file or folder")
    return [path]


def run(args: argparse.Namespace) -> int:
    """Predict every input and write PNGs at the input's pixel size."""
    import numpy as np

    from semgan.edgecheck import DEFAULT_EDGE_CHECK
    from semgan.imageio import load_image, save_png
    from semgan.infer import Predictor
    from semgan.uncertainty import image_report, write_report

    if args.nm_per_px is not None and not args.nm_per_px > 0:
        raise SemganError(f"--nm-per-px must be positive, got {args.nm_per_px}")
    files = input_files(args.input)
    model_dir, label = resolve_model_spec(args.model, args.workspace)
    if label != args.model:
        print(f"model {label}: {model_dir}", file=sys.stderr)
    predictor = Predictor.from_dir(model_dir, args.device, tile_size=args.tile_size, overlap=args.overlap,
                                   edge_check=None if args.no_edge_check else DEFAULT_EDGE_CHECK,
                                   precision=args.precision)
    args.out.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    reports = []
    for path in files:
        loaded = load_image(path)
        nm_per_px = args.nm_per_px or loaded.nm_per_px
        if nm_per_px is None:
            print(f"warning: {path.name}: pixel size unknown; assuming the model's {predictor.nm_per_px} nm/px "
                  "(pass --nm-per-px)", file=sys.stderr)
            nm_per_px = predictor.nm_per_px
        stem = path.stem if path.stem not in used else f"{path.stem}_{path.suffix.lstrip('.')}"
        used.add(stem)
        target = args.out / f"{stem}.png"
        checked = ""
        if args.direction == "sem2layout":
            tool = args.tool or loaded.tool
            prediction = predictor.predict(loaded.pixels, nm_per_px, tool)
            save_png(target, prediction.mask)
            if args.confidence:
                save_png(args.out / f"{stem}_confidence.png",
                         np.round(prediction.confidence * 255).astype(np.uint8))
            seconds = prediction.seconds
            if args.report:
                reports.append(image_report(path.name, predictor, loaded.pixels, nm_per_px, prediction,
                                            tool=tool))
            if prediction.routing != "none":
                how = "its tag" if prediction.routing == "tag" else "grey-level histogram (untagged)"
                checked += f", {prediction.calibration} adaptation by {how}"
            if prediction.edge_flips:
                checked = (f", edge check flipped {prediction.edge_flips} region(s), "
                           f"{100 * prediction.flipped_fraction:.1f} % of pixels")
        else:
            import time

            started = time.perf_counter()
            save_png(target, predictor.predict_sem(loaded.pixels > 0.5, nm_per_px))
            seconds = time.perf_counter() - started
        print(f"{path.name} → {target} ({loaded.pixels.shape[1]}×{loaded.pixels.shape[0]} px at "
              f"{nm_per_px:g} nm/px, {seconds:.2f} s{checked})")
    if args.report:
        print(f"report → {write_report(reports, args.report)}")
    return 0
