"""Export tab: corrected pairs as PNG masks + manifest, and as GDS polygons at their nm scale."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import gradio as gr

from annotate.studio import Studio
from semgan.errors import SemganError
from semgan.polygons import write_gds_cells
from store import Store, StoreError

SPLITS = {"all": None, "train": "train", "holdout": "holdout"}


class ExportError(ValueError):
    """An export setting is invalid (e.g. a malformed GDS layer)."""


def parse_layer(text: str) -> tuple[int, int]:
    """"34/0" → (34, 0): GDS layer and datatype, each 0–65535."""
    parts = str(text).strip().split("/")
    try:
        layer, datatype = (int(parts[0]), int(parts[1]) if len(parts) > 1 else 0)
    except ValueError:
        raise ExportError(f"GDS layer must look like 34/0 (layer/datatype), got {text!r}") \
            from None
    if len(parts) > 2 or not (0 <= layer <= 65535 and 0 <= datatype <= 65535):
        raise ExportError(f"GDS layer must look like 34/0 with numbers 0–65535, got {text!r}")
    return layer, datatype


def cell_name(sample_id: int) -> str:
    """The GDS cell of a sample's corrected layout."""
    return f"S{sample_id:06d}"


def export_gds(store: Store, out_dir: Path, split: str | None = None,
               layer: tuple[int, int] = (34, 0)) -> list[Path]:
    """One GDS file per pixel size, one cell per corrected sample (1 DB unit = 1 nm)."""
    by_pixel_size: dict[float, dict[str, object]] = defaultdict(dict)
    for pair in store.list_pairs(split=split):
        sample = store.get_sample(pair.sample_id)
        by_pixel_size[sample.nm_per_px][cell_name(sample.id)] = store.pair_mask(pair)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for nm_per_px, masks in sorted(by_pixel_size.items()):
        path = out_dir / f"corrected_{nm_per_px:g}nm-per-px.gds"
        write_gds_cells(masks, path, nm_per_px, layer=layer)
        written.append(path)
    return written


def for_download(paths: list[Path]) -> list[str]:
    """Copies in a fresh temp folder: Gradio serves downloads from the temp dir, not workspaces."""
    folder = Path(tempfile.mkdtemp(prefix="semgan-export-"))
    return [str(shutil.copy2(path, folder / path.name)) for path in paths]


def _stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def export_png_zip(store: Store, root: Path, split: str | None) -> tuple[Path, Path, int]:
    """export_pairs into ``root/pairs-STAMP`` and a zip of it in a temp folder for download."""
    folder = store.export_pairs(root / f"pairs-{_stamp()}", split=split)
    count = sum(1 for _ in (folder / "layout").glob("*.png"))
    archive = shutil.make_archive(str(Path(tempfile.mkdtemp(prefix="semgan-export-")) /
                                      folder.name), "zip", folder)
    return folder, Path(archive), count


def build(studio: Studio) -> None:
    """Lay out the Export tab and wire its events."""
    gr.Markdown("Exports use the latest version of every corrected (or accepted) pair. Files "
                "are written under the workspace's `exports/` folder and offered for download.")
    with gr.Row():
        split = gr.Radio(list(SPLITS), value="all", label="Which pairs", elem_id="export-split")
        layer = gr.Textbox(value="34/0", label="GDS layer/datatype", max_lines=1,
                           elem_id="export-layer")
    with gr.Row():
        png_btn = gr.Button("Export PNG pairs + manifest", variant="primary",
                            elem_id="export-png-btn")
        gds_btn = gr.Button("Export GDS polygons", variant="primary", elem_id="export-gds-btn")
    status = gr.Markdown(elem_id="export-status")
    files = gr.File(label="Download", file_count="multiple", interactive=False,
                    elem_id="export-files", height=140)

    def png(choice):
        try:
            folder, archive, count = export_png_zip(studio.store, studio.exports_dir,
                                                    SPLITS[choice])
        except StoreError as exc:
            gr.Warning(str(exc))
            return {status: f"Export failed: {exc}", files: None}
        return {status: f"Exported {count} pairs to `{folder}` (sem/, layout/, manifest.json, "
                "manifest.csv).", files: [str(archive)]}

    def gds(choice, layer_text):
        try:
            paths = export_gds(studio.store, studio.exports_dir / f"gds-{_stamp()}",
                               SPLITS[choice], parse_layer(layer_text))
        except (ExportError, SemganError, StoreError) as exc:
            gr.Warning(str(exc))
            return {status: f"Export failed: {exc}", files: None}
        if not paths:
            return {status: "No corrected pairs to export yet.", files: None}
        return {status: f"Wrote {len(paths)} GDS file(s), one cell per sample (named S + the "
                f"sample id, e.g. {cell_name(1)}), layer {layer_text}, 1 database unit = 1 nm: "
                + ", ".join(f"`{p}`" for p in paths), files: for_download(paths)}

    png_btn.click(png, split, [status, files])
    gds_btn.click(gds, [split, layer], [status, files])
