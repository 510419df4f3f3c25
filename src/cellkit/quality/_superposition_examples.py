"""The self-supervised training images of :class:`~cellkit.quality.superposition.SuperpositionDetector`.

Positives are superposed copies of the user's own images
(:func:`cellkit.corrupt.superpose.random_superpositions`), negatives the images themselves.
Both classes go through the same treatment, so that neither is a cue: a fraction of them is
seen through a random colour filter (a colour cast is no sign of a superposition), and each
image is stored at a random quality, lossless or JPEG (compression is no sign either); then
both are turned into features.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from cellkit.corrupt.color import color_filter, random_filter_gains
from cellkit.corrupt.superpose import (
    blend_layer,
    jpeg_roundtrip,
    random_storage,
    random_superpositions,
    superpose,
)

__all__ = ["color_augment", "store", "training_features"]

Quality = int | Sequence[int | None] | None

#: With ``blend_modes``, this share of the positives mixes its overlay in through one of the
#: modes, at an alpha of at least ``BLEND_MIN_ALPHA`` (up to the detector's highest): a mode at a
#: low alpha over a flat background is a colour cast, which the negatives carry too (their
#: colour augmentation), and taught the detector to flag clean images (1.5-2.8% of them with
#: half the positives moded at any alpha; 0.75-0.89% at 0.25 and >= 0.35, against 0.44-0.92%
#: without modes; chosen on Twemoji benches, ``benchmarks/probes/blend_modes.py``; what it
#: costs elsewhere: ``docs/quality.md``).
BLEND_SHARE = 0.25
BLEND_MIN_ALPHA = 0.35


def training_features(
    images: np.ndarray,
    n_pos: int,
    rng: np.random.Generator,
    features: Callable[[np.ndarray], np.ndarray],
    *,
    alpha: Sequence[float],
    kinds: Sequence[str],
    max_drawn: int,
    jpeg_quality: Quality,
    color_fraction: float,
    blend_modes: Sequence[str] = (),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x_neg, x_pos, base)``: features of the images and of ``n_pos`` superposed copies.

    ``base[i]`` is the image that positive ``i`` was made from (each image in turn, in
    random order). With ``blend_modes``, :data:`BLEND_SHARE` of the positives mix in their
    overlay through one of those editor modes (:func:`~cellkit.corrupt.superpose.blend_layer`)
    instead of plain transparency, at an alpha of at least :data:`BLEND_MIN_ALPHA`.
    """
    n = images.shape[0]
    base = np.concatenate([rng.permutation(n) for _ in range(-(-n_pos // n))])[:n_pos]
    synth = random_superpositions(images, n_pos, rng, alpha=alpha, kinds=kinds, base=base, max_drawn=max_drawn)
    positives = synth.images  # a new array: the moded positives replace their rows in place
    if blend_modes:
        mode = rng.integers(0, len(blend_modes), size=n_pos)
        moded = rng.random(n_pos) < BLEND_SHARE
        high = float(alpha[1])  # within the detector's range: from BLEND_MIN_ALPHA, or its top if lower
        a = rng.uniform(min(BLEND_MIN_ALPHA, high), high, size=n_pos)
        for m, name in enumerate(blend_modes):
            sel = np.flatnonzero(moded & (mode == m))
            if sel.size:
                cells = images[base[sel]]
                positives[sel] = superpose(cells, blend_layer(cells, synth.overlays[sel], name), a[sel])
    x_neg = features(store(color_augment(images, color_fraction, rng), jpeg_quality, rng))
    x_pos = features(store(color_augment(positives, color_fraction, rng), jpeg_quality, rng))
    return x_neg, x_pos, base


def store(images: np.ndarray, jpeg_quality: Quality, rng: np.random.Generator) -> np.ndarray:
    """The storage round trip of the training images: one quality, or one per image from a list."""
    q = jpeg_quality
    if q is None or isinstance(q, (int, np.integer)):
        return jpeg_roundtrip(images, q)
    return random_storage(images, q, rng)


def color_augment(images: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A copy of ``images`` where a ``fraction`` of them went through a random filter."""
    pick = np.flatnonzero(rng.random(images.shape[0]) < fraction)
    if pick.size == 0:
        return images
    half = pick.size // 2
    gains = np.concatenate(
        [
            random_filter_gains(half, rng, kind="blue"),
            random_filter_gains(pick.size - half, rng, kind="any"),
        ]
    )
    out = images.copy()
    out[pick] = color_filter(images[pick], gains)
    return out
