"""``python -m semgan synth``: write paired SEM/layout data, or a contact sheet of every profile."""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from semgan import DEFAULT_NM_PER_PX
from semgan.errors import SemganError
from semgan.layouts.families import FAMILIES, UnknownFamilyError, parse_families


def parse_layer(text: str) -> tuple[int, int]:
    """Parse ``"34/0"`` (layer/datatype) or ``"34"`` into a tuple."""
    layer, _, datatype = text.partition("/")
    try:
        return int(layer), int(datatype or 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"layer must look like 34/0, got {text!r}") from None


def family_list(text: str) -> list[str]:
    """Parse ``"contacts,vias"`` (or ``"all"``) into checked family names."""
    try:
        return parse_families(text)
    except UnknownFamilyError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def family_layer(text: str) -> tuple[str, tuple[int, int] | None]:
    """Parse ``"contacts=33/0"`` (or ``"routing=none"``) into a family and its real-clip layer."""
    name, sep, layer = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected FAMILY=LAYER/DATATYPE (e.g. contacts=33/0), got {text!r}")
    family = family_list(name)
    if len(family) != 1:
        raise argparse.ArgumentTypeError(f"name one family before '=', got {name!r}")
    return family[0], None if layer.strip().lower() == "none" else parse_layer(layer)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the synth options."""
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--count", type=int, default=100, help="number of pairs (default 100)")
    parser.add_argument("--size", type=int, default=256, help="image size in px (default 256)")
    parser.add_argument("--nm-per-px", type=float, default=DEFAULT_NM_PER_PX,
                        help=f"pixel size in nm (default {DEFAULT_NM_PER_PX})")
    parser.add_argument("--profile", default="clean",
                        help="tool profile: a name, a comma list, 'all', a profile .json file, or "
                             "'random[:train|validation|all]' (a randomized tool per image; also a "
                             "randomized-tool .json file)")
    parser.add_argument("--layouts", type=Path, help="GDS/OASIS/GLP file or folder of real layouts")
    parser.add_argument("--layer", type=parse_layer, default=(34, 0), help="layer/datatype of real clips without family options (default 34/0)")
    parser.add_argument("--cell", help="GDS cell (default: the top cell)")
    parser.add_argument("--real-fraction", type=float, default=1.0,
                        help="with --layouts: fraction of pairs from real clips, rest procedural")
    parser.add_argument("--layout-split", choices=("train", "holdout"),
                        help="with --layouts: only files of this split (20 %% hold-out by file name)")
    parser.add_argument("--max-tiles-per-file", type=int, default=64,
                        help="with --layouts: at most this many tiles per layout file (default 64)")
    names = ", ".join(FAMILIES)
    parser.add_argument("--families", type=family_list,
                        help=f"comma list of layout families to draw from (default all: {names})")
    parser.add_argument("--hold-out-families", type=family_list, default=[],
                        help="comma list of families held out: never generated into the train split")
    parser.add_argument("--family-split", choices=("train", "holdout"),
                        help="with families: generate the families not held out (train, default) "
                             "or only the held-out ones (holdout)")
    parser.add_argument("--family-layer", type=family_layer, action="append", default=[],
                        metavar="FAMILY=L/D",
                        help="with --layouts and families: the layer real clips of FAMILY come from "
                             "(defaults: cell_metal=34/0, contacts=33/0, vias=35/0; 'none': procedural "
                             "only); repeatable. --layer applies only without family options")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preview", action="store_true",
                        help="write OUT/contact_sheet.png with examples of every profile instead")


def run(args: argparse.Namespace) -> int:
    """Generate the data set or the preview."""
    from PIL import Image

    from semgan.synth import contact_sheet, load_real_tiles, resolve_profiles, write_dataset

    profiles = resolve_profiles(args.profile)
    if args.preview:
        real = ()
        if args.layouts is not None:
            real = load_real_tiles(args.layouts, size=args.size, nm_per_px=args.nm_per_px, layer=args.layer,
                                   cell=args.cell, split=args.layout_split,
                                   max_tiles_per_file=args.max_tiles_per_file)
        chosen = None if args.profile == "clean" else profiles
        sheet = contact_sheet(chosen, size=args.size, nm_per_px=args.nm_per_px, seed=args.seed, real_tiles=real)
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / "contact_sheet.png"
        Image.fromarray(sheet).save(path)  # RGB, lossless
        print(f"wrote {path}")
        return 0
    if args.count < 1:
        raise SemganError(f"--count must be at least 1, got {args.count}")
    with tqdm(total=args.count, unit="img", desc="synth", disable=args.count < 20) as bar:
        manifest = write_dataset(
            args.out, args.count, size=args.size, nm_per_px=args.nm_per_px, profiles=profiles,
            seed=args.seed, layouts=args.layouts, layer=args.layer, cell=args.cell,
            real_fraction=args.real_fraction, layout_split=args.layout_split,
            max_tiles_per_file=args.max_tiles_per_file, families=args.families,
            hold_out_families=args.hold_out_families, family_split=args.family_split,
            family_layers=dict(args.family_layer) if args.family_layer else None, progress=bar.update,
        )
    print(f"wrote {args.count} pairs and {manifest}")
    return 0
