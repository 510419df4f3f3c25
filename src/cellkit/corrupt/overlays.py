"""Overlay banks: the pictures that get superposed on cell images.

Three kinds, as seen in (or plausible for) a corrupted cell dataset:

* ``"natural"``: random crops, rescalings and flips of the pictures bundled with
  scikit-image (astronaut, chelsea, coffee, hubble_deep_field, text, brick, ...; no
  download needed; grayscale pictures are stacked to RGB).
* ``"drawn"``: cartoons drawn with OpenCV: shapes, lines and random strings of text in
  random colours on random backgrounds (solid, gradient or blotchy).
* ``"cells"``: other images of the dataset being corrupted, randomly flipped and rotated
  by multiples of 90 degrees. The hard case: same stain, same optics.

Every generator is seeded by ``rng`` (an int or a ``numpy.random.Generator``): the same
seed gives the same overlays. What every bank shares (:func:`dihedral`, ``draw_bank``, the
redrawing of near-uniform overlays) is in :mod:`cellkit.corrupt._bank`.

Example:
    >>> import numpy as np
    >>> from cellkit.corrupt.overlays import overlay_bank
    >>> bank = overlay_bank("drawn", 4, size=(96, 96), rng=0)
    >>> bank.shape, bank.dtype
    ((4, 96, 96, 3), dtype('uint8'))
    >>> bool(np.array_equal(bank, overlay_bank("drawn", 4, rng=0)))
    True
"""

from __future__ import annotations

import functools
import string
import warnings
from collections.abc import Sequence

import cv2
import numpy as np

from cellkit._random import as_generator
from cellkit.corrupt._bank import MIN_OVERLAY_STD, check_count, check_size, dihedral, draw_bank, flat  # noqa: F401
from cellkit.data.dataset import image_batch

__all__ = [
    "NATURAL_PICTURES",
    "OVERLAY_FAMILIES",
    "OVERLAY_KINDS",
    "cell_overlays",
    "dihedral",
    "drawn_overlays",
    "natural_overlays",
    "natural_pictures",
    "overlay_bank",
]

#: The overlay kinds of :func:`~cellkit.corrupt.corrupt_dataset` (the report's corruption).
OVERLAY_KINDS: tuple[str, ...] = ("natural", "drawn", "cells")

#: Every overlay family :func:`overlay_bank` knows: :data:`OVERLAY_KINDS` and those of
#: :mod:`cellkit.corrupt.overlay_families`.
OVERLAY_FAMILIES: tuple[str, ...] = (*OVERLAY_KINDS, "cartoon", "text", "graphics", "microscopy", "faces")

#: scikit-image pictures used by the ``"natural"`` kind (all ship inside the package).
NATURAL_PICTURES: tuple[str, ...] = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "camera",
    "coins",
    "moon",
    "text",
    "page",
    "clock",
    "brick",
    "grass",
    "gravel",
    "cell",
    "horse",
)

_MAX_PICTURE_SIDE = 640
_FONTS = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_PLAIN,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
    cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
)
_CHARS = string.ascii_letters + string.digits + "!?#&@*+-=%$"


