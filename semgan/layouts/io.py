"""Import real layouts: ``.glp`` clip text, GDSII and OASIS (through gdstk), and tiles of them.

Every reader returns Manhattan-or-not polygons as (N, 2) float64 arrays in nm; ``rasterize``
is where non-Manhattan geometry is refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from semgan.layouts.errors import (
    CellNotFoundError,
    EmptyWindowError,
    GlpSyntaxError,
    LayerNotFoundError,
    LayoutFileError,
)
from semgan.layouts.raster import tile_layout
from semgan.layouts.shapes import LayoutClip, Polygon

GLP_SUFFIXES = (".glp",)
GDS_SUFFIXES = (".gds", ".gds2", ".gdsii")
OASIS_SUFFIXES = (".oas", ".oasis")
LAYOUT_SUFFIXES = GLP_SUFFIXES + GDS_SUFFIXES + OASIS_SUFFIXES

# Header/structure keywords of the GLP format that carry no geometry.
_GLP_IGNORED = {"BEGIN", "CNAME", "LEVEL", "CELL", "ENDMSG", "END"}
_BLOCK_COMMENT = re.compile(r"/\*.*?\*/")


def format_layer(layer: tuple[int, int]) -> str:
    """``(34, 0)`` → ``"34/0"``."""
    return f"{layer[0]}/{layer[1]}"


def _existing_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise LayoutFileError(f"layout file not found: {path}")
    return path


def _glp_numbers(tokens: list[str], path: Path, number: int, line: str) -> list[float]:
    try:
        values = [float(t) for t in tokens]
    except ValueError:
        raise GlpSyntaxError(f"{path}:{number}: expected numbers in {line.strip()!r}") from None
    if not np.all(np.isfinite(values)):
        raise GlpSyntaxError(f"{path}:{number}: non-finite coordinate in {line.strip()!r}")
    return values


def _glp_polygon(keyword: str, values: list[float], path: Path, number: int, line: str) -> Polygon:
    where = f"{path}:{number}: {line.strip()!r}"
    if keyword == "RECT":
        if len(values) != 4:
            raise GlpSyntaxError(f"{where}: RECT needs 'RECT <flag> <layer> x y w h' (4 numbers), got {len(values)}")
        x, y, w, h = values
        if w <= 0 or h <= 0:
            raise GlpSyntaxError(f"{where}: RECT width and height must be positive")
        return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], dtype=np.float64)
    if len(values) < 6 or len(values) % 2:
        raise GlpSyntaxError(f"{where}: PGON needs 'PGON <flag> <layer> x1 y1 x2 y2 …' with at least "
                             f"3 vertices (an even count of numbers), got {len(values)} numbers")
    points = np.array(values, dtype=np.float64).reshape(-1, 2)
    if len(points) > 3 and np.array_equal(points[0], points[-1]):
        points = points[:-1]  # a closed ring: drop the repeated first vertex
    return points


def read_glp(path: str | Path) -> list[Polygon]:
    """Polygons (nm) from a ``.glp`` clip: ``RECT <flag> <layer> x y w h`` and ``PGON <flag> <layer> x1 y1 …``."""
    path = _existing_file(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise GlpSyntaxError(f"{path}: not a text file (GLP clips are plain text)") from None
    scale = 1.0  # nm per file unit; EQUIV 1 1000 MICRON means 1000 units per µm = 1 nm
    polygons: list[Polygon] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = _BLOCK_COMMENT.sub(" ", line).strip()
        if not stripped or stripped.startswith(("#", "//", "/*")):
            continue
        tokens = stripped.split()
        keyword = tokens[0].upper()
        if keyword in _GLP_IGNORED:
            continue
        if keyword == "EQUIV":
            values = _glp_numbers(tokens[1:3], path, number, line)
            if len(values) != 2 or len(tokens) < 4 or tokens[3].upper() != "MICRON" or min(values) <= 0:
                raise GlpSyntaxError(f"{path}:{number}: expected 'EQUIV <units> <per> MICRON', got {line.strip()!r}")
            scale = 1000.0 * values[0] / values[1]
        elif keyword in ("RECT", "PGON"):
            if len(tokens) < 4:
                raise GlpSyntaxError(f"{path}:{number}: {keyword} line too short: {line.strip()!r}")
            values = _glp_numbers(tokens[3:], path, number, line)
            polygons.append(_glp_polygon(keyword, values, path, number, line))
        else:
            raise GlpSyntaxError(f"{path}:{number}: unknown GLP keyword {tokens[0]!r} in {line.strip()!r}")
    return [poly * scale for poly in polygons] if scale != 1.0 else polygons


def _load_library(path: Path):
    import gdstk  # imported here: only GDS/OASIS users pay for it

    suffix = path.suffix.lower()
    try:
        return gdstk.read_oas(str(path)) if suffix in OASIS_SUFFIXES else gdstk.read_gds(str(path))
    except (OSError, RuntimeError) as error:
        kind = "OASIS" if suffix in OASIS_SUFFIXES else "GDSII"
        raise LayoutFileError(f"{path}: cannot read as {kind} ({error})") from None


def read_gds_cell(
    path: str | Path, cell: str | None = None, layer: tuple[int, int] = (34, 0)
) -> tuple[list[Polygon], str]:
    """Like ``read_gds`` but also returns the name of the cell that was read."""
    path = _existing_file(path)
    library = _load_library(path)
    if cell is None:
        tops = library.top_level()
        if len(tops) != 1:
            names = ", ".join(sorted(c.name for c in tops)) or "none"
            raise CellNotFoundError(f"{path}: {len(tops)} top cells ({names}); name one with cell=/--cell")
        chosen = tops[0]
    else:
        by_name = {c.name: c for c in library.cells}
        if cell not in by_name:
            names = ", ".join(sorted(by_name)) or "none"
            raise CellNotFoundError(f"{path}: no cell {cell!r}; cells in this file: {names}")
        chosen = by_name[cell]
    # Flattened through all reference levels, repetitions applied, paths turned into polygons.
    shapes = chosen.get_polygons(apply_repetitions=True, include_paths=True, depth=None,
                                 layer=int(layer[0]), datatype=int(layer[1]))
    if not shapes:
        present = sorted({(s.layer, s.datatype) for s in chosen.get_polygons()})
        listed = ", ".join(format_layer(x) for x in present) or "none"
        raise LayerNotFoundError(
            f"{path}: cell {chosen.name!r} has no polygons on layer {format_layer(layer)}; "
            f"layers present: {listed}"
        )
    # User units → database grid (exact integers) → nm.
    to_grid = library.unit / library.precision
    grid_nm = library.precision * 1e9
    polygons = [np.round(s.points * to_grid) * grid_nm for s in shapes]
    return polygons, chosen.name


def read_gds(path: str | Path, cell: str | None = None, layer: tuple[int, int] = (34, 0)) -> list[Polygon]:
    """Polygons (nm) on ``layer`` of ``cell`` (default: the single top cell) of a GDSII/OASIS file, flattened."""
    return read_gds_cell(path, cell, layer)[0]


def layout_kind(path: str | Path) -> str:
    """``"glp"``, ``"gds"`` or ``"oas"`` from the file suffix."""
    suffix = Path(path).suffix.lower()
    if suffix in GLP_SUFFIXES:
        return "glp"
    if suffix in GDS_SUFFIXES:
        return "gds"
    if suffix in OASIS_SUFFIXES:
        return "oas"
    raise LayoutFileError(f"{path}: unsupported layout file type {suffix!r}; use one of {', '.join(LAYOUT_SUFFIXES)}")


def read_layout(path: str | Path, cell: str | None = None, layer: tuple[int, int] = (34, 0)) -> list[Polygon]:
    """Polygons (nm) from any supported layout file, by suffix (GLP ignores cell and layer)."""
    if layout_kind(path) == "glp":
        return read_glp(path)
    return read_gds(path, cell, layer)


def _tiles_of_file(path: Path, nm_per_px: float, size_px: int, layer: tuple[int, int],
                   cell: str | None) -> list[LayoutClip]:
    kind = layout_kind(path)
    if kind == "glp":
        polygons, source = read_glp(path), {"kind": kind, "file": path.name, "cell": None, "layer": None}
    else:
        polygons, cell_name = read_gds_cell(path, cell, layer)
        source = {"kind": kind, "file": path.name, "cell": cell_name, "layer": format_layer(layer)}
    return tile_layout(polygons, nm_per_px, size_px, source=source)


def load_layout_tiles(
    path: str | Path, nm_per_px: float, size_px: int, layer: tuple[int, int] = (34, 0), cell: str | None = None,
    *, select: Callable[[Path], bool] | None = None, max_tiles_per_file: int | None = None,
) -> list[LayoutClip]:
    """Tiles of a layout file, or of every .glp/.gds/.oas file under a directory (GLP ignores ``layer``).

    ``select`` keeps only the files it accepts (e.g. a train/hold-out split by file name);
    ``max_tiles_per_file`` keeps evenly spaced tiles so one big cell cannot dominate (or fill memory).
    """
    path = Path(path)
    if path.is_file():
        return _thin(_tiles_of_file(path, nm_per_px, size_px, layer, cell), max_tiles_per_file)
    if not path.is_dir():
        raise LayoutFileError(f"no such layout file or directory: {path}")
    files = sorted(f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in LAYOUT_SUFFIXES)
    if select is not None:
        files = [f for f in files if select(f)]
    if not files:
        raise LayoutFileError(f"{path}: no layout files ({', '.join(LAYOUT_SUFFIXES)}) in this directory")
    tiles: list[LayoutClip] = []
    skipped: list[str] = []
    for file in files:
        try:
            tiles.extend(_thin(_tiles_of_file(file, nm_per_px, size_px, layer, cell), max_tiles_per_file))
        except (EmptyWindowError, LayerNotFoundError, CellNotFoundError) as error:
            # In a folder, a cell without this layer (or a blank one) is not fatal; all of them is.
            skipped.append(str(error))
    if not tiles:
        shown = "; ".join(skipped[:3]) + (f"; … {len(skipped) - 3} more" if len(skipped) > 3 else "")
        raise EmptyWindowError(f"{path}: no usable tiles in {len(files)} layout file(s): {shown}")
    return tiles


def _thin(tiles: list[LayoutClip], limit: int | None) -> list[LayoutClip]:
    if limit is None or len(tiles) <= limit:
        return tiles
    keep = np.linspace(0, len(tiles) - 1, limit).round().astype(int)
    return [tiles[i] for i in keep]

