"""Design registration accuracy on simulated SEMs of real and repetitive layouts, shifted ±200 nm.

Run: ``.venv/bin/python -m bench.bench_overlay [--layouts ../shared/layouts/gf180mcu]
[--model default] [--signal prediction]`` → prints JSON and writes bench/results/overlay.json.
The image side is the model's own prediction of each simulated SEM (``--model none``: the
printed contour with speckle, the fast tests' stand-in); ``--signal edges`` registers the
SEM's edges instead. A case is recovered within 1 px on both axes; passed if recovered or
honestly flagged ambiguous.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from semgan.design.clip import rasterize_clip
from semgan.design.register import RegistrationConfig, register
from semgan.design.simulated import case_family, noisy_prediction, outcome, rates

DEFAULT_LAYOUTS = Path(__file__).resolve().parents[2] / "shared" / "layouts" / "gf180mcu"
RESULTS = Path(__file__).resolve().parent / "results" / "overlay.json"


def main() -> None:
    """Run the family and report per case kind."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--layouts", type=Path, default=DEFAULT_LAYOUTS)
    parser.add_argument("--model", default="default", help="model folder, 'default' or 'none'")
    parser.add_argument("--signal", default="auto", choices=("auto", "prediction", "edges", "both"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    cases = case_family(args.layouts if args.layouts.is_dir() else None, real_count=8,
                        per_layout=4, procedural_seeds=4)
    predictor = None
    if args.model != "none":
        from semgan.infer import Predictor

        predictor = Predictor.from_dir(args.model, "cpu")
    config = RegistrationConfig(signal=args.signal)
    outcomes, predict_s, register_s = [], 0.0, 0.0
    for index, case in enumerate(cases):
        started = time.perf_counter()
        if predictor is not None:
            prediction = predictor.predict(case.sem_image, case.nm_per_px).probability
        else:
            prediction = noisy_prediction(case.printed_mask, index)
        predict_s += time.perf_counter() - started
        started = time.perf_counter()
        clip = rasterize_clip(case.layout, case.believed_center_nm, case.sem_image.shape,
                              case.nm_per_px, 200.0)
        reg = register(clip, prediction, case.sem_image, config)
        register_s += time.perf_counter() - started
        outcomes.append(outcome(case, reg.dx_nm, reg.dy_nm, reg.ambiguous))
    by_profile = {p: rates([o for o in outcomes if o.profile == p])["all"]
                  for p in sorted({o.profile for o in outcomes})}
    report = {"model": args.model, "signal": args.signal, "cases": len(cases),
              "rates": rates(outcomes), "by_profile": by_profile,
              "seconds_per_case": {"predict": predict_s / len(cases), "register": register_s / len(cases)},
              "failures": [vars(o) for o in outcomes if not o.recovered]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
