"""Named errors for layout sources: every bad layout input says what is wrong and where."""

from semgan.errors import SemganError


class LayoutError(SemganError):
    """Base class for bad layout input (files, layers, cells, windows, patterns)."""


class LayoutFileError(LayoutError):
    """A layout file is missing, unreadable, corrupt or of an unsupported type."""


class LayerNotFoundError(LayoutError):
    """The requested layer/datatype has no polygons in the file or cell."""


class CellNotFoundError(LayoutError):
    """The requested cell does not exist, or no cell was named and the top cell is ambiguous."""


class GlpSyntaxError(LayoutError):
    """A malformed line in a ``.glp`` clip file."""


class NonManhattanError(LayoutError):
    """A polygon has an edge that is neither horizontal nor vertical."""


class EmptyWindowError(LayoutError):
    """No polygon intersects the window, or nothing is left to tile."""


class UnknownPatternError(LayoutError):
    """A procedural pattern name that is not in ``PATTERNS``."""
