"""A table of malformed inputs, each with the named error it gets (docs/malformed_inputs.md).

``python -m tests.test_malformed_inputs`` rewrites the table in docs from these cases; a test
fails when the docs and the cases disagree.
"""

from __future__ import annotations

import io
import json
import re
import struct
import sys
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gdstk
import numpy as np
import pytest
import tifffile

from annotate.export_tab import ExportError, parse_layer
from loop.batch import ingest_files
from loop.finetune import FinetuneConfig, FinetuneError, with_overrides
from loop.pair_folders import (
    PairFolderImportError,
    PairImportError,
    import_pair_folder,
    import_pairs,
)
from loop.predictions import IngestError, MissingPixelSizeError, ingest_image
from loop.triggers import TriggerError, set_trigger_settings
from semgan.imageio import (
    EmptyImageError,
    ImageError,
    ImageTooLargeError,
    MultiPageTiffError,
    NonFiniteImageError,
    NotAnImageError,
    TruncatedImageError,
    UnsupportedImageError,
    encode_png,
    load_image,
)
from semgan.layouts.errors import (
    CellNotFoundError,
    GlpSyntaxError,
    LayerNotFoundError,
    LayoutFileError,
    NonManhattanError,
)
from semgan.layouts.io import read_gds, read_glp, read_layout
from semgan.layouts.raster import rasterize
from semgan.pairfolder import PAIRS_FORMAT, DatasetError, read_pair_folder
from semgan.semsim import PROFILES, ProfileError, get_profile, load_profile
from store import Store

DOCS = Path(__file__).resolve().parents[1] / "docs" / "malformed_inputs.md"


@dataclass(frozen=True)
class Case:
    """One malformed input: where it goes in, what is wrong, and the error it must get."""

    area: str
    what: str
    run: Callable[[Path], object]  # given a fresh folder, feeds the input in
    error: type[Exception]


# -- builders ----------------------------------------------------------------------------------


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header(width: int, height: int, idat: bytes | None = None) -> bytes:
    """A grey 8-bit PNG with the given header size (and IDAT payload, if any)."""
    head = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0,
                                                              0, 0, 0))
    return head + (b"" if idat is None else _chunk(b"IDAT", idat)) + _chunk(b"IEND", b"")


def tiff_header(width: int, height: int) -> bytes:
    """A little-endian grey TIFF IFD that declares ``width``×``height`` and holds no pixels."""
    entries = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1),
               (273, 4, 200), (277, 3, 1), (278, 4, height), (279, 4, min(width * height, 2**32 - 1))]
    ifd = struct.pack("<H", len(entries)) + b"".join(
        struct.pack("<HHII", tag, kind, 1, value) for tag, kind, value in entries)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0)


def tiff(array: np.ndarray, **kwargs) -> bytes:
    """TIFF bytes written by tifffile."""
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array, **kwargs)
    return buffer.getvalue()


def image(data: bytes) -> Callable[[Path], object]:
    """Load these bytes as an image."""
    return lambda folder: load_image(data)


def file_of(name: str, content: bytes | str, then: Callable[[Path], object]) \
        -> Callable[[Path], object]:
    """Write ``content`` to ``folder/name``, then call ``then`` on that path."""
    def run(folder: Path) -> object:
        path = folder / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return then(path)
    return run


def gds_file(name: str, cells: dict[str, list[tuple[int, int]]],
             then: Callable[[Path], object]) -> Callable[[Path], object]:
    """A GDS with a 100 nm square per (layer, datatype) in each cell."""
    def run(folder: Path) -> object:
        library = gdstk.Library(unit=1e-9, precision=1e-9)
        for cell_name, layers in cells.items():
            cell = library.new_cell(cell_name)
            for layer, datatype in layers:
                cell.add(gdstk.rectangle((0, 0), (100, 100), layer=layer, datatype=datatype))
        library.write_gds(str(folder / name))
        return then(folder / name)
    return run


def manifest(content: object, images: dict[str, np.ndarray] | None = None,
             then: Callable[[Path], object] = read_pair_folder) -> Callable[[Path], object]:
    """A pair folder with this manifest.json (a dict, or raw text) and these PNG files."""
    def run(folder: Path) -> object:
        for rel, pixels in (images or {}).items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_bytes(encode_png(pixels))
        text = content if isinstance(content, str) else json.dumps(content)
        (folder / "manifest.json").write_text(text)
        return then(folder)
    return run


