"""Colour statistics of images: :func:`color_features` and :func:`background_chroma`.

What :class:`~cellkit.quality.color.ColorFilterDetector` sees of an image (a filter moves
every pixel's log colour by one vector, and leaves the spread of the log-chroma as it was).
Public as :mod:`cellkit.quality.color`'s names.
"""

from __future__ import annotations

import cv2
import numpy as np

from cellkit.data.dataset import image_batch

__all__ = ["COLOR_FEATURE_NAMES", "background_chroma", "color_features"]

#: Columns of :func:`color_features`. ``bright_*``: the brightest 30% of the pixels
#: (mostly background), ``dark_*``: the darkest 15% (mostly stain). ``*_log_r/g/b``:
#: mean of ``log(1 + channel)``; ``*_sd_rb/gb``: standard deviation of the log-chroma
#: ``log(R/B)`` and ``log(G/B)`` (a filter leaves it unchanged).
COLOR_FEATURE_NAMES: tuple[str, ...] = (
    "bright_log_r",
    "bright_log_g",
    "bright_log_b",
    "bright_sd_rb",
    "bright_sd_gb",
    "dark_log_r",
    "dark_log_g",
    "dark_log_b",
    "dark_sd_rb",
    "dark_sd_gb",
)

_BRIGHT_QUANTILE = 0.70
_DARK_QUANTILE = 0.15


def color_features(images: np.ndarray) -> np.ndarray:
    """Colour statistics of each image, ``(n, 10)`` float64 (see :data:`COLOR_FEATURE_NAMES`).

    Pixels are first averaged over 2x2 blocks (exactly, in integers). The brightest 30%
    and the darkest 15% of the blocks (by ``R + G + B``) are summarised by their mean log
    intensity per channel and by the spread of their log-chroma. The features depend only
    on the set of pixel values, so flips and quarter turns leave them unchanged.

    Example:
        >>> import numpy as np
        >>> x = np.full((2, 8, 8, 3), 100, np.uint8)
        >>> f = color_features(x)
        >>> f.shape, bool(np.allclose(f[:, 0], np.log(101)))
        ((2, 10), True)
    """
    x = image_batch(images)
    if x.shape[0] == 0:
        return np.zeros((0, len(COLOR_FEATURE_NAMES)))
    # Chunks small enough for every temporary to stay in cache.
    return np.concatenate([_chunk_features(x[s : s + _CHUNK]) for s in range(0, x.shape[0], _CHUNK)])


#: Images per chunk of :func:`color_features`.
_CHUNK = 64
#: Largest ``R + G + B`` of a 2x2 block sum (4 pixels of 3 channels of 255).
_MAX_LUM = 4 * 3 * 255


def _chunk_features(x: np.ndarray) -> np.ndarray:
    n, h, w, _ = x.shape
    h2, w2 = h // 2 * 2, w // 2 * 2
    # 2x2 block means, exact in float32 (sums of four integers, times 0.25): OpenCV's area
    # resize of the chunk stacked as one tall image (h2 even: no block straddles two images).
    tall = np.ascontiguousarray(x[:, :h2, :w2]).reshape(n * h2, w2, 3).astype(np.float32)
    block = cv2.resize(tall, (w2 // 2, n * h2 // 2), interpolation=cv2.INTER_AREA)
    lum = (cv2.transform(block, np.ones((1, 3), np.float32)) * 4).astype(np.int32).reshape(n, -1)
    logs = np.log(block.reshape(n, -1, 3) + np.float32(1.0))
    chroma = logs[..., :2] - logs[..., 2:]
    lo, hi = _order_statistics(lum, (_DARK_QUANTILE, _BRIGHT_QUANTILE))
    out = []
    for mask in (lum >= hi[:, None], lum <= lo[:, None]):
        wgt = mask.astype(np.float32)
        wgt /= wgt.sum(axis=1, keepdims=True)
        wgt = wgt[:, None, :]
        mean_log = (wgt @ logs)[:, 0]
        centred = chroma - (mean_log[:, None, :2] - mean_log[:, None, 2:])
        var = (wgt @ (centred * centred))[:, 0]  # two passes: no cancellation
        out += [mean_log, np.sqrt(var)]
    return np.concatenate(out, axis=1).astype(np.float64)


def _order_statistics(lum: np.ndarray, quantiles: tuple[float, ...]) -> list[np.ndarray]:
    """Per row, ``np.quantile(lum, q, method="lower")`` of integers in ``[0, _MAX_LUM]``, by counting.

    The order statistic of rank ``floor(q (p - 1))``: the smallest value whose cumulative
    count exceeds the rank (3x faster than ``np.partition`` on 2,304 values a row).
    """
    n, p = lum.shape
    bins = _MAX_LUM + 1
    counts = np.bincount((lum + (np.arange(n, dtype=np.int32) * bins)[:, None]).ravel(), minlength=n * bins)
    cumulative = counts.reshape(n, bins).cumsum(axis=1)
    return [(cumulative <= int(np.floor(q * (p - 1)))).sum(axis=1) for q in quantiles]


def background_chroma(features: np.ndarray) -> np.ndarray:
    """Background log-chroma ``(log R/B, log G/B)``, ``(n, 2)``, from :func:`color_features`.

    Example:
        >>> import numpy as np
        >>> background_chroma(np.log(np.array([[200.0, 150.0, 100.0] + [1.0] * 7]))).round(3)
        array([[0.693, 0.405]])
    """
    f = np.asarray(features, dtype=np.float64)
    return f[:, :2] - f[:, 2:3]
