"""Exceptions raised by cellkit.

Every error about user input names the offending file or argument and says what was
expected, so a message read in a log is enough to fix the problem.

Example:
    >>> from cellkit.errors import DataError
    >>> str(DataError("expected uint8 RGB", path="cells/a.png"))
    'cells/a.png: expected uint8 RGB'
"""

from __future__ import annotations

import os

__all__ = ["CellkitError", "DataError"]


class CellkitError(Exception):
    """Base class of every exception cellkit raises on purpose."""


class DataError(CellkitError, ValueError):
    """Bad input data: unreadable file, wrong shape, dtype, layout or count.

    ``path`` (a file or folder) is kept as an attribute and prefixed to the message.
    """

    def __init__(self, message: str, *, path: str | os.PathLike[str] | None = None) -> None:
        self.path = None if path is None else os.fspath(path)
        self.reason = message
        super().__init__(f"{self.path}: {message}" if self.path else message)