@functools.cache
def natural_pictures() -> tuple[np.ndarray, ...]:
    """The :data:`NATURAL_PICTURES` as read-only RGB ``uint8`` arrays (cached).

    Pictures larger than 640 pixels on a side are shrunk to 640 (crops are rescaled to
    96 pixels anyway). Binary pictures become black-and-white ``uint8``.
    """
    import skimage.data

    out = []
    for name in NATURAL_PICTURES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pic = np.asarray(getattr(skimage.data, name)())
        if pic.dtype == bool:
            pic = pic.astype(np.uint8) * 255
        if pic.ndim == 2:
            pic = np.repeat(pic[:, :, None], 3, axis=2)
        pic = np.ascontiguousarray(pic[:, :, :3], dtype=np.uint8)
        scale = _MAX_PICTURE_SIDE / max(pic.shape[:2])
        if scale < 1:
            pic = cv2.resize(pic, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        pic.setflags(write=False)
        out.append(pic)
    return tuple(out)


def _natural_one(pic: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    ph, pw = pic.shape[:2]
    h, w = size
    side = min(ph, pw)
    lo = min(64, side)
    crop = float(np.exp(rng.uniform(np.log(lo), np.log(side))))
    aspect = float(np.exp(rng.uniform(-0.3, 0.3)))
    ch = int(np.clip(round(crop * np.sqrt(aspect)), 8, ph))
    cw = int(np.clip(round(crop / np.sqrt(aspect)), 8, pw))
    y = int(rng.integers(0, ph - ch + 1))
    x = int(rng.integers(0, pw - cw + 1))
    patch = pic[y : y + ch, x : x + cw]
    interp = cv2.INTER_AREA if ch >= h and cw >= w else cv2.INTER_LINEAR
    return cv2.resize(patch, (w, h), interpolation=interp)


def natural_overlays(
    n: int, size: Sequence[int] = (96, 96), rng: int | np.random.Generator | None = None
) -> np.ndarray:
    """``n`` random crops of the bundled scikit-image pictures, ``(n, h, w, 3)`` ``uint8``.

    Each overlay: a random picture, a crop of random scale (log-uniform from 64 pixels to
    the picture's short side) and aspect (about 3:4 to 4:3), rescaled to ``size``, then a
    random flip/rotation (square sizes). Near-uniform crops are redrawn.
    """
    n, size, gen = check_count(n), check_size(size), as_generator(rng)
    pics = natural_pictures()
    out = np.empty((n, *size, 3), np.uint8)
    todo = np.arange(n)
    for _ in range(8):
        if todo.size == 0:
            break
        which = gen.integers(0, len(pics), size=todo.size)
        for j, p in zip(todo, which, strict=True):
            out[j] = _natural_one(pics[p], size, gen)
        todo = todo[flat(out[todo])]
    if size[0] == size[1]:
        out = dihedral(out, gen.integers(0, 8, size=n))
    else:
        flip = gen.random(n) < 0.5
        out[flip] = out[flip, :, ::-1]
    return out


def _random_string(rng: np.random.Generator) -> str:
    length = int(rng.integers(2, 11))
    return "".join(_CHARS[i] for i in rng.integers(0, len(_CHARS), size=length))


def _color(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(0, 256, size=3))  # type: ignore[return-value]


def _background(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    h, w = size
    kind = int(rng.integers(0, 3))
    if kind == 0:  # solid
        return np.broadcast_to(np.array(_color(rng), np.uint8), (h, w, 3)).copy()
    if kind == 1:  # linear gradient between two colours, random direction
        theta = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        t = np.cos(theta) * xx / w + np.sin(theta) * yy / h
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        c0 = np.array(_color(rng), np.float32)
        c1 = np.array(_color(rng), np.float32)
        return (c0 + t[..., None] * (c1 - c0)).astype(np.uint8)
    # blotchy: low-resolution random colours, smoothly upscaled
    cells = int(rng.integers(2, 7))
    small = rng.integers(0, 256, size=(cells, cells, 3)).astype(np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _drawn_one(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    h, w = size
    img = np.ascontiguousarray(_background(size, rng))
    line = cv2.LINE_AA if rng.random() < 0.5 else cv2.LINE_8
    for _ in range(int(rng.integers(3, 13))):
        shape = int(rng.integers(0, 6))
        color = _color(rng)
        thick = int(rng.integers(1, 5)) if rng.random() < 0.7 else -1
        p1 = (int(rng.integers(-w // 4, w + w // 4)), int(rng.integers(-h // 4, h + h // 4)))
        p2 = (int(rng.integers(-w // 4, w + w // 4)), int(rng.integers(-h // 4, h + h // 4)))
        if shape == 0:
            cv2.circle(img, p1, int(rng.integers(3, max(h, w) // 2)), color, thick, line)
        elif shape == 1:
            cv2.rectangle(img, p1, p2, color, thick, line)
        elif shape == 2:
            cv2.line(img, p1, p2, color, max(thick, 1), line)
        elif shape == 3:
            axes = (int(rng.integers(3, w // 2)), int(rng.integers(3, h // 2)))
            cv2.ellipse(img, p1, axes, float(rng.uniform(0, 180)), 0, 360, color, thick, line)
        elif shape == 4:
            pts = np.stack([rng.integers(0, w, size=5), rng.integers(0, h, size=5)], axis=1).astype(np.int32)
            if thick < 0:
                cv2.fillPoly(img, [pts], color, line)
            else:
                cv2.polylines(img, [pts], True, color, thick, line)
        else:
            font = _FONTS[int(rng.integers(0, len(_FONTS)))]
            scale = float(rng.uniform(0.4, 2.0)) * min(h, w) / 96
            org = (int(rng.integers(-w // 4, w // 2)), int(rng.integers(h // 6, h)))
            cv2.putText(img, _random_string(rng), org, font, scale, color, max(thick, 1), line)
    return img


def drawn_overlays(
    n: int, size: Sequence[int] = (96, 96), rng: int | np.random.Generator | None = None
) -> np.ndarray:
    """``n`` cartoons drawn with OpenCV, ``(n, h, w, 3)`` ``uint8``.

    Each: a random background (solid colour, two-colour gradient or blotches), then 3 to
    12 random circles, rectangles, lines, ellipses, polygons and strings of text
    (random fonts, sizes, thicknesses and colours). Near-uniform results are redrawn.
    """
    return draw_bank(_drawn_one, n, size, rng, orient=False)


def cell_overlays(
    cells: np.ndarray,
    n: int,
    rng: int | np.random.Generator | None = None,
    *,
    exclude: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images drawn (with replacement) from ``cells``, randomly flipped/rotated.

    Args:
        cells: ``uint8`` ``(m, h, w, 3)`` pool of images (not modified).
        n: number of overlays.
        rng: seed or generator.
        exclude: optional ``(n,)`` pool indices; overlay ``i`` is never ``cells[exclude[i]]``
            (so an image is not superposed on itself). Needs ``m >= 2``.

    Returns:
        ``(overlays, source)``: the overlays and the pool index each one came from.
    """
    n, gen = check_count(n), as_generator(rng)
    cells = _check_pool(cells)
    m = cells.shape[0]
    if exclude is None:
        src = gen.integers(0, m, size=n)
    else:
        exclude = np.asarray(exclude, dtype=np.int64)
        if exclude.shape != (n,):
            raise ValueError(f"`exclude` must have shape ({n},). Received: exclude.shape={exclude.shape}")
        if m < 2:
            raise ValueError(f"`cells` needs at least 2 images when `exclude` is given. Received: {m}")
        src = (exclude + gen.integers(1, m, size=n)) % m
    picked = cells[src]
    if cells.shape[1] == cells.shape[2]:
        picked = dihedral(picked, gen.integers(0, 8, size=n))
    else:
        flip = gen.random(n) < 0.5
        picked[flip] = picked[flip, :, ::-1]
    return picked, src


def _check_pool(cells: np.ndarray | None) -> np.ndarray:
    if cells is None:
        raise ValueError('`cells` (a uint8 (m, h, w, 3) image array) is required for kind="cells".')
    images = image_batch(cells, "cells")
    if images.shape[0] == 0:
        raise ValueError("`cells` must hold at least one image. Received: cells.shape[0]=0")
    return images


def overlay_bank(
    kind: str,
    n: int,
    size: Sequence[int] = (96, 96),
    rng: int | np.random.Generator | None = None,
    cells: np.ndarray | None = None,
) -> np.ndarray:
    """``n`` overlays of one kind, ``(n, h, w, 3)`` ``uint8``.

    Args:
        kind: ``"natural"``, ``"drawn"`` or ``"cells"`` (see the module docstring), or a
            family of :mod:`cellkit.corrupt.overlay_families` (:data:`OVERLAY_FAMILIES`).
        n: number of overlays.
        size: ``(height, width)``; for ``"cells"`` it must match the pool's image size.
        rng: seed or ``numpy.random.Generator``.
        cells: the image pool for ``kind="cells"`` (an array or a ``Dataset``).

    Example:
        >>> import numpy as np
        >>> pool = np.random.default_rng(0).integers(0, 256, (5, 96, 96, 3), dtype=np.uint8)
        >>> overlay_bank("cells", 3, rng=0, cells=pool).shape
        (3, 96, 96, 3)
    """
    if kind not in OVERLAY_FAMILIES:
        raise ValueError(f"`kind` must be one of {OVERLAY_FAMILIES}. Received: kind={kind!r}")
    size = check_size(size)
    if kind == "natural":
        return natural_overlays(n, size, rng)
    if kind == "drawn":
        return drawn_overlays(n, size, rng)
    if kind != "cells":
        from cellkit.corrupt import overlay_families

        return getattr(overlay_families, f"{kind}_overlays")(n, size, rng)
    pool = _check_pool(cells)
    if pool.shape[1:3] != size:
        raise ValueError(f"`cells` images are {pool.shape[1:3]}, which does not match size={size}.")
    return cell_overlays(pool, n, rng)[0]
