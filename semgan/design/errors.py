"""Named errors of the design overlay: bad design input, impossible registration or export."""

from semgan.errors import SemganError


class DesignError(SemganError):
    """A design file, cell, layer, site centre or search window that cannot be used."""


class RegistrationError(DesignError):
    """The image and design cannot be registered (shapes, empty signals, settings)."""


class MarkerError(DesignError):
    """A marker database or contour export that cannot be written or read."""
