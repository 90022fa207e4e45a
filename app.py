"""semgan studio: open the workspace, bootstrap defaults, launch the review UI on 127.0.0.1."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import threading
from pathlib import Path

from semgan.config import PRECISIONS  # plain dataclasses: no torch, no gradio


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of the app."""
    parser = argparse.ArgumentParser(prog="python app.py", description=__doc__)
    parser.add_argument("--workspace", type=Path,
                        default=Path(os.environ.get("SEMGAN_WORKSPACE", "workspace")),
                        help="workspace folder (default $SEMGAN_WORKSPACE or ./workspace)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--share", action="store_true",
                        help="create a public Gradio link (off; needs --i-know-share-is-public)")
    parser.add_argument("--i-know-share-is-public", dest="share_confirmed", action="store_true",
                        help="confirm that --share serves this workspace to anyone with the link")
    parser.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                        help="another host name the app is reached under (repeatable; "
                             "'.example.com' allows its subdomains)")
    parser.add_argument("--api", action="store_true",
                        help="document the (non-admin) API endpoints and link the API page")
    parser.add_argument("--max-file-size", default="300mb",
                        help="largest upload accepted, e.g. 300mb, 2gb (default 300mb)")
    parser.add_argument("--precision", choices=PRECISIONS, default=None,
                        help="inference precision of the app and its worker (default $SEMGAN_PRECISION "
                             "or auto: bf16 on GPUs and on CPUs with native bf16, else fp32)")
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="model folder to install as production v1 on an empty workspace "
                             "(default: the shipped semgan/weights/default)")
    parser.add_argument("--demo-count", type=int, default=12,
                        help="demo SEM images generated on first run (default 12)")
    parser.add_argument("--no-bootstrap", action="store_true",
                        help="open the workspace as it is: install no model, add no demo data")
    return parser


def no_model_notice(model_dir: Path | None) -> str:
    """What the UI says when no model is installed."""
    where = f"{model_dir}" if model_dir else "semgan/weights/default (not shipped in this copy)"
    return (f"No model installed: none found at {where}. Train one with `python -m semgan "
            "train …`, then restart on an empty workspace with `python app.py --model-dir "
            "MODEL_DIR`. Reviewing, correcting and exporting work without a model.")


def warm_model(store: object) -> threading.Thread:
    """Load the production model and run it once on a blank tile, in the background, so the first
    prediction a user asks for does not pay for the load and oneDNN's kernel selection."""
    def run() -> None:
        import numpy as np

        from loop.predictions import DEFAULT_CACHE
        from semgan.errors import SemganError

        model = store.production_model()
        if model is None:
            return
        try:
            predictor = DEFAULT_CACHE.get(model)
            with DEFAULT_CACHE.run_lock:
                predictor.predict(np.zeros((256, 256), np.uint8))
        except (SemganError, OSError) as exc:  # the first real prediction reports it properly
            print(f"  model warm-up failed: {exc}", file=sys.stderr)

    thread = threading.Thread(target=run, name="warm-model", daemon=True)
    thread.start()
    return thread


def main(argv: list[str] | None = None) -> int:
    """Start semgan studio."""
    args = build_parser().parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # progress shows up even when piped to a log
    if args.precision:  # read by every Predictor, in this process and the worker it spawns
        os.environ["SEMGAN_PRECISION"] = args.precision
    # torch's import is mostly loading shared libraries, which releases the GIL: done in a thread
    # it overlaps gradio's (pure Python) import below instead of following it.
    threading.Thread(target=importlib.import_module, args=("semgan.infer",), daemon=True).start()
    from annotate.security import ShareNotConfirmedError, WebPolicy, check_share, red
    try:
        share_warning = check_share(args.share, args.share_confirmed)
    except ShareNotConfirmedError as exc:
        print(red(f"error: {exc}"), file=sys.stderr)
        return 2
    from annotate.blocks import build_ui, launch_kwargs
    from annotate.studio import Studio
    from loop.bootstrap import bootstrap
    from loop.shutdown import sigterm_as_keyboard_interrupt
    from loop.worker import resume_pending, stop_worker
    from store import Store, StoreError

    try:
        store = Store.open(args.workspace)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"semgan studio — workspace {store.workspace}")
    if not args.no_bootstrap:
        report = bootstrap(store, args.model_dir, demo_count=args.demo_count,
                           log=lambda line: print(f"  {line}"))
        if report.messages:
            print(f"  first-run setup took {report.seconds:.1f} s")
    studio = Studio(store, notice=no_model_notice(args.model_dir))
    if store.production_model() is None:
        print(f"  {studio.notice}")
    policy = WebPolicy(args.host, args.port, tuple(args.allowed_host), args.share, args.api,
                       args.max_file_size)
    demo = build_ui(studio, show_api=policy.show_api)
    demo.queue(default_concurrency_limit=2, api_open=False)
    if share_warning:
        print(share_warning, file=sys.stderr)
    if (pid := resume_pending(store)) is not None:
        print(f"  jobs waiting: worker pid {pid} resumes them")
    warm_model(store)
    sigterm_as_keyboard_interrupt()  # SIGTERM closes the server like Ctrl-C, then we get here
    try:
        demo.launch(inbrowser=False, show_error=True, **launch_kwargs(policy))
    finally:
        if (pid := stop_worker(store.workspace)) is not None:  # its job resumes next start
            print(f"stopped worker pid {pid}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
