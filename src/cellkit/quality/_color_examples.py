"""The synthetic training examples of :class:`~cellkit.quality.color.ColorFilterDetector`.

Positives are colour-filtered copies of the reference images (random gains of the
requested filter kinds, :func:`cellkit.corrupt.color.random_filter_gains`); hard negatives
are superposed copies (:func:`cellkit.corrupt.superpose.random_superpositions`). Both go
through the same JPEG round trip, batch by batch, and are returned as colour features.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from cellkit.corrupt.color import color_filter, random_filter_gains
from cellkit.corrupt.superpose import jpeg_roundtrip, random_superpositions
from cellkit.quality._color_features import COLOR_FEATURE_NAMES

__all__ = ["filtered_copies", "superposed_copies"]

Features = Callable[[np.ndarray], np.ndarray]


def filtered_copies(
    images: np.ndarray,
    refs: np.ndarray,
    m: int,
    kinds: Sequence[str],
    rng: np.random.Generator,
    *,
    jpeg_quality: int | None,
    batch_size: int,
    features: Features,
) -> np.ndarray:
    """Features of ``m`` copies of random references ``images[refs]``, each through a random filter of ``kinds``."""
    which = np.asarray(kinds)[rng.integers(0, len(kinds), size=m)]
    gains = np.empty((m, 3))
    for k in kinds:
        sel = which == k
        gains[sel] = random_filter_gains(int(sel.sum()), rng, kind=k)  # type: ignore[arg-type]
    src = refs[rng.integers(0, refs.size, size=m)]
    return np.concatenate(
        [
            features(
                jpeg_roundtrip(
                    color_filter(images[src[s : s + batch_size]], gains[s : s + batch_size]),
                    jpeg_quality,
                )
            )
            for s in range(0, m, batch_size)
        ]
    )


def superposed_copies(
    references: np.ndarray,
    m: int,
    rng: np.random.Generator,
    *,
    alpha: Sequence[float],
    overlay_kinds: Sequence[str],
    jpeg_quality: int | None,
    batch_size: int,
    features: Features,
) -> np.ndarray:
    """Features of ``m`` random superpositions on ``references`` (hard negatives), ``batch_size`` at a time."""
    x_sup = [np.zeros((0, len(COLOR_FEATURE_NAMES)))]
    for s in range(0, m, batch_size):
        k = min(batch_size, m - s)
        sup = random_superpositions(references, k, rng, alpha=alpha, kinds=overlay_kinds).images
        x_sup.append(features(jpeg_roundtrip(sup, jpeg_quality)))
    return np.concatenate(x_sup)