def _dataset(folder: Path) -> object:
    from semgan.data import PairedDataset

    return PairedDataset(folder)


def _in_store(call: Callable[[Store, Path], object]) -> Callable[[Path], object]:
    def run(folder: Path) -> object:
        with Store.open(folder / "ws") as store:
            return call(store, folder)
    return run


def _profile_json(**changes: object) -> str:
    return json.dumps({**PROFILES["clean"].to_dict(), **changes})


SYNTH = {"version": 1, "nm_per_px": 4.0, "size": 8,
         "items": [{"name": "a", "sem": "sem/a.png", "layout": "layout/a.png"}]}
PAIRS = {"format": PAIRS_FORMAT, "pairs": [{"sem_file": "sem/a.png", "layout_file": "layout/a.png",
                                            "nm_per_px": 4.0, "height": 8, "width": 8}]}
GREY = np.full((8, 8), 90, np.uint8)
STACK = np.stack([GREY] * 3)
PNG = encode_png(np.tile(np.arange(64, dtype=np.uint8).reshape(8, 8), (8, 8)))  # 64×64


# -- the cases ---------------------------------------------------------------------------------

IMAGES = [
    ("empty file (0 bytes)", image(b""), EmptyImageError),
    ("no such file", lambda f: load_image(f / "missing.png"), ImageError),
    ("plain text", image(b"hello, not an image"), NotAnImageError),
    ("GIF magic", image(b"GIF89a" + b"\0" * 40), NotAnImageError),
    ("PDF magic", image(b"%PDF-1.7\n" + b"\0" * 40), NotAnImageError),
    ("wrong magic: PNG with its first byte changed", image(b"\x88" + PNG[1:]), NotAnImageError),
    ("PNG signature only", image(PNG[:8]), TruncatedImageError),
    ("PNG cut inside IHDR", image(PNG[:20]), TruncatedImageError),
    ("PNG without pixel data (no IDAT)", image(png_header(8, 8)), TruncatedImageError),
    ("PNG with a corrupt compressed stream", image(png_header(8, 8, b"\x78\x9c garbage")),
     TruncatedImageError),
    ("PNG truncated in its pixel data", image(PNG[:-20]), TruncatedImageError),
    ("PNG of 0×0 px", image(png_header(0, 0)), UnsupportedImageError),
    ("PNG of 0×5 px", image(png_header(0, 5)), UnsupportedImageError),
    ("PNG header 100000×100000 px (decompression bomb)", image(png_header(100_000, 100_000)),
     ImageTooLargeError),
    ("TIFF header 100000×100000 px", image(tiff_header(100_000, 100_000)), ImageTooLargeError),
    ("TIFF magic only", image(b"II*\x00"), TruncatedImageError),
    ("TIFF whose pixel data is missing", image(tiff_header(8, 8)), TruncatedImageError),
    ("TIFF truncated in its pixel data", image(tiff(np.zeros((64, 64), np.uint8))[:-2000]),
     TruncatedImageError),
    ("multi-page TIFF (3 pages)", image(tiff(STACK, photometric="minisblack")),
     MultiPageTiffError),
    ("ImageJ hyperstack TIFF (3 frames)", image(tiff(STACK, imagej=True)), MultiPageTiffError),
    ("3-D TIFF: 5 planes in one page", image(tiff(np.zeros((5, 8, 8), np.uint8),
                                                  photometric="minisblack",
                                                  planarconfig="separate")),
     UnsupportedImageError),
    ("float TIFF with NaN", image(tiff(np.where(np.eye(8) > 0, np.nan, 0.5)
                                       .astype(np.float32))), NonFiniteImageError),
    ("float TIFF with +inf", image(tiff(np.full((8, 8), np.inf, np.float32))),
     NonFiniteImageError),
    ("complex-valued TIFF", image(tiff(np.zeros((8, 8), np.complex64))), UnsupportedImageError),
    ("JPEG magic then garbage", image(b"\xff\xd8\xff" + b"\x00" * 40), TruncatedImageError),
    ("BMP header cut off", image(b"BM" + b"\0" * 10), TruncatedImageError),
]

