"""``python -m semgan overlay``: register a SEM image to its design, EPE against it, markers, contours."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from semgan.errors import SemganError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the overlay options."""
    parser.add_argument("--sem", type=Path, required=True, help="the SEM image (PNG/TIFF)")
    parser.add_argument("--design", type=Path, required=True, help="the design: .gds, .oas or .glp")
    parser.add_argument("--cell", default=None, help="cell name (default: the single top cell)")
    parser.add_argument("--layer", default="34/0", help="layer/datatype, e.g. 34/0")
    parser.add_argument("--nm-per-px", type=float, help="SEM pixel size (default: from the file)")
    parser.add_argument("--center-nm", default=None,
                        help="X,Y: the design point (nm) believed to lie at the image centre "
                             "(default: from the file name or TIFF description, else the cell's centre)")
    parser.add_argument("--search-nm", type=float, default=200.0,
                        help="search ± this far around the centre (nm)")
    parser.add_argument("--signal", choices=("auto", "prediction", "edges", "both"), default="auto",
                        help="register the model's prediction, the SEM's edges, or both "
                             "(auto: the prediction, or the SEM's edges with --no-model)")
    parser.add_argument("--model", default="default", help="model folder or 'default'")
    parser.add_argument("--compare-model", default=None,
                        help="a second model: where it predicts otherwise becomes model_disagreement markers")
    parser.add_argument("--no-model", action="store_true",
                        help="no prediction: register on the SEM's edges; no EPE or contours")
    parser.add_argument("--step-nm", type=float, default=4.0, help="EPE segment length (2–5 nm)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--out", type=Path, required=True, help="output folder")


def run(args: argparse.Namespace) -> int:
    """Register, measure and write registration.json, epe.json, markers.lyrdb, contours.gds/.oas."""
    from semgan.design.clip import (
        DesignSource,
        center_from_file,
        load_design,
        parse_center,
        parse_layer,
        search_window,
    )
    from semgan.design.register import RegistrationConfig
    from semgan.design.site import register_site, site_markers, write_site
    from semgan.imageio import load_image

    loaded = load_image(args.sem)
    nm_per_px = args.nm_per_px or loaded.nm_per_px
    if nm_per_px is None or not nm_per_px > 0:
        raise SemganError(f"{args.sem}: pixel size unknown; pass --nm-per-px")
    layout = load_design(DesignSource(str(args.design), args.cell, parse_layer(args.layer)))
    search_nm = args.search_nm
    if args.center_nm is not None:
        center = parse_center(args.center_nm)
    elif (found := center_from_file(args.sem)) is not None:
        center = found
        print(f"site centre from {args.sem.name}: {center[0]:g}, {center[1]:g} nm", file=sys.stderr)
    else:
        center, search_nm = search_window(layout)
        print(f"no site centre given: searching the whole cell (±{search_nm:.0f} nm)", file=sys.stderr)
    sem = loaded.pixels
    prediction = other = None
    if not args.no_model:
        from semgan.infer import Predictor

        prediction = Predictor.from_dir(args.model, args.device).predict(sem, nm_per_px)
        if args.compare_model is not None:
            other = Predictor.from_dir(args.compare_model, args.device).predict(sem, nm_per_px).mask
    result = register_site(layout, sem, nm_per_px, center, search_nm,
                           None if prediction is None else prediction.probability,
                           RegistrationConfig(signal=args.signal), args.step_nm)
    sample = args.sem.name
    markers = site_markers(result, sample, None if prediction is None else prediction.confidence,
                           other, None if prediction is None else prediction.mask)
    masks = {} if prediction is None else {"prediction": prediction.mask}
    files = write_site(args.out, result, layout, sample, masks, markers)
    reg = result.registration
    verdict = "AMBIGUOUS (a repetitive pattern? check the alternatives)" if reg.ambiguous else "ok"
    print(f"offset dx {reg.dx_nm:+.1f} nm, dy {reg.dy_nm:+.1f} nm, rotation {reg.rotation_deg:g}°, "
          f"scale {reg.scale:g}, score {reg.score:.3f}, confidence {reg.confidence:.2f}: {verdict}")
    if result.epe.segments:
        summary = result.epe.summary()
        print(f"EPE vs design: mean |EPE| {summary['mean_abs_nm']:.2f} nm, p95 {summary['p95_abs_nm']:.2f} nm, "
              f"{summary['segments']} segments ({summary['missing']} without a predicted edge)")
    print("wrote " + ", ".join(str(p) for p in files.values()))
    return 0
