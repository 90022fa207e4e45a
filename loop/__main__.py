"""``python -m loop …``: the feedback loop from the command line (the same calls as the buttons).

    init            what the app's first run does: production model, demo data (headless)
    import-pairs    store SEM/layout file pairs as corrected pairs
    ingest          what the Review tab's upload does: store SEM images, predict them in a job
    finetune        queue what **Fine-tune now** queues (--wait: follow it, exit 1 unless it succeeds)
    status          counters, trigger state, cooldown, worker, current job, production version
    worker          run queued jobs: fine-tunes, batch predictions (normally started for you)
    check-triggers  run the automatic trigger once
    cancel          ask the running (or queued) fine-tune to stop
    settings        show or change the trigger settings and the fine-tune config
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence

from loop.batch import JOB_KIND, expand_paths, ingest_files
from loop.bootstrap import bootstrap
from loop.finetune import (
    FinetuneError,
    finetune_config,
    request_finetune,
    set_finetune_config,
    with_overrides,
)
from loop.follow import EXIT_JOB_FAILED, follow_job
from loop.jobs import (
    TRAINING_KINDS,
    BatchPredictRequest,
    FinetuneRequest,
    FinetuneResult,
)
from loop.pair_folders import PairImportError, import_pair_folder, import_pairs
from loop.triggers import TriggerError, check_triggers, set_trigger_settings, trigger_state
from loop.worker import LOG_NAME, run_worker, spawn_worker, worker_pid
from store import Job, Store, StoreError

EXIT_BAD_INPUT = 2


def _job_dict(job: Job | None) -> dict | None:
    return None if job is None else {**dataclasses.asdict(job), "progress": job.progress}


def _training_jobs(store: Store) -> list[Job]:
    return [j for j in store.list_jobs(limit=50) if j.kind in TRAINING_KINDS]


def cmd_init(args: argparse.Namespace, store: Store) -> int:
    """Set a workspace up as the app's first run does: production model, demo data."""
    if args.demo < 0:
        print(f"error: --demo must be 0 or more, not {args.demo}", file=sys.stderr)
        return EXIT_BAD_INPUT
    report = bootstrap(store, None if args.model == "default" else args.model,
                       demo_count=args.demo, log=print)
    if report.model_version is None:
        print(f"error: no production model in {store.workspace}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"workspace {store.workspace} ready: production v{report.model_version}"
          + ("" if report.installed_model or report.demo_samples else " (already set up)"))
    return 0


def cmd_import_pairs(args: argparse.Namespace, store: Store) -> int:
    """Import a folder pair; the automatic trigger then runs as after a UI correction."""
    if args.pairs is not None:
        report = import_pair_folder(store, args.pairs, args.tool, args.author)
    elif args.sem and args.layout and args.nm_per_px is not None:
        report = import_pairs(store, args.sem, args.layout, args.nm_per_px, args.tool,
                              args.author)
    else:
        raise PairImportError("give --pairs DIR (an exported pair folder), or --sem DIR "
                              "--layout DIR --nm-per-px X")
    for pair in report.imported:
        print(f"imported {pair.name}: sample {pair.sample_id}, pair {pair.pair_id} ({pair.split})")
    for name, reason in report.skipped:
        print(f"skipped {name}: {reason}")
    print(f"{len(report.imported)} imported, {len(report.skipped)} skipped")
    if report.imported and not args.no_trigger:
        print(f"automatic trigger: {check_triggers(store, spawn=True).message}")
    return 0


def cmd_ingest(args: argparse.Namespace, store: Store) -> int:
    """Store SEM images (files or folders) and predict them in the background, like the upload.

    Exit status 1 when a file was skipped or (with --wait) the job or any prediction failed.
    """
    paths = expand_paths(args.files)
    if not paths:
        print("error: no PNG/TIFF files found in " + ", ".join(args.files), file=sys.stderr)
        return EXIT_BAD_INPUT
    batch = ingest_files(store, paths, args.nm_per_px, "upload", args.tool,
                         spawn=not args.no_spawn)
    for outcome in batch.files:
        print(outcome.describe())
    print(f"{len(batch.stored)} stored, {len(batch.failed)} skipped")
    trouble = bool(batch.failed) or any(f.predict_error for f in batch.files)
    if batch.model_version is None:
        print("no production model: nothing predicted")
    elif batch.job is None and not trouble:
        print(f"every stored image has a prediction by v{batch.model_version}")
    elif batch.job is not None:
        behind = "".join(f"; waits for {j.kind} job {j.id}" for j in batch.waiting_behind)
        print(f"predicting {len(BatchPredictRequest.of(batch.job).sample_ids)} images in the background "
              f"with v{batch.model_version} (job {batch.job.id}{behind}; "
              f"`python -m loop cancel --job {batch.job.id}` stops it)")
        if args.wait and not args.no_spawn:
            followed = follow_job(store, batch.job.id)
            return EXIT_JOB_FAILED if trouble else followed
    return EXIT_JOB_FAILED if trouble else 0