UPLOADS = [
    ("PNG without a pixel size, none entered",
     _in_store(lambda s, f: ingest_image(s, encode_png(GREY), None, predict=False)),
     MissingPixelSizeError),
    ("pixel size 'abc'", _in_store(lambda s, f: ingest_image(s, encode_png(GREY), "abc",
                                                             predict=False)), IngestError),
    ("pixel size -4", _in_store(lambda s, f: ingest_image(s, encode_png(GREY), -4.0,
                                                          predict=False)), IngestError),
    ("pixel size NaN", _in_store(lambda s, f: ingest_image(s, encode_png(GREY), float("nan"),
                                                           predict=False)), IngestError),
    ("multi-page TIFF upload", _in_store(lambda s, f: ingest_image(
        s, tiff(STACK, photometric="minisblack"), 4.0, name="stack.tif", predict=False)),
     IngestError),
]

LAYOUTS = [
    ("GLP: no such file", lambda f: read_glp(f / "missing.glp"), LayoutFileError),
    ("GLP: binary content", file_of("a.glp", b"\xff\xfe\x00\x81", read_glp), GlpSyntaxError),
    ("GLP: unknown keyword", file_of("a.glp", "CIRCLE N M1 0 0 5\n", read_glp),
     GlpSyntaxError),
    ("GLP: RECT with 3 numbers", file_of("a.glp", "RECT N M1 0 0 5\n", read_glp),
     GlpSyntaxError),
    ("GLP: RECT of negative width", file_of("a.glp", "RECT N M1 0 0 -5 5\n", read_glp),
     GlpSyntaxError),
    ("GLP: PGON with an odd count of numbers", file_of("a.glp", "PGON N M1 0 0 5 0 5\n",
                                                       read_glp), GlpSyntaxError),
    ("GLP: PGON with 2 vertices", file_of("a.glp", "PGON N M1 0 0 5 0\n", read_glp),
     GlpSyntaxError),
    ("GLP: a coordinate that is not a number", file_of("a.glp", "RECT N M1 0 x 5 5\n",
                                                       read_glp), GlpSyntaxError),
    ("GLP: an infinite coordinate", file_of("a.glp", "RECT N M1 0 inf 5 5\n", read_glp),
     GlpSyntaxError),
    ("GLP: EQUIV without MICRON", file_of("a.glp", "EQUIV 1 1000 INCH\n", read_glp),
     GlpSyntaxError),
    ("GLP: RECT line too short", file_of("a.glp", "RECT N\n", read_glp), GlpSyntaxError),
    ("GDS: random bytes", file_of("a.gds", b"\x00\x06\x00\x02garbage" * 8, read_gds),
     LayoutFileError),
    ("GDS: empty file", file_of("a.gds", b"", read_gds), LayoutFileError),
    ("GDS: no polygons on the asked layer", gds_file("a.gds", {"TOP": [(1, 0)]}, read_gds),
     LayerNotFoundError),
    ("GDS: two top cells, none named", gds_file("a.gds", {"A": [(34, 0)], "B": [(34, 0)]},
                                                read_gds), CellNotFoundError),
    ("GDS: the named cell is absent", gds_file(
        "a.gds", {"TOP": [(34, 0)]}, lambda p: read_gds(p, cell="NOPE")), CellNotFoundError),
    ("OASIS: random bytes", file_of("a.oas", b"%SEMI-OASIS\r\n garbage", read_layout),
     LayoutFileError),
    ("layout of an unsupported type (.dxf)", file_of("a.dxf", "0\nSECTION\n", read_layout),
     LayoutFileError),
    ("a diagonal (non-Manhattan) polygon", lambda f: rasterize(
        [np.array([[0.0, 0.0], [40.0, 40.0], [0.0, 40.0]])], (0.0, 0.0, 64.0, 64.0), 4.0),
     NonManhattanError),
]

PROFILE_CASES = [
    ("tool profile: no such file", lambda f: load_profile(f / "none.json"), ProfileError),
    ("tool profile: not JSON", file_of("p.json", "{ciao", load_profile), ProfileError),
    ("tool profile: a JSON list", file_of("p.json", "[1, 2]", load_profile), ProfileError),
    ("tool profile: an unknown key", file_of("p.json", _profile_json(sparkle=(1, 2)),
                                             load_profile), ProfileError),
    ("tool profile: a key missing", file_of("p.json", json.dumps(
        {k: v for k, v in PROFILES["clean"].to_dict().items() if k != "gain"}), load_profile),
     ProfileError),
    ("tool profile: a range given low > high", file_of("p.json", _profile_json(gain=[2.0, 1.0]),
                                                       load_profile), ProfileError),
    ("tool profile: a range given as text", file_of("p.json", _profile_json(gain="big"),
                                                    load_profile), ProfileError),
    ("tool profile: an unknown profile name", lambda f: get_profile("shiny"), ProfileError),
]

