"""Colour statistics of images: :func:`color_features` and :func:`background_chroma`.

What :class:`~cellkit.quality.color.ColorFilterDetector` sees of an image (a filter moves
every pixel's log colour by one vector, and leaves the spread of the log-chroma as it was).
Public as :mod:`cellkit.quality.color`'s names.
"""

from __future__ import annotations

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
    n, h, w, _ = x.shape
    if n == 0:
        return np.zeros((0, len(COLOR_FEATURE_NAMES)))
    h2, w2 = h // 2 * 2, w // 2 * 2
    s = x[:, 0:h2:2, 0:w2:2].astype(np.uint16)
    s += x[:, 1:h2:2, 0:w2:2]
    s += x[:, 0:h2:2, 1:w2:2]
    s += x[:, 1:h2:2, 1:w2:2]
    s = s.reshape(n, -1, 3)
    lum = s.sum(axis=2, dtype=np.int32)
    logs = np.log(s.astype(np.float32) * 0.25 + 1.0)
    chroma = logs[..., :2] - logs[..., 2:]
    lo, hi = np.quantile(lum, [_DARK_QUANTILE, _BRIGHT_QUANTILE], axis=1, method="lower")
    out = []
    for mask in (lum >= hi[:, None], lum <= lo[:, None]):
        wgt = mask.astype(np.float32)
        wgt /= wgt.sum(axis=1, keepdims=True)
        mean_log = np.einsum("np,npc->nc", wgt, logs)
        centred = chroma - (mean_log[:, None, :2] - mean_log[:, None, 2:])
        var = np.einsum("np,npc->nc", wgt, centred * centred)  # two passes: no cancellation
        out += [mean_log, np.sqrt(var)]
    return np.concatenate(out, axis=1).astype(np.float64)


def background_chroma(features: np.ndarray) -> np.ndarray:
    """Background log-chroma ``(log R/B, log G/B)``, ``(n, 2)``, from :func:`color_features`.

    Example:
        >>> import numpy as np
        >>> background_chroma(np.log(np.array([[200.0, 150.0, 100.0] + [1.0] * 7]))).round(3)
        array([[0.693, 0.405]])
    """
    f = np.asarray(features, dtype=np.float64)
    return f[:, :2] - f[:, 2:3]
