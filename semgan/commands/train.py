"""``python -m semgan train``: train (or resume, or fine-tune) a model on a paired data folder."""

from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from semgan.config import PRECISIONS
from semgan.errors import SemganError

if TYPE_CHECKING:
    from semgan.config import ExperimentConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the train options."""
    parser.add_argument("--data", type=Path, required=True, action="append",
                        help="paired data folder (manifest.json); repeat to train on several folders "
                             "as one (same pixel size), e.g. randomized tools beside the named profiles")
    parser.add_argument("--out", type=Path, required=True, help="model folder; resumed when it holds a checkpoint")
    parser.add_argument("--preset", choices=("tiny", "default", "l1only"),
                        help="model/loss preset (default: the checkpoint's when resuming or fine-tuning, "
                             "else 'default')")
    parser.add_argument("--steps", type=int, help="total optimizer steps (the LR decays over the second half)")
    parser.add_argument("--device", help="auto (CUDA when present), cpu, cuda, cuda:N")
    parser.add_argument("--precision", choices=PRECISIONS,
                        help="autocast: auto (default) = bf16 on GPUs and on CPUs with native bf16, "
                             "fp16 + loss scaling on older GPUs, fp32 elsewhere; weights stay fp32")
    parser.add_argument("--crop", type=int, help="random crop size in px (multiple of 2**n_down)")
    parser.add_argument("--batch", type=int, help="batch size per process")
    parser.add_argument("--seed", type=int, help="seed for initialisation, crops and shuffling")
    parser.add_argument("--holdout-fraction", type=float, help="fraction of items kept out of training by name hash")
    parser.add_argument("--workers", type=int, help="data loader worker processes")
    parser.add_argument("--checkpoint-every", type=int, help="steps between checkpoints")
    parser.add_argument("--sample-every", type=int, help="steps between sample grids")
    parser.add_argument("--init-from", type=Path, help="fine-tune: start from this model's weights and optimizer state")
    parser.add_argument("--lr-scale", type=float, help="multiply the LR (default 0.1 with --init-from, else 1)")
    parser.add_argument("--standardize", action=argparse.BooleanOptionalAction,
                        help="standardise each SEM image's intensity before the generator (default: the "
                             "preset's, or the checkpoint's when resuming or fine-tuning)")
    parser.add_argument("--row-drift-augment", type=float, metavar="A",
                        help="give half the training images a slow row-to-row brightness drift of "
                             "relative std up to A (0 = off; default: the preset's or checkpoint's)")
    parser.add_argument("--no-resume", action="store_true", help="start afresh even if --out holds a checkpoint")


def _config(args: argparse.Namespace, data_nm_per_px: float) -> ExperimentConfig:
    from semgan.checkpoint import has_checkpoint, read_config
    from semgan.config import get_preset
    from semgan.train.loop import check_compatible

    resuming = not args.no_resume and has_checkpoint(args.out)
    source = args.out if resuming else args.init_from
    if source is not None:
        # Resuming or fine-tuning keeps the model's own config (and pixel size); a --preset
        # given as well must describe the same networks.
        config = read_config(source)
        if args.preset is not None:
            check_compatible(config, get_preset(args.preset), source)
    else:
        # A new model works at the pixel size of the data it learns from.
        config = get_preset(args.preset or "default").replace("data", nm_per_px=data_nm_per_px)
    train = {"steps": args.steps, "device": args.device, "seed": args.seed, "precision": args.precision,
             "checkpoint_every": args.checkpoint_every, "sample_every": args.sample_every}
    data = {"crop_size": args.crop, "batch_size": args.batch, "holdout_fraction": args.holdout_fraction,
            "num_workers": args.workers, "standardize": args.standardize,
            "row_drift_augment": args.row_drift_augment}
    config = config.replace("train", **{k: v for k, v in train.items() if v is not None})
    return config.replace("data", **{k: v for k, v in data.items() if v is not None})


def _command_line(args: argparse.Namespace, config: ExperimentConfig) -> str:
    """The exact command, every setting explicit, so the card reproduces the run."""
    parts = ["python", "-m", "semgan", "train"]
    for folder in args.data:
        parts += ["--data", str(folder)]
    parts += ["--out", str(args.out),
              "--preset", args.preset or config.preset, "--steps", str(config.train.steps),
              "--device", config.train.device, "--crop", str(config.data.crop_size),
              "--batch", str(config.data.batch_size), "--seed", str(config.train.seed),
              "--precision", config.train.precision]
    if config.data.holdout_fraction:
        parts += ["--holdout-fraction", str(config.data.holdout_fraction)]
    parts.append("--standardize" if config.data.standardize else "--no-standardize")
    if config.data.row_drift_augment:
        parts += ["--row-drift-augment", str(config.data.row_drift_augment)]
    if args.init_from is not None:
        parts += ["--init-from", str(args.init_from), "--lr-scale", str(_lr_scale(args))]
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world > 1:
        parts[:3] = ["torchrun", "--nproc_per_node", str(world), "-m", "semgan"]
    return shlex.join(parts)


def _lr_scale(args: argparse.Namespace) -> float:
    if args.lr_scale is not None:
        return args.lr_scale
    return 0.1 if args.init_from is not None else 1.0


def run(args: argparse.Namespace) -> int:
    """Train, printing where the model, log and samples went; 130 when interrupted (resumable)."""
    from semgan.data import ConcatPairedDataset, PairedDataset, read_manifest
    from semgan.train.loop import fit

    if not _lr_scale(args) > 0:
        raise SemganError(f"--lr-scale must be positive, got {args.lr_scale}")
    config = _config(args, float(read_manifest(args.data[0])["nm_per_px"]))
    split = "train" if config.data.holdout_fraction > 0 else None
    parts = [PairedDataset.for_training(folder, config.data, seed=config.train.seed, split=split)
             for folder in args.data]
    dataset = parts[0] if len(parts) == 1 else ConcatPairedDataset(parts)
    result = fit(config, dataset, args.out, resume=not args.no_resume, init_from=args.init_from,
                 lr_scale=_lr_scale(args), command=_command_line(args, config), progress=True)
    if int(os.environ.get("RANK", 0)) == 0:
        print(f"{result.stop_reason} at step {result.step}/{config.train.steps} "
              f"({result.wall_seconds:.0f} s in total); model in {result.model_dir}")
        if result.stop_reason == "interrupted":
            print("checkpoint saved: run the same command again to resume")
    return 130 if result.stop_reason == "interrupted" else 0
