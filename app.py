"""semgan studio: open the workspace, bootstrap defaults, launch the review UI on 127.0.0.1."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of the app."""
    parser = argparse.ArgumentParser(prog="python app.py", description=__doc__)
    parser.add_argument("--workspace", type=Path,
                        default=Path(os.environ.get("SEMGAN_WORKSPACE", "workspace")),
                        help="workspace folder (default $SEMGAN_WORKSPACE or ./workspace)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--share", action="store_true", help="create a public Gradio link (off by default)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Start semgan studio."""
    args = build_parser().parse_args(argv)
    print("semgan studio")
    print(f"  workspace: {args.workspace.resolve()}")
    print("  data engine: ready (python -m semgan synth --help)")
    print("  model, store, review UI and fine-tuning loop: not built yet")
    return 0


if __name__ == "__main__":
    sys.exit(main())
