"""Named exceptions shared by the semgan library.

Every error a user can cause derives from ``SemganError`` so callers (CLI,
UI) can catch bad input in one place and show the message as it is.
"""


class SemganError(Exception):
    """Base class for errors caused by bad input or configuration."""
