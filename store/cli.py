"""``python -m store``: list what a workspace holds, export corrected pairs, collect blobs."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from store.core import Store, resolve_workspace
from store.errors import StoreError, WorkspaceError
from store.samples import SAMPLE_ORDERS


def _when(seconds: float | None) -> str:
    """Local time for tables."""
    return "" if seconds is None else datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M")


def _num(value: float | None, digits: int = 3) -> str:
    """A number for tables ('' for None)."""
    return "" if value is None else f"{value:.{digits}f}"


def _short(mapping: dict, limit: int = 4) -> str:
    """The first few key=value items of a dict."""
    items = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
             for k, v in list(mapping.items())[:limit]]
    return " ".join(items)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned plain-text table."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _rows(args: argparse.Namespace, store: Store) -> tuple[list, list[str], list[list]]:
    """(records, headers, table rows) for a listing command."""
    if args.command == "samples":
        records = store.list_samples(order_by=args.order_by, uncorrected_only=args.uncorrected,
                                     source=args.source, tool=args.tool, limit=args.limit)
        return records, ["id", "name", "size", "nm/px", "source", "tool", "drift", "flag",
                         "uncert", "corrected", "created"], [
            [s.id, s.name or "", f"{s.width}x{s.height}", f"{s.nm_per_px:g}", s.source,
             s.tool or "", _num(s.drift_score, 2), "!" if s.drift_flagged else "",
             _num(s.uncertainty), "yes" if s.corrected else "", _when(s.created)]
            for s in records]
    if args.command == "pairs":
        records = store.list_pairs(split=args.split, include_history=args.history)
        return records, ["id", "sample", "ver", "kind", "split", "author", "iou_vs_pred",
                         "+px", "-px", "created"], [
            [p.id, p.sample_id, p.version, p.kind, p.split, p.author,
             _num(p.iou_vs_prediction), "" if p.pixels_added is None else p.pixels_added,
             "" if p.pixels_removed is None else p.pixels_removed, _when(p.created)]
            for p in records]
    if args.command == "models":
        records = store.list_models(status=args.status)
        return records, ["version", "status", "parent", "metrics", "created", "promoted",
                         "path"], [
            [m.version, m.status, m.parent_version or "", _short(m.metrics), _when(m.created),
             _when(m.promoted_at), m.path] for m in records]
    if args.command == "audit":
        records = store.model_audit(limit=args.limit)
        return records, ["id", "action", "version", "previous", "actor", "reason", "when"], [
            [a.id, a.action, a.version, a.previous_version or "", a.actor, a.reason,
             _when(a.created)] for a in records]
    if args.command == "jobs":
        records = store.list_jobs(status=args.status, limit=args.limit)
        return records, ["id", "kind", "status", "progress", "pid", "created", "error"], [
            [j.id, j.kind, j.status, f"{j.step}/{j.total}", j.pid or "", _when(j.created),
             j.error or ""] for j in records]
    records = store.list_events(limit=args.limit, kinds=args.kind)
    return records, ["id", "when", "kind", "message"], [
        [e.id, _when(e.created), e.kind, e.message] for e in records]


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``python -m store``."""
    parser = argparse.ArgumentParser(prog="python -m store", description=__doc__)
    parser.add_argument("--workspace", type=Path, default=None,
                        help="workspace folder (default $SEMGAN_WORKSPACE or ./workspace)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sub = parser.add_subparsers(dest="command", required=True)
    samples = sub.add_parser("samples", help="list samples")
    samples.add_argument("--order-by", choices=tuple(SAMPLE_ORDERS), default="created")
    samples.add_argument("--uncorrected", action="store_true", help="only samples with no pair")
    samples.add_argument("--source", default=None)
    samples.add_argument("--tool", default=None)
    pairs = sub.add_parser("pairs", help="list corrected pairs (latest version per sample)")
    pairs.add_argument("--split", choices=("train", "holdout"), default=None)
    pairs.add_argument("--history", action="store_true", help="every saved version")
    models = sub.add_parser("models", help="list registered models")
    models.add_argument("--status", default=None)
    sub.add_parser("audit", help="promotions, rollbacks and rejections")
    jobs = sub.add_parser("jobs", help="list jobs")
    jobs.add_argument("--status", default=None)
    events = sub.add_parser("events", help="list recent events")
    events.add_argument("--kind", action="append", default=None, help="repeatable")
    sub.add_parser("counts", help="totals and new corrections since production")
    export = sub.add_parser("export", help="export corrected pairs (PNG + manifest)")
    export.add_argument("out", type=Path)
    export.add_argument("--split", choices=("train", "holdout"), default=None)
    gc = sub.add_parser("gc", help="delete image files no record refers to")
    gc.add_argument("--grace-seconds", type=float, default=3600.0)
    for listing in (samples, events, jobs, sub.choices["audit"]):
        listing.add_argument("--limit", type=int, default=50)
    for command in sub.choices.values():  # also accept the common options after the command
        command.add_argument("--workspace", type=Path, default=argparse.SUPPRESS)
        command.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    return parser


def run(args: argparse.Namespace, store: Store) -> Any:
    """Execute one command; returns the JSON-able result and prints the table form."""
    if args.command == "counts":
        counts = dataclasses.asdict(store.counts())
        if not args.json:
            print(format_table(["what", "count"], [[k, "" if v is None else v]
                                                   for k, v in counts.items()]))
        return counts
    if args.command == "export":
        out = store.export_pairs(args.out, split=args.split)
        count = json.loads((out / "manifest.json").read_text())["count"]
        if not args.json:
            print(f"exported {count} pairs to {out}")
        return {"out": str(out), "count": count}
    if args.command == "gc":
        result = dataclasses.asdict(store.gc_blobs(grace_s=args.grace_seconds))
        if not args.json:
            print(f"removed {result['removed']} files ({result['removed_bytes']} bytes), "
                  f"kept {result['kept']}, {result['skipped_recent']} too recent to remove")
        return result
    records, headers, rows = _rows(args, store)
    if not args.json:
        print(format_table(headers, rows) if rows else f"no {args.command}")
    return [dataclasses.asdict(r) for r in records]


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    workspace = resolve_workspace(args.workspace)
    try:
        if not (workspace / Store.DB_NAME).exists():
            raise WorkspaceError(f"no workspace at {workspace} (no {Store.DB_NAME}); pass "
                                 "--workspace or set SEMGAN_WORKSPACE")
        with Store.open(workspace) as store:
            result = run(args, store)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    return 0