def cmd_finetune(args: argparse.Namespace, store: Store) -> int:
    """Queue a manual fine-tune, start a worker, optionally follow it to the end."""
    config = with_overrides(finetune_config(store), args.set)
    job = request_finetune(store, "manual", config)
    print(f"queued fine-tune job {job.id} (production v{FinetuneRequest.of(job).production_version})")
    print(json.dumps(config.to_dict(), indent=1))
    if args.no_spawn:
        return 0
    pid = spawn_worker(store.workspace)
    print(f"worker pid {pid} (log: {store.logs_dir / LOG_NAME})")
    return follow_job(store, job.id) if args.wait else 0


def cmd_status(args: argparse.Namespace, store: Store) -> int:
    """Print where the loop stands."""
    counts, state = store.counts(), trigger_state(store)
    production = store.production_model()
    jobs = _training_jobs(store)
    current = next((j for j in jobs if j.active), None)
    last = next((j for j in jobs if not j.active), None)
    predicting = next((j for j in store.list_jobs(kind=JOB_KIND, limit=5) if j.active), None)
    status = {
        "workspace": str(store.workspace),
        "production": None if production is None else {
            "version": production.version, "path": production.path,
            "promoted_at": production.promoted_at, "metrics": production.metrics},
        "counts": dataclasses.asdict(counts), "triggers": state.to_dict(),
        "worker_pid": worker_pid(store.workspace), "current_job": _job_dict(current),
        "last_job": _job_dict(last), "finetune_config": finetune_config(store).to_dict(),
        "prediction_job": _job_dict(predicting)}
    if args.json:
        print(json.dumps(status, indent=1, default=str))
        return 0
    s = state.settings
    print(f"workspace: {store.workspace}")
    print(f"production: {'none' if production is None else f'v{production.version}'} "
          f"({counts.models} models registered)")
    print(f"corrected pairs: {counts.corrected_samples} ({counts.train_pairs} train / "
          f"{counts.holdout_pairs} holdout); new since production: {counts.new_since_production}"
          f" / threshold {s.threshold}")
    print(f"drift alarm: {'RAISED' if state.drift_alarm else 'off'} ({state.drift_flagged} of "
          f"the last {state.drift_scored} scored samples flagged; alarm at "
          f"{s.drift_alarm_min_flagged}); min new pairs for a drift run: {s.min_pairs_for_drift}")
    cooldown = "ready" if state.cooldown_remaining_s <= 0 else \
        f"{state.cooldown_remaining_s / 3600:.1f} h left"
    print(f"automatic trigger: {'on' if s.auto_trigger else 'off'}; cooldown "
          f"{s.cooldown_hours:g} h: {cooldown}; due: {state.due or 'no'}"
          + (f" (blocked: {state.blocked})" if state.due and state.blocked else ""))
    print(f"worker: {status['worker_pid'] or 'not running'}")
    for label, job in (("current job", current), ("last job", last)):
        if job is not None:
            tuned = FinetuneResult.of(job)
            detail = (f"step {job.step}/{job.total}" if job.active else
                      f"candidate v{tuned.candidate_version} {tuned.decision}: {tuned.reason}"
                      if tuned is not None else job.error or job.status)
            print(f"{label}: #{job.id} {job.kind} {job.status}: {detail}")
    if predicting is not None:
        print(f"batch prediction: #{predicting.id} {predicting.status}: step "
              f"{predicting.step}/{predicting.total or len(BatchPredictRequest.of(predicting).sample_ids)}")
    return 0


def cmd_worker(args: argparse.Namespace, store: Store) -> int:
    """Run the worker in this process."""
    store.close()  # the worker opens its own
    run_worker(args.workspace, once=args.once, idle_exit_s=args.idle_exit)
    return 0


def cmd_check_triggers(args: argparse.Namespace, store: Store) -> int:
    """Run the automatic trigger once."""
    print(check_triggers(store, spawn=not args.no_spawn).message)
    return 0


def cmd_cancel(args: argparse.Namespace, store: Store) -> int:
    """Cancel a job (default: the active training job)."""
    job_id = args.job
    if job_id is None:
        active = next((j for j in _training_jobs(store) if j.active), None)
        if active is None:
            print("no fine-tune is queued or running")
            return 0
        job_id = active.id
    job = store.request_cancel(job_id)
    print(f"job {job_id}: {job.status}" + (" (cancel requested)" if job.cancel_requested else ""))
    return 0


