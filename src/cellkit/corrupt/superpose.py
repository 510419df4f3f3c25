"""Superposition: blend an overlay into each image; JPEG round trips; random superpositions.

``superpose`` computes ``(1 - alpha) * image + alpha * overlay``, rounded to ``uint8``.
:func:`random_superpositions` draws overlays from the bank of
:mod:`cellkit.corrupt.overlays` and alphas from a range: it is shared by
:func:`cellkit.corrupt.corrupt_dataset` (to corrupt a dataset) and by the superposition
detector (to synthesise training examples from the user's own images).

Example:
    >>> import numpy as np
    >>> from cellkit.corrupt.superpose import superpose
    >>> cells = np.full((2, 4, 4, 3), 200, np.uint8)
    >>> over = np.zeros((2, 4, 4, 3), np.uint8)
    >>> superpose(cells, over, np.array([0.25, 0.5]))[:, 0, 0, 0]
    array([150, 100], dtype=uint8)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from cellkit._random import as_generator
from cellkit.corrupt.overlays import OVERLAY_FAMILIES, OVERLAY_KINDS, cell_overlays, dihedral, overlay_bank
from cellkit.data.dataset import image_batch

__all__ = ["BLEND_MODES", "Superpositions", "blend_layer", "jpeg_roundtrip", "random_superpositions", "superpose"]


def _multiply(b: np.ndarray, o: np.ndarray) -> np.ndarray:
    return b * o / 255.0


def _screen(b: np.ndarray, o: np.ndarray) -> np.ndarray:
    return 255.0 - (255.0 - b) * (255.0 - o) / 255.0


#: Layer modes of image editors, as the top layer that :func:`superpose` then mixes in at alpha
#: (``superpose(images, blend_layer(images, overlays, mode), alpha)``): what a person making a
#: meme may pick instead of plain transparency. Float formulas on 0-255 values.
BLEND_MODES = {
    "multiply": _multiply,  # darkens: the overlay as ink on the cell
    "screen": _screen,  # lightens: the overlay as light projected on it
    "darken": np.minimum,
    "lighten": np.maximum,
}


def blend_layer(images: np.ndarray, overlays: np.ndarray, mode: str) -> np.ndarray:
    """The layer an editor's ``mode`` (:data:`BLEND_MODES`) makes of ``overlays`` over ``images`` (``uint8``).

    Example:
        >>> import numpy as np
        >>> cells = np.full((1, 2, 2, 3), 200, np.uint8)
        >>> ink = np.full((1, 2, 2, 3), 51, np.uint8)
        >>> int(blend_layer(cells, ink, "multiply")[0, 0, 0, 0]), int(blend_layer(cells, ink, "screen")[0, 0, 0, 0])
        (40, 211)
    """
    if mode not in BLEND_MODES:
        raise ValueError(f"`mode` must be one of {tuple(BLEND_MODES)}. Received: mode={mode!r}")
    images = _check_images(images)
    overlays = _check_images(overlays, "overlays")
    top = BLEND_MODES[mode](images.astype(np.float32), overlays.astype(np.float32))
    return np.clip(np.rint(top), 0, 255).astype(np.uint8)


def _check_images(images: np.ndarray, name: str = "images") -> np.ndarray:
    return image_batch(images, name)


def superpose(images: np.ndarray, overlays: np.ndarray, alpha: float | np.ndarray) -> np.ndarray:
    """Blend ``overlays`` into ``images``: ``(1 - alpha) * images + alpha * overlays``.

    Args:
        images: ``uint8`` ``(n, h, w, 3)`` (not modified).
        overlays: ``uint8`` with the same shape.
        alpha: weight of the overlay in ``[0, 1]``: a scalar or one per image ``(n,)``.

    Returns:
        A new ``uint8`` array, rounded to nearest and clipped.
    """
    images = _check_images(images)
    overlays = _check_images(overlays, "overlays")
    if overlays.shape != images.shape:
        raise ValueError(
            f"`overlays` must have the shape of `images` {images.shape}. Received: overlays.shape={overlays.shape}"
        )
    a = np.asarray(alpha, dtype=np.float32)
    if a.ndim == 0:
        a = np.full(images.shape[0], a, np.float32)
    if a.shape != (images.shape[0],):
        raise ValueError(
            f"`alpha` must be a scalar or shape ({images.shape[0]},). Received: alpha.shape={a.shape}"
        )
    if not np.all(np.isfinite(a)) or np.any((a < 0) | (a > 1)):
        raise ValueError(f"`alpha` must be in [0, 1]. Received: alpha range [{a.min()}, {a.max()}]")
    out = np.empty_like(images)
    for s in range(0, images.shape[0], 1024):  # bounded float32 temporaries
        base = images[s : s + 1024].astype(np.float32)
        mix = overlays[s : s + 1024].astype(np.float32)
        mix -= base
        mix *= a[s : s + 1024, None, None, None]
        mix += base
        np.rint(mix, out=mix)
        np.clip(mix, 0, 255, out=mix)
        out[s : s + 1024] = mix
    return out


def jpeg_roundtrip(images: np.ndarray, quality: int | None = 90, subsample_chroma: bool = True) -> np.ndarray:
    """Encode each RGB image as JPEG at ``quality`` (OpenCV, 4:2:0) and decode it again.

    ``subsample_chroma=False`` keeps the colour at full resolution (4:4:4).

    ``quality=None`` returns an unchanged copy. The loop over images runs in OpenCV;
    the colour-order swaps are done once on the whole batch.

    Example:
        >>> import numpy as np
        >>> x = np.full((2, 16, 16, 3), 128, np.uint8)
        >>> jpeg_roundtrip(x, 90).shape
        (2, 16, 16, 3)
    """
    images = _check_images(images)
    if quality is None:
        return images.copy()
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not 1 <= quality <= 100:
        raise ValueError(f"`quality` must be an integer in [1, 100] or None. Received: quality={quality!r}")
    n, h, w, _ = images.shape
    if n == 0:
        return images.copy()
    bgr = cv2.cvtColor(images.reshape(n * h, w, 3), cv2.COLOR_RGB2BGR).reshape(images.shape)
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    if not subsample_chroma:
        params += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
    out = np.empty_like(bgr)
    for i in range(n):
        ok, buf = cv2.imencode(".jpg", bgr[i], params)
        if not ok:  # pragma: no cover - OpenCV failure
            raise RuntimeError("OpenCV could not encode an image as JPEG")
        out[i] = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return cv2.cvtColor(out.reshape(n * h, w, 3), cv2.COLOR_BGR2RGB).reshape(images.shape)


@dataclass(frozen=True)
class Superpositions:
    """Output of :func:`random_superpositions`.

    Attributes:
        images: the superposed images ``(n, h, w, 3)`` ``uint8``.
        base: index in the input of the image each one was made from ``(n,)``.
        alpha: overlay weights ``(n,)``.
        kind: overlay kind of each ``(n,)`` (str array).
        overlays: the overlays used ``(n, h, w, 3)``.
    """

    images: np.ndarray
    base: np.ndarray
    alpha: np.ndarray
    kind: np.ndarray
    overlays: np.ndarray


def check_alpha_range(alpha: float | Sequence[float]) -> tuple[float, float]:
    """Validate ``alpha`` (a scalar or a ``(low, high)`` range within [0, 1])."""
    try:
        lo, hi = (float(alpha), float(alpha)) if np.ndim(alpha) == 0 else (float(a) for a in alpha)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"`alpha` must be a number or (low, high). Received: alpha={alpha!r}") from None
    if not 0 <= lo <= hi <= 1:
        raise ValueError(f"`alpha` must satisfy 0 <= low <= high <= 1. Received: alpha={alpha!r}")
    return lo, hi


def random_storage(
    images: np.ndarray, qualities: Sequence[int | None], rng: np.random.Generator
) -> np.ndarray:
    """Store each image as one of ``qualities``, drawn uniformly per image (``None``: lossless).

    So a detector trained on the result cannot learn compression as a cue: a user's data
    may be PNG, JPEG of any quality, or a mix.

    Example:
        >>> import numpy as np
        >>> x = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
        >>> random_storage(x, (None, 90), np.random.default_rng(0)).shape
        (4, 16, 16, 3)
    """
    images = _check_images(images)
    qualities = tuple(qualities)
    if not qualities:
        raise ValueError("`qualities` must name at least one storage (None or a JPEG quality).")
    pick = rng.integers(0, len(qualities), size=images.shape[0])
    out = images.copy()
    for i, q in enumerate(qualities):
        sel = np.flatnonzero(pick == i)
        if sel.size and q is not None:
            out[sel] = jpeg_roundtrip(images[sel], q)
    return out


def check_kinds(kinds: Sequence[str]) -> tuple[str, ...]:
    """Validate a non-empty sequence of overlay kinds."""
    kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    bad = [k for k in kinds if k not in OVERLAY_FAMILIES]
    if not kinds or bad:
        raise ValueError(f"overlay kinds must be a non-empty subset of {OVERLAY_FAMILIES}. Received: {kinds!r}")
    return kinds


def random_superpositions(
    images: np.ndarray,
    n: int,
    rng: int | np.random.Generator | None = None,
    *,
    alpha: float | Sequence[float] = (0.15, 0.7),
    kinds: Sequence[str] = OVERLAY_KINDS,
    base: np.ndarray | None = None,
    max_drawn: int | None = None,
) -> Superpositions:
    """Superpose ``n`` random overlays on images drawn from ``images``.

    Each output: a base image (``base[i]``, or drawn uniformly), an overlay kind drawn
    uniformly from ``kinds`` (``"cells"`` overlays come from the other images of
    ``images``), an ``alpha`` uniform in the range. No JPEG round trip is applied.
    ``max_drawn``: at most this many overlays are made per kind (``"cells"`` aside); the
    others reuse them, each in a random flip / quarter turn (square images). Drawing is
    the slow part for the text and graphics families.

    Example:
        >>> import numpy as np
        >>> x = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
        >>> s = random_superpositions(x, 4, rng=0, alpha=(0.2, 0.4))
        >>> s.images.shape, bool(((s.alpha >= 0.2) & (s.alpha <= 0.4)).all())
        ((4, 32, 32, 3), True)
    """
    images = _check_images(images)
    gen = as_generator(rng)
    lo, hi = check_alpha_range(alpha)
    kinds = check_kinds(kinds)
    m, h, w, _ = images.shape
    if m == 0 and n > 0:
        raise ValueError("`images` must hold at least one image. Received: images.shape[0]=0")
    if base is None:
        base = gen.integers(0, max(m, 1), size=n)
    base = np.asarray(base, dtype=np.int64)
    if base.shape != (n,):
        raise ValueError(f"`base` must have shape ({n},). Received: base.shape={base.shape}")
    kind = np.asarray(kinds)[gen.integers(0, len(kinds), size=n)] if n else np.zeros(0, "<U10")
    a = gen.uniform(lo, hi, size=n)
    overlays = np.empty((n, h, w, 3), np.uint8)
    for k in kinds:
        sel = np.flatnonzero(kind == k)
        if sel.size == 0:
            continue
        if k == "cells":
            overlays[sel] = cell_overlays(images, sel.size, gen, exclude=base[sel] if m > 1 else None)[0]
        elif max_drawn is None or sel.size <= max_drawn:
            overlays[sel] = overlay_bank(k, sel.size, (h, w), gen)
        else:
            drawn = overlay_bank(k, max_drawn, (h, w), gen)
            picked = drawn[gen.integers(0, max_drawn, size=sel.size)]
            overlays[sel] = dihedral(picked, gen.integers(0, 8, size=sel.size)) if h == w else picked
    out = superpose(images[base], overlays, a)
    return Superpositions(images=out, base=base, alpha=a, kind=kind.astype(str), overlays=overlays)
