"""Progress bars for long work, silenced by ``quiet`` (the CLI's ``--quiet``).

Example:
    >>> from cellkit._progress import progress
    >>> sum(progress(range(3), desc="count", quiet=True))
    3
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

__all__ = ["progress"]

T = TypeVar("T")


def progress(
    iterable: Iterable[T],
    *,
    desc: str = "",
    total: int | None = None,
    unit: str = "it",
    quiet: bool = False,
) -> Iterator[T]:
    """Wrap ``iterable`` in a tqdm bar on stderr unless ``quiet`` or ``CELLKIT_QUIET=1``."""
    disable = quiet or os.environ.get("CELLKIT_QUIET") == "1"
    yield from tqdm(
        iterable, desc=desc, total=total, unit=unit, disable=disable, file=sys.stderr, leave=False, dynamic_ncols=True
    )
