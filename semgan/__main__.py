"""Command line: ``python -m semgan <command> …``."""

from __future__ import annotations

import argparse
import importlib
import sys

from semgan.errors import SemganError

# Explicit registry: command name → (module under semgan.commands, one-line help).
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("synth", "generate paired SEM/layout data (or a --preview contact sheet)"),
    "train": ("train", "train, resume or fine-tune a SEM ↔ layout model on a paired data folder"),
    "predict": ("predict", "SEM → layout (or layout → SEM) for an image or a folder, one PNG each"),
    "export": ("export", "turn a trained model into a shippable inference model with its card"),
    "evaluate": ("evaluate", "metrics of models next to the Otsu baseline on a paired data folder"),
    "overlay": ("overlay", "register a SEM image to its design (GDS/OASIS): offset, EPE, markers, contours"),
}


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every registered sub-command."""
    parser = argparse.ArgumentParser(prog="python -m semgan", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(f"semgan.commands.{module_name}")
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen command; bad input exits with status 2."""
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except SemganError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