PAIR_FOLDERS = [
    ("pair folder without manifest.json", read_pair_folder, DatasetError),
    ("manifest.json that is not JSON", manifest("{oops"), DatasetError),
    ("manifest.json that is a list", manifest("[]"), DatasetError),
    ("synth manifest without 'size'", manifest({k: v for k, v in SYNTH.items() if k != "size"}),
     DatasetError),
    ("synth manifest of version 2", manifest({**SYNTH, "version": 2}), DatasetError),
    ("synth manifest listing no items", manifest({**SYNTH, "items": []}), DatasetError),
    ("synth item without 'layout'", manifest({**SYNTH, "items": [{"name": "a", "sem": "s"}]}),
     DatasetError),
    ("synth manifest with nm_per_px 0", manifest({**SYNTH, "nm_per_px": 0}), DatasetError),
    ("manifest of an unknown format", manifest({"format": "other/3", "pairs": []}),
     DatasetError),
    ("export manifest without 'pairs'", manifest({"format": PAIRS_FORMAT}), DatasetError),
    ("export listing no pairs", manifest({**PAIRS, "pairs": []}), DatasetError),
    ("export pair without 'sem_file'", manifest({**PAIRS, "pairs": [{"layout_file": "l",
                                                                     "nm_per_px": 4}]}),
     DatasetError),
    ("export pair with nm_per_px -1", manifest({**PAIRS, "pairs": [
        {**PAIRS["pairs"][0], "nm_per_px": -1}]}), DatasetError),
    ("export pair with height 0", manifest({**PAIRS, "pairs": [
        {**PAIRS["pairs"][0], "height": 0}]}), DatasetError),
    ("export of two pixel sizes, read for training", manifest(
        {**PAIRS, "pairs": [PAIRS["pairs"][0], {**PAIRS["pairs"][0], "nm_per_px": 2.0}]},
        then=_dataset), DatasetError),
    ("a listed image file is missing", manifest(SYNTH, {"sem/a.png": GREY}, then=_dataset),
     DatasetError),
    ("an image of another size than the manifest's", manifest(
        SYNTH, {"sem/a.png": np.zeros((8, 9), np.uint8), "layout/a.png": GREY},
        then=_dataset), DatasetError),
    ("import-pairs --pairs of a folder without manifest", _in_store(
        lambda s, f: import_pair_folder(s, f / "nothing")), PairFolderImportError),
    ("import-pairs: the SEM folder does not exist", _in_store(
        lambda s, f: import_pairs(s, f / "no-sem", f, 4.0)), PairImportError),
    ("import-pairs: pixel size 0", _in_store(lambda s, f: import_pairs(s, f, f, 0.0)),
     PairImportError),
]

SETTINGS = [
    ("trigger threshold 0", _in_store(lambda s, f: set_trigger_settings(s, threshold=0)),
     TriggerError),
    ("trigger threshold 'ten'", _in_store(lambda s, f: set_trigger_settings(s, threshold="ten")),
     TriggerError),
    ("cooldown hours NaN", _in_store(lambda s, f: set_trigger_settings(
        s, cooldown_hours=float("nan"))), TriggerError),
    ("auto trigger 'maybe'", _in_store(lambda s, f: set_trigger_settings(s, auto_trigger="maybe")),
     TriggerError),
    ("an unknown trigger setting", _in_store(lambda s, f: set_trigger_settings(s, speed=3)),
     TriggerError),
    ("fine-tune epochs=abc", lambda f: with_overrides(FinetuneConfig(), ["epochs=abc"]),
     FinetuneError),
    ("fine-tune epochs=0", lambda f: with_overrides(FinetuneConfig(), ["epochs=0"]),
     FinetuneError),
    ("fine-tune override without '='", lambda f: with_overrides(FinetuneConfig(), ["epochs"]),
     FinetuneError),
    ("an unknown fine-tune setting", lambda f: with_overrides(FinetuneConfig(), ["nope=1"]),
     FinetuneError),
    ("an unknown gate setting", lambda f: with_overrides(FinetuneConfig(), ["gate.nope=1"]),
     FinetuneError),
    ("fine-tune new_fraction=1.5", lambda f: with_overrides(FinetuneConfig(),
                                                            ["new_fraction=1.5"]),
     FinetuneError),
    ("export GDS layer 'x/0'", lambda f: parse_layer("x/0"), ExportError),
    ("export GDS layer 70000/0", lambda f: parse_layer("70000/0"), ExportError),
]

