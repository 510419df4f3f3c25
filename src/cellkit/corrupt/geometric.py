"""Geometric shifts: dihedral transforms, small rotations, translations and zooms.

A cell has no preferred orientation, and the field of view can be framed a few pixels
off or at another magnification. Resampled transforms use bilinear interpolation and a
reflected border (no invented black corners), computed for the whole batch at once by
:func:`cellkit.corrupt._batch.warp_batch`.

* ``dihedral``: one of the seven non-identity symmetries of the square (rotations by
  90/180/270 degrees, horizontal/vertical flips, the two transpositions), exact and
  lossless. It has no magnitude: the five severities are the same transform. (Non-square
  images only get the 180-degree rotation and the two flips.)
* ``rotate``: rotation about the centre by :data:`ROTATE_DEGREES`, random sign.
* ``translate``: shift by :data:`TRANSLATE_PIXELS` in a random direction.
* ``zoom``: scale by :data:`ZOOM_FACTORS` or its inverse (in or out, at random).

Example:
    >>> import numpy as np
    >>> from cellkit.corrupt.geometric import dihedral
    >>> x = np.arange(4, dtype=np.uint8).reshape(1, 2, 2, 1).repeat(3, axis=3)
    >>> y = dihedral(x, rng=0)
    >>> sorted(y[0, ..., 0].ravel().tolist()) == [0, 1, 2, 3], bool((y != x).any())
    (True, True)
"""

from __future__ import annotations

import numpy as np

from cellkit._random import as_generator
from cellkit.corrupt._batch import check_batch, check_severity, map_chunks, warp_batch

__all__ = ["ROTATE_DEGREES", "TRANSLATE_PIXELS", "ZOOM_FACTORS", "dihedral", "rotate", "translate", "zoom"]

#: Absolute rotation angle (degrees), severities 1..5; the sign is random per image.
ROTATE_DEGREES: tuple[float, ...] = (5.0, 10.0, 15.0, 25.0, 35.0)
#: Shift length (pixels, for 96-pixel images; scaled with the image size), random direction.
TRANSLATE_PIXELS: tuple[float, ...] = (2.0, 4.0, 6.0, 9.0, 13.0)
#: Zoom factor (> 1 magnifies); zoom-out images use its inverse.
ZOOM_FACTORS: tuple[float, ...] = (1.06, 1.12, 1.2, 1.3, 1.45)

_REFERENCE_SIZE = 96.0

# The 8 symmetries of the square as (k rotations by 90 degrees, then transpose?).
_D4 = ((1, False), (2, False), (3, False), (0, True), (1, True), (2, True), (3, True))


def _d4(batch: np.ndarray, k: int, transpose: bool) -> np.ndarray:
    out = np.rot90(batch, k=k, axes=(1, 2))
    return np.swapaxes(out, 1, 2) if transpose else out


def dihedral(images: np.ndarray, severity: int = 3, rng: int | np.random.Generator | None = None) -> np.ndarray:
    """A random non-identity symmetry of the square per image (severity has no effect)."""
    check_batch(images)
    check_severity(severity)
    n, h, w, _ = images.shape
    ops = _D4 if h == w else ((2, False), (1, True), (3, True))  # non-square: shape-preserving ones only
    choice = as_generator(rng).integers(0, len(ops), size=n)
    out = np.empty_like(images)
    for j, (k, transpose) in enumerate(ops):
        sel = np.flatnonzero(choice == j)
        if sel.size:
            out[sel] = _d4(images[sel], k, transpose)
    return out


def _affine(images: np.ndarray, matrix: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Resample with ``src = matrix[i] @ (p - centre) + centre + shift[i]`` for every output pixel ``p``."""
    _, h, w, _ = images.shape
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    ys, xs = np.meshgrid(np.arange(h, dtype=np.float32) - cy, np.arange(w, dtype=np.float32) - cx, indexing="ij")
    centre = np.array([cx, cy], np.float32)

    def fn(x: np.ndarray, matrix: np.ndarray, shift: np.ndarray) -> np.ndarray:
        m = matrix[:, :, :, None, None]
        off = (centre + shift)[:, :, None, None]
        src_x = m[:, 0, 0] * xs + m[:, 0, 1] * ys + off[:, 0]
        src_y = m[:, 1, 0] * xs + m[:, 1, 1] * ys + off[:, 1]
        return warp_batch(x, src_x, src_y)

    return map_chunks(fn, images, matrix.astype(np.float32), shift.astype(np.float32))


def _signs(gen: np.random.Generator, n: int) -> np.ndarray:
    return np.where(gen.random(n) < 0.5, -1.0, 1.0)


def rotate(images: np.ndarray, severity: int = 3, rng: int | np.random.Generator | None = None) -> np.ndarray:
    """Rotate about the centre by +-:data:`ROTATE_DEGREES` degrees, reflected border."""
    check_batch(images)
    n = images.shape[0]
    theta = np.deg2rad(ROTATE_DEGREES[check_severity(severity) - 1]) * _signs(as_generator(rng), n)
    c, s = np.cos(theta), np.sin(theta)
    matrix = np.stack([np.stack([c, s], -1), np.stack([-s, c], -1)], 1)  # inverse rotation: output -> source
    return _affine(images, matrix, np.zeros((n, 2)))


def translate(images: np.ndarray, severity: int = 3, rng: int | np.random.Generator | None = None) -> np.ndarray:
    """Shift by :data:`TRANSLATE_PIXELS` (per 96 pixels) in a random direction, reflected border."""
    check_batch(images)
    n, h, w, _ = images.shape
    length = TRANSLATE_PIXELS[check_severity(severity) - 1] * min(h, w) / _REFERENCE_SIZE
    angle = as_generator(rng).uniform(0.0, 2 * np.pi, size=n)
    shift = np.stack([np.cos(angle), np.sin(angle)], -1) * length
    return _affine(images, np.broadcast_to(np.eye(2), (n, 2, 2)), shift)


def zoom(images: np.ndarray, severity: int = 3, rng: int | np.random.Generator | None = None) -> np.ndarray:
    """Magnify by :data:`ZOOM_FACTORS` or shrink by its inverse (at random), about the centre."""
    check_batch(images)
    n = images.shape[0]
    factor = ZOOM_FACTORS[check_severity(severity) - 1] ** _signs(as_generator(rng), n)
    matrix = np.eye(2)[None] / factor[:, None, None]
    return _affine(images, matrix, np.zeros((n, 2)))
