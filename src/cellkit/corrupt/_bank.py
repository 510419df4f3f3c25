"""What every overlay bank shares: argument checks, redrawing flat overlays, random orientation.

:func:`draw_bank` draws ``n`` overlays with a family's ``one(size, rng)`` and redraws those
too uniform to be a visible superposition (:data:`MIN_OVERLAY_STD`); :func:`dihedral` gives
an overlay one of the square's eight symmetries. Public as :mod:`cellkit.corrupt.overlays`'s
names; the families are in :mod:`cellkit.corrupt.overlays` and
:mod:`cellkit.corrupt.overlay_families`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np

from cellkit._random import as_generator

__all__ = ["MIN_OVERLAY_STD", "check_count", "check_size", "dihedral", "draw_bank", "flat"]

#: Overlays flatter than this (standard deviation of the grey levels) are redrawn: a
#: near-uniform overlay only shifts the brightness, it is not a visible superposition.
MIN_OVERLAY_STD: float = 12.0

def check_size(size: Sequence[int]) -> tuple[int, int]:
    try:
        h, w = (int(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"`size` must be (height, width). Received: size={size!r}") from None
    if h < 8 or w < 8:
        raise ValueError(f"`size` must be at least (8, 8). Received: size={size!r}")
    return h, w


def check_count(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"`n` must be an integer >= 0. Received: n={n!r}")
    return int(n)


def dihedral(images: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Apply one of the 8 flips/rotations to each image: ``k[i]`` in 0..7.

    ``k % 4`` quarter turns counter-clockwise, then a left-right flip when ``k >= 4``.
    Images must be square when any ``k`` is odd. Vectorised per group of equal ``k``.

    Example:
        >>> import numpy as np
        >>> x = np.arange(4).reshape(1, 2, 2, 1)
        >>> dihedral(x, np.array([4]))[0, :, :, 0]
        array([[1, 0],
               [3, 2]])
    """
    k = np.asarray(k, dtype=np.int64)
    if k.shape != (images.shape[0],) or np.any((k < 0) | (k > 7)):
        raise ValueError(
            f"`k` must have shape ({images.shape[0]},) with values in 0..7. Received: k.shape={k.shape}"
        )
    out = np.empty_like(images)
    for t in np.unique(k):
        sel = k == t
        g = np.rot90(images[sel], int(t % 4), axes=(1, 2))
        if t >= 4:
            g = g[:, :, ::-1]
        out[sel] = g
    return out


def flat(overlays: np.ndarray) -> np.ndarray:
    """Boolean mask of overlays whose grey levels are nearly uniform."""
    n, h, w, _ = overlays.shape
    if n == 0:
        return np.zeros(0, dtype=bool)
    grey = cv2.cvtColor(np.ascontiguousarray(overlays).reshape(n * h, w, 3), cv2.COLOR_RGB2GRAY)
    return grey.reshape(n, -1).astype(np.float32).std(axis=1) < MIN_OVERLAY_STD


def draw_bank(
    one: Callable[[tuple[int, int], np.random.Generator], np.ndarray],
    n: int,
    size: Sequence[int],
    rng: int | np.random.Generator | None,
    *,
    orient: bool = True,
) -> np.ndarray:
    """``n`` overlays drawn by ``one(size, rng)``; near-uniform ones are redrawn (up to 8 times).

    ``orient``: then each gets a random flip / quarter turn (square sizes).
    """
    n, size, gen = check_count(n), check_size(size), as_generator(rng)
    out = np.empty((n, *size, 3), np.uint8)
    todo = np.arange(n)
    for _ in range(8):
        if todo.size == 0:
            break
        for j in todo:
            out[j] = one(size, gen)
        todo = todo[flat(out[todo])]
    if orient and size[0] == size[1] and n:
        out = dihedral(out, gen.integers(0, 8, size=n))
    return out