CASES = [Case(area, what, run, error) for area, group in (
    ("image", IMAGES), ("upload", UPLOADS), ("layout", LAYOUTS), ("tool profile", PROFILE_CASES),
    ("pair folder", PAIR_FOLDERS), ("setting", SETTINGS)) for what, run, error in group]


def outcome(case: Case, folder: Path) -> Exception | None:
    """The exception the case raises in ``folder`` (None when it raises nothing)."""
    try:
        case.run(folder)
    except Exception as exc:  # every kind is recorded; the test compares it with case.error
        return exc
    return None


# -- tests ---------------------------------------------------------------------------------------


def test_the_table_has_at_least_fifty_cases() -> None:
    assert len(CASES) >= 50
    assert len({(c.area, c.what) for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[f"{c.area}: {c.what}" for c in CASES])
def test_a_malformed_input_gets_its_named_error(case: Case, tmp_path: Path) -> None:
    with pytest.raises(case.error) as raised:
        case.run(tmp_path)
    assert type(raised.value) is case.error
    assert str(raised.value)  # a message the user can act on, never empty


def _errors_column(table: str) -> list[str]:
    """``# | area | input | error`` of each row (messages may vary with library versions)."""
    return [line.rsplit(" | ", 1)[0] for line in table.splitlines() if re.match(r"\| \d", line)]


def test_the_docs_table_is_current() -> None:
    assert _errors_column(DOCS.read_text()) == _errors_column(render_table()), \
        "run `python -m tests.test_malformed_inputs` to rewrite docs/malformed_inputs.md"


def test_a_multi_page_tiff_upload_is_named_in_the_review_tab_message(tmp_path: Path) -> None:
    from annotate.review import upload_report

    (tmp_path / "stack.tif").write_bytes(tiff(STACK, photometric="minisblack"))
    with Store.open(tmp_path / "ws") as store:
        batch = ingest_files(store, [tmp_path / "stack.tif"], 4.0, spawn=False)
    assert upload_report(batch)[0].startswith("✗ **stack.tif**: ")
    assert "multi-page TIFF (3 images)" in upload_report(batch)[0]


def test_a_multi_page_tiff_is_named_by_the_ingest_command(tmp_path: Path, capsys) -> None:
    from loop.__main__ import main as loop_main

    (tmp_path / "stack.tif").write_bytes(tiff(STACK, photometric="minisblack"))
    assert loop_main(["ingest", "--workspace", str(tmp_path / "ws"), str(tmp_path / "stack.tif"),
                      "--nm-per-px", "4", "--no-spawn"]) == 1
    assert "skipped stack.tif: " in capsys.readouterr().out


# -- the docs table ------------------------------------------------------------------------------


def _message(exc: Exception | None, folder: Path) -> str:
    if exc is None:
        return "(no error)"
    text = str(exc).replace(str(folder), "DIR").replace("\n", " ")
    text = re.sub(r"/tmp/\S+", "DIR", text)
    text = text if len(text) <= 140 else text[:137] + "…"
    return text.replace("|", "\\|")


def render_table() -> str:
    """docs/malformed_inputs.md as the cases produce it now."""
    lines = ["# Malformed inputs and the errors they get", "",
             "Generated by `python -m tests.test_malformed_inputs` from the cases in "
             "`tests/test_malformed_inputs.py`, which assert each error; "
             f"{len(CASES)} cases. `DIR` stands for the folder the input was in.", "",
             "| # | area | input | error | message |", "|---|---|---|---|---|"]
    for number, case in enumerate(CASES, start=1):
        with tempfile.TemporaryDirectory() as tmp:
            exc = outcome(case, Path(tmp))
            name = type(exc).__name__ if exc is not None else "—"
            lines.append(f"| {number} | {case.area} | {case.what} | `{name}` | "
                         f"{_message(exc, Path(tmp))} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    DOCS.write_text(render_table())
    print(f"wrote {DOCS} ({len(CASES)} cases)", file=sys.stderr)
