"""Colour-filter corruption: per-channel gains, as if a coloured glass sat in the light path.

Some images of the seed dataset look as if they were taken through a blue filter: the
pale pink background turns light blue-grey and the stains lose their red. A per-channel
multiplicative gain reproduces that (the camera response is close to linear in the
bright range where the background lives); :func:`random_filter_gains` draws plausible
gains and :func:`color_filter` applies them to a batch.

Example:
    >>> import numpy as np
    >>> from cellkit.corrupt.color import BLUE_FILTER_GAINS, color_filter, random_filter_gains
    >>> images = np.full((2, 4, 4, 3), 200, np.uint8)
    >>> color_filter(images, BLUE_FILTER_GAINS)[0, 0, 0]
    array([180, 192, 228], dtype=uint8)
    >>> random_filter_gains(3, rng=0).shape
    (3, 3)
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from cellkit._random import as_generator

__all__ = [
    "ANY_GAIN_RANGE",
    "ANY_MIN_CAST",
    "BLUE_FILTER_GAINS",
    "BLUE_GAIN_RANGES",
    "FILTER_KINDS",
    "color_filter",
    "random_filter_gains",
]

#: A typical blue filter, (R, G, B) gains, measured on pbc96: about 2.7% of its images
#: (388 of 14,528) have a blue-grey background, median RGB (231, 221, 231), instead of the
#: usual pale pink (254, 227, 203); their stained regions shift the same way. Applied
#: to an ordinary image these gains give (229, 218, 232) and reproduce that look.
BLUE_FILTER_GAINS: tuple[float, float, float] = (0.9, 0.96, 1.14)

#: Ranges of :func:`random_filter_gains` for ``kind="blue"``: the blue gain, then the red
#: and the green gains relative to the blue one, as (low, high). pbc96's blue-cast images
#: sit near (1.14, 0.79, 0.84), inside these ranges.
BLUE_GAIN_RANGES: tuple[tuple[float, float], ...] = ((1.0, 1.2), (0.68, 0.86), (0.78, 0.92))

#: Ranges of each channel gain for ``kind="any"`` and the minimum ratio between the
#: largest and the smallest gain (smaller casts are not visibly coloured).
ANY_GAIN_RANGE: tuple[float, float] = (0.6, 1.2)
ANY_MIN_CAST: float = 1.2

FILTER_KINDS: tuple[str, ...] = ("blue", "any")


def color_filter(images: np.ndarray, gains: np.ndarray | tuple[float, float, float]) -> np.ndarray:
    """Multiply each colour channel by a gain, round and clip to ``uint8``.

    Args:
        images: ``uint8`` RGB images, ``(n, h, w, 3)`` or a single ``(h, w, 3)`` image.
            Not modified.
        gains: non-negative finite gains, ``(3,)`` (the same filter for every image) or
            ``(n, 3)`` (one filter per image).

    Returns:
        A new ``uint8`` array with the shape of ``images``.

    Example:
        >>> import numpy as np
        >>> color_filter(np.full((1, 1, 1, 3), 100, np.uint8), [1.0, 0.5, 3.0]).ravel()
        array([100,  50, 255], dtype=uint8)
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim not in (3, 4) or images.shape[-1] != 3:
        raise ValueError(
            "`images` must be uint8 RGB of shape (n, h, w, 3) or (h, w, 3). "
            f"Received: images.dtype={images.dtype}, images.shape={images.shape}"
        )
    single = images.ndim == 3
    batch = images[None] if single else images
    g = np.asarray(gains, dtype=np.float64)
    n = batch.shape[0]
    if g.shape == (3,):
        g = np.broadcast_to(g, (n, 3))
    elif single and g.shape == (1, 3):
        pass
    elif g.shape != (n, 3):
        raise ValueError(
            f"`gains` must have shape (3,) or ({n}, 3) for {n} images. Received: gains.shape={g.shape}"
        )
    if not np.all(np.isfinite(g)) or np.any(g < 0):
        raise ValueError(f"`gains` must be finite and >= 0. Received: gains={np.asarray(gains).tolist()}")
    out = batch.astype(np.float32) * g.astype(np.float32)[:, None, None, :]
    np.rint(out, out=out)
    np.clip(out, 0, 255, out=out)
    out = out.astype(np.uint8)
    return out[0] if single else out


def random_filter_gains(
    n: int,
    rng: int | np.random.Generator | None = None,
    kind: Literal["blue", "any"] = "blue",
) -> np.ndarray:
    """Draw ``n`` random filters, as ``(n, 3)`` float64 RGB gains for :func:`color_filter`.

    Args:
        n: number of filters (>= 0).
        rng: a seed or a ``numpy.random.Generator``.
        kind: ``"blue"``: blue-ish filters like those of the seed report (gain ranges in
            :data:`BLUE_GAIN_RANGES`, red always attenuated more than green, green more
            than blue);
            ``"any"``: random colour casts, each gain in :data:`ANY_GAIN_RANGE` with the
            largest at least :data:`ANY_MIN_CAST` times the smallest.

    Example:
        >>> g = random_filter_gains(1000, rng=1)
        >>> bool(np.all(g[:, 0] < g[:, 1]) and np.all(g[:, 1] < g[:, 2]))
        True
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"`n` must be an integer >= 0. Received: n={n!r}")
    if kind not in FILTER_KINDS:
        raise ValueError(f"`kind` must be one of {FILTER_KINDS}. Received: kind={kind!r}")
    gen = as_generator(rng)
    n = int(n)
    if kind == "blue":
        low = np.array([r[0] for r in BLUE_GAIN_RANGES])
        high = np.array([r[1] for r in BLUE_GAIN_RANGES])
        blue, red, green = (low + (high - low) * gen.random((n, 3))).T
        red = np.minimum(red, green - 0.03)  # keep it blue: red below green (ranges overlap)
        return np.stack([red * blue, green * blue, blue], axis=1)
    lo, hi = ANY_GAIN_RANGE
    gains = np.empty((n, 3))
    todo = np.arange(n)
    while todo.size:  # rejection sampling, vectorised; accepts about 80% per round
        draw = lo + (hi - lo) * gen.random((todo.size, 3))
        ok = draw.max(axis=1) >= ANY_MIN_CAST * draw.min(axis=1)
        gains[todo[ok]] = draw[ok]
        todo = todo[~ok]
    return gains