def cmd_settings(args: argparse.Namespace, store: Store) -> int:
    """Show or change trigger settings and the saved fine-tune config."""
    changes = {k: v for k, v in (("threshold", args.threshold), ("cooldown_hours", args.cooldown_hours),
                                 ("min_pairs_for_drift", args.min_pairs_for_drift)) if v is not None}
    if args.auto_trigger is not None:
        changes["auto_trigger"] = args.auto_trigger == "on"
    settings = set_trigger_settings(store, **changes) if changes else trigger_state(store).settings
    if args.set:
        set_finetune_config(store, with_overrides(finetune_config(store), args.set))
    print(json.dumps({"triggers": dataclasses.asdict(settings),
                      "finetune_config": finetune_config(store).to_dict()}, indent=1))
    return 0


COMMANDS = {"init": cmd_init, "import-pairs": cmd_import_pairs, "ingest": cmd_ingest, "finetune": cmd_finetune,
            "status": cmd_status, "worker": cmd_worker, "check-triggers": cmd_check_triggers, "cancel": cmd_cancel,
            "settings": cmd_settings}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m loop``."""
    parser = argparse.ArgumentParser(prog="python -m loop", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    sub = {name: commands.add_parser(name, help=COMMANDS[name].__doc__.split("\n")[0])
           for name in COMMANDS}
    for p in sub.values():
        p.add_argument("--workspace", default=None, help="workspace folder (default "
                       "$SEMGAN_WORKSPACE or ./workspace)")
    sub["init"].add_argument("--model", default="default", metavar="default|DIR",
                             help="model installed as production v1 (default: the shipped one)")
    sub["init"].add_argument("--demo", type=int, default=12, metavar="N",
                             help="demo SEM images to add (default 12; 0 for none)")
    sub["import-pairs"].add_argument("--pairs", default=None, metavar="DIR",
                                     help="a pair folder with manifest.json (an export, synth)")
    sub["import-pairs"].add_argument("--sem", help="folder of SEM images")
    sub["import-pairs"].add_argument("--layout",
                                     help="folder of binary layout PNGs with the same names")
    sub["import-pairs"].add_argument("--nm-per-px", type=float, default=None)
    sub["import-pairs"].add_argument("--tool", default=None, help="SEM tool name")
    sub["import-pairs"].add_argument("--author", default="import")
    sub["import-pairs"].add_argument("--no-trigger", action="store_true",
                                     help="do not run the automatic trigger afterwards")
    sub["ingest"].add_argument("files", nargs="+", metavar="FILE_OR_DIR",
                               help="PNG/TIFF SEM images, or folders of them (searched recursively)")
    sub["ingest"].add_argument("--nm-per-px", default=None,
                               help="pixel size for files that carry none (TIFF tags win)")
    sub["ingest"].add_argument("--tool", default=None, help="SEM tool / recipe name")
    sub["ingest"].add_argument("--wait", action="store_true",
                               help="follow the prediction job to its end")
    sub["ingest"].add_argument("--no-spawn", action="store_true",
                               help="only queue the job (a running worker or the app will run it)")
    for name in ("finetune", "settings"):
        sub[name].add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                               help="fine-tune config field (e.g. epochs=10, gate.max_iou_drop=0.01)")
    sub["finetune"].add_argument("--wait", action="store_true", help="follow the job to its end")
    sub["finetune"].add_argument("--no-spawn", action="store_true",
                                 help="only queue it (a running worker or the app will run it)")
    sub["status"].add_argument("--json", action="store_true")
    sub["worker"].add_argument("--once", action="store_true",
                               help="run what is queued now, then exit")
    sub["worker"].add_argument("--idle-exit", type=float, default=600.0,
                               help="exit after this many idle seconds")
    sub["check-triggers"].add_argument("--no-spawn", action="store_true")
    sub["cancel"].add_argument("--job", type=int, default=None)
    sub["settings"].add_argument("--auto-trigger", choices=("on", "off"), default=None)
    sub["settings"].add_argument("--threshold", type=int, default=None)
    sub["settings"].add_argument("--min-pairs-for-drift", type=int, default=None)
    sub["settings"].add_argument("--cooldown-hours", type=float, default=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; errors a user can fix print one line and exit 2."""
    args = build_parser().parse_args(argv)
    try:
        with Store.open(args.workspace) as store:
            return COMMANDS[args.command](args, store)
    except (FinetuneError, TriggerError, PairImportError, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
