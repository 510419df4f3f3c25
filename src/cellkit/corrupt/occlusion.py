"""Occlusion: random erasing, a rectangle of each image replaced by uniform noise.

``random_erasing`` is the corruption of Zhong et al., *Random Erasing Data Augmentation*
(AAAI 2020): one axis-aligned rectangle per image, of :data:`ERASING_AREAS` of the image
area and aspect ratio log-uniform in [1/3, 3], at a uniformly random centre (clipped at the
border), filled with independent uniform noise in 0..255 per pixel and channel. It stands
for anything that hides part of a cell; it belongs to the ``occlusion`` family, which
training-time augmentation may simulate (:class:`cellkit.augment.layers.RandomErasing` is
its Keras counterpart). It is not a model of the held-out slide artefacts: ink deposits
are soft, dark, irregular blobs and bubbles refract what lies under them, where an erased
rectangle carries no image at all.

The centre, aspect ratio and noise are drawn once, whatever the severity, and the
rectangle's sides grow with the square root of the area: with one seed a higher severity
erases a larger rectangle around the same centre (it contains the smaller one).

Example:
    >>> import numpy as np
    >>> x = np.full((4, 96, 96, 3), 200, np.uint8)
    >>> y = random_erasing(x, 5, rng=0)
    >>> changed = (y != x).any(axis=-1).mean(axis=(1, 2))
    >>> bool((changed > 0.05).all() and (changed <= ERASING_AREAS[-1] + 0.01).all())
    True
"""

from __future__ import annotations

import numpy as np

from cellkit._random import as_generator
from cellkit.corrupt._batch import check_batch, check_severity

__all__ = ["ERASING_AREAS", "ERASING_ASPECT", "random_erasing"]

#: Share of the image area erased at severities 1..5 (before clipping at the border).
ERASING_AREAS: tuple[float, ...] = (0.03, 0.06, 0.10, 0.15, 0.20)
#: Largest aspect ratio (width / height or its inverse) of the erased rectangle.
ERASING_ASPECT = 3.0


def random_erasing(images: np.ndarray, severity: int = 3, rng: int | np.random.Generator | None = None) -> np.ndarray:
    """Replace one rectangle of :data:`ERASING_AREAS` of each image by uniform noise."""
    check_batch(images)
    s = check_severity(severity)
    gen = as_generator(rng)
    n, h, w, c = images.shape
    centre_x = gen.uniform(0.0, w, n)
    centre_y = gen.uniform(0.0, h, n)
    aspect = np.exp(gen.uniform(-np.log(ERASING_ASPECT), np.log(ERASING_ASPECT), n))
    noise = gen.integers(0, 256, (n, h, w, c), dtype=np.uint8)
    area = ERASING_AREAS[s - 1] * h * w
    half_w = 0.5 * np.sqrt(area * aspect)
    half_h = 0.5 * np.sqrt(area / aspect)
    xs = np.arange(w) + 0.5
    ys = np.arange(h) + 0.5
    inside_x = np.abs(xs[None, :] - centre_x[:, None]) <= half_w[:, None]  # (n, w)
    inside_y = np.abs(ys[None, :] - centre_y[:, None]) <= half_h[:, None]  # (n, h)
    mask = inside_y[:, :, None, None] & inside_x[:, None, :, None]
    return np.where(mask, noise, images)
