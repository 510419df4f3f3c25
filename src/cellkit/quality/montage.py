"""Montages: a grid of images with a caption under each, for a person to look at.

``cellkit inspect --report DIR`` writes one montage per issue type with the most suspicious
images first, so the flagged images can be checked by eye in seconds.

Example:
    >>> import numpy as np
    >>> from cellkit.quality.montage import make_montage
    >>> grid = make_montage(np.zeros((5, 96, 96, 3), np.uint8), ["a"] * 5, columns=4)
    >>> grid.shape
    (242, 387, 3)
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import cv2
import numpy as np

from cellkit._io import atomic_write_bytes

__all__ = ["make_montage", "save_montage"]

_CAPTION_H = 24
_PAD = 1


def make_montage(
    images: np.ndarray, captions: Sequence[str] | None = None, *, columns: int = 8, scale: int = 1
) -> np.ndarray:
    """Tile ``images`` (uint8 ``(n, h, w, 3)`` RGB) into one RGB image with captions."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (n, h, w, 3). Received: shape={images.shape}, dtype={images.dtype}")
    if columns < 1:
        raise ValueError(f"columns must be >= 1. Received: columns={columns!r}")
    n, h, w, _ = images.shape
    captions = list(captions) if captions is not None else [""] * n
    if len(captions) != n:
        raise ValueError(f"need one caption per image. Received: {len(captions)} captions for {n} images")
    if scale > 1:
        images = images.repeat(scale, axis=1).repeat(scale, axis=2)
        h, w = h * scale, w * scale
    cols = max(1, min(columns, n))
    rows = max(1, -(-n // cols))
    cell_h, cell_w = h + _CAPTION_H + _PAD, w + _PAD
    canvas = np.full((rows * cell_h, cols * cell_w - _PAD, 3), 255, np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        y, x = r * cell_h, c * cell_w
        canvas[y : y + h, x : x + w] = images[i]
        text = captions[i][: max(4, w // 7)]
        cv2.putText(canvas, text, (x + 2, y + h + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    return canvas


def save_montage(
    path: str | os.PathLike[str],
    images: np.ndarray,
    captions: Sequence[str] | None = None,
    *,
    title: str | None = None,
    columns: int = 8,
    scale: int = 1,
) -> None:
    """Write :func:`make_montage`'s grid as a PNG, atomically; ``title`` goes on top."""
    grid = make_montage(images, captions, columns=columns, scale=scale)
    if title:
        band = np.full((28, grid.shape[1], 3), 255, np.uint8)
        cv2.putText(band, title, (4, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        grid = np.concatenate([band, grid], axis=0)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - OpenCV always encodes uint8 RGB
        raise RuntimeError(f"could not encode the montage for {path}")
    atomic_write_bytes(path, buf.tobytes())
