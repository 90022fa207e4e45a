"""Layout sources: procedural Manhattan clips, GDSII/OASIS/GLP import, exact rasterisation and tiles."""

from semgan.layouts.errors import (
    CellNotFoundError,
    EmptyWindowError,
    GlpSyntaxError,
    LayerNotFoundError,
    LayoutError,
    LayoutFileError,
    NonManhattanError,
    UnknownPatternError,
)
from semgan.layouts.families import FAMILIES, LayoutFamily, UnknownFamilyError, family_clip
from semgan.layouts.io import (
    LAYOUT_SUFFIXES,
    format_layer,
    load_layout_tiles,
    read_gds,
    read_gds_cell,
    read_glp,
    read_layout,
)
from semgan.layouts.procedural import PATTERN_WEIGHTS, PATTERNS, generate_clip, random_clip
from semgan.layouts.raster import rasterize, rasterize_rects, tile_layout
from semgan.layouts.shapes import DesignRules, LayoutClip, Polygon

__all__ = [
    "FAMILIES",
    "LAYOUT_SUFFIXES",
    "PATTERNS",
    "PATTERN_WEIGHTS",
    "CellNotFoundError",
    "DesignRules",
    "EmptyWindowError",
    "GlpSyntaxError",
    "LayerNotFoundError",
    "LayoutClip",
    "LayoutError",
    "LayoutFamily",
    "LayoutFileError",
    "NonManhattanError",
    "Polygon",
    "UnknownFamilyError",
    "UnknownPatternError",
    "family_clip",
    "format_layer",
    "generate_clip",
    "load_layout_tiles",
    "random_clip",
    "rasterize",
    "rasterize_rects",
    "read_gds",
    "read_gds_cell",
    "read_glp",
    "read_layout",
    "tile_layout",
]
