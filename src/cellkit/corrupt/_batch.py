"""Shared machinery of the corruption suite: argument checks and batch-wide image engines.

Every corruption of :mod:`cellkit.corrupt.suite` works on a whole ``uint8`` batch
``(n, h, w, 3)`` at once. Two engines do the heavy lifting without a Python loop over
pixels:

* :func:`filter_batch` convolves every image with one kernel: the images are padded by
  reflection, stacked vertically into one tall image and filtered by a single OpenCV call
  (the padding keeps neighbours in the stack from bleeding into each other).
* :func:`warp_batch` resamples every image at its own source coordinates (rotations,
  zooms, refraction): one ``cv2.remap`` call per stack of up to ~340 images of 96 pixels,
  with reflected coordinates computed in NumPy.

Example:
    >>> import numpy as np
    >>> from cellkit.corrupt._batch import filter_batch
    >>> x = np.zeros((2, 8, 8, 3), np.float32); x[0, 4, 4] = 9.0
    >>> float(filter_batch(x, np.full((3, 3), 1 / 9, np.float32))[0, 4, 4, 0])
    1.0
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from cellkit.data.dataset import image_batch

__all__ = [
    "CHUNK",
    "SEVERITIES",
    "check_batch",
    "check_severity",
    "filter_batch",
    "map_chunks",
    "reflect_coordinates",
    "to_uint8",
    "warp_batch",
]

#: The severities every corruption accepts.
SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)

#: Images processed together by the engines: small enough for the float32 temporaries
#: (about 110 KB per 96x96 image) to stay in cache, large enough to amortise the calls.
CHUNK = 32

# cv2.remap turns float maps into 16-bit fixed point internally: keep stacks below 2**15 rows.
_MAX_REMAP_ROWS = 32_000


def check_batch(images: object, name: str = "images") -> np.ndarray:
    """Return ``images`` if it is a ``uint8`` batch ``(n, h, w, 3)`` (or a Dataset's), else raise ``ValueError``."""
    return image_batch(images, name)


def check_severity(severity: object) -> int:
    """Return ``severity`` as an int in 1..5, else raise ``ValueError``."""
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or int(severity) not in SEVERITIES:
        raise ValueError(f"`severity` must be an integer from 1 to 5. Received: severity={severity!r}")
    return int(severity)


def to_uint8(values: np.ndarray) -> np.ndarray:
    """Round to nearest and clip to 0..255 as ``uint8`` (works in place on float input)."""
    np.rint(values, out=values)
    np.clip(values, 0, 255, out=values)
    return values.astype(np.uint8)


def map_chunks(
    fn: Callable[..., np.ndarray], images: np.ndarray, *per_image: np.ndarray, chunk: int | None = None
) -> np.ndarray:
    """``to_uint8(fn(float32 chunk, *per_image chunks))`` over chunks of ``chunk`` (default :data:`CHUNK`) images.

    ``per_image`` arrays have one row per image and are sliced with the images, so the
    result does not depend on the chunk size: draw every random number before calling
    (or draw inside ``fn`` in order, one stream for the whole batch).
    """
    chunk = chunk or CHUNK
    out = np.empty(images.shape, np.uint8)
    for start in range(0, images.shape[0], chunk):
        sl = slice(start, start + chunk)
        out[sl] = to_uint8(fn(images[sl].astype(np.float32), *(a[sl] for a in per_image)))
    return out


def filter_batch(images: np.ndarray, kernel: np.ndarray | tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Correlate every image of a float32 batch ``(n, h, w, c)`` with ``kernel``, reflect border.

    ``kernel`` is a 2-D array, or ``(column, row)`` 1-D kernels of a separable one
    (``outer(column, row)``), which is faster. The border is reflected without repeating
    the edge pixel (``cv2.BORDER_REFLECT_101``, NumPy's ``"reflect"``). Returns a new
    float32 array of the input's shape.
    """
    n, h, w, c = images.shape
    if isinstance(kernel, tuple):
        ky, kx = (np.asarray(k, np.float32).ravel() for k in kernel)
        kh, kw = ky.size, kx.size
    else:
        kernel = np.asarray(kernel, np.float32)
        kh, kw = kernel.shape
    py, px = kh // 2, kw // 2
    if n == 0:
        return images.astype(np.float32, copy=True)
    padded = np.pad(images.astype(np.float32, copy=False), ((0, 0), (py, py), (px, px), (0, 0)), mode="reflect")
    hp, wp = h + 2 * py, w + 2 * px
    tall = np.ascontiguousarray(padded.reshape(n * hp, wp, c))
    if isinstance(kernel, tuple):
        out = cv2.sepFilter2D(tall, cv2.CV_32F, kx, ky, borderType=cv2.BORDER_REFLECT_101)
    else:
        out = cv2.filter2D(tall, cv2.CV_32F, kernel, borderType=cv2.BORDER_REFLECT_101)
    return out.reshape(n, hp, wp, c)[:, py : py + h, px : px + w].copy()


def reflect_coordinates(coords: np.ndarray, size: int) -> np.ndarray:
    """Fold continuous pixel coordinates into ``[0, size - 1]`` by mirror reflection (reflect-101)."""
    if size == 1:
        return np.zeros_like(coords)
    last = coords.dtype.type(size - 1)
    if coords.size and (coords.min() < -last or coords.max() > 2 * last):  # more than one reflection away
        coords = np.mod(coords, 2 * last)
    # within one reflection of the image: |x| mirrors at 0, last - |last - x| mirrors at the far edge
    out = np.abs(coords)
    out -= last
    np.abs(out, out=out)
    np.subtract(last, out, out=out)
    return out


def warp_batch(images: np.ndarray, src_x: np.ndarray, src_y: np.ndarray) -> np.ndarray:
    """Bilinear resampling: ``out[i, y, x] = images[i, src_y[i, y, x], src_x[i, y, x]]``.

    ``src_x`` and ``src_y`` are float arrays ``(n, h, w)`` of source coordinates; points
    outside the image are reflected back into it. ``images`` is ``uint8`` or float32;
    returns float32.
    """
    n, h, w, c = images.shape
    # OpenCV resamples at 1/32 pixel; rounding here first keeps the coordinates exact once
    # offset into the stack, so a pixel's value does not depend on its image's place in it
    sx = reflect_coordinates(np.asarray(src_x, np.float32), w)
    sy = reflect_coordinates(np.asarray(src_y, np.float32), h)
    for coords in (sx, sy):
        coords *= np.float32(32)
        np.rint(coords, out=coords)
        coords *= np.float32(1 / 32)
    src = images.astype(np.float32, copy=False)
    out = np.empty((n, h, w, c), np.float32)
    step = max(1, _MAX_REMAP_ROWS // max(h, 1))
    for start in range(0, n, step):
        stop = min(n, start + step)
        m = stop - start
        tall = np.ascontiguousarray(src[start:stop].reshape(m * h, w, c))
        offs = (np.arange(m, dtype=np.float32) * h)[:, None, None]
        map_y = np.ascontiguousarray((sy[start:stop] + offs).reshape(m * h, w))
        map_x = np.ascontiguousarray(sx[start:stop].reshape(m * h, w))
        res = cv2.remap(tall, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        out[start:stop] = res.reshape(m, h, w, c)
    return out
