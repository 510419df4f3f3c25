"""Batch mixing (CutMix, MixUp) and label smoothing, in NumPy, for a ``PyDataset`` pipeline.

:func:`mix_batch` pairs every image of a batch with another image of the same batch
(a random permutation) and mixes them:

* ``"mixup"`` (Zhang et al. 2018): ``x = lam * x_i + (1 - lam) * x_j``, same for labels;
* ``"cutmix"`` (Yun et al. 2019): a random box of about ``1 - lam`` of the area is pasted
  from ``x_j``; the labels are weighted by the area actually pasted (after the box is
  clipped to the image).

``lam`` is drawn from ``Beta(alpha, alpha)`` for each image. Labels stay probability
vectors (rows sum to 1). ``label_smoothing=eps`` then replaces ``y`` by
``(1 - eps) * y + eps / k`` (Szegedy et al. 2016), which is what
``keras.losses.CategoricalCrossentropy(label_smoothing=eps)`` does inside the loss: use
one or the other, not both.

Example:
    >>> import numpy as np
    >>> from cellkit.augment.mix import mix_batch
    >>> x = np.zeros((4, 8, 8, 3), np.uint8); y = np.eye(4)
    >>> xm, ym = mix_batch(x, y, "cutmix", alpha=1.0, rng=0, label_smoothing=0.1)
    >>> xm.dtype, ym.shape, bool(np.allclose(ym.sum(axis=1), 1.0))
    (dtype('float32'), (4, 4), True)
"""

from __future__ import annotations

import numpy as np

from cellkit._random import as_generator

__all__ = ["MIX_METHODS", "mix_batch", "smooth_labels"]

MIX_METHODS: tuple[str, ...] = ("cutmix", "mixup", "none")


def smooth_labels(labels: np.ndarray, label_smoothing: float) -> np.ndarray:
    """``(1 - eps) * labels + eps / k`` as float32; ``eps`` in ``[0, 1)``."""
    labels = np.asarray(labels, np.float32)
    eps = float(label_smoothing)
    if not 0.0 <= eps < 1.0:
        raise ValueError(f"`label_smoothing` must be in [0, 1). Received: label_smoothing={label_smoothing!r}")
    if labels.ndim != 2 or labels.shape[1] < 1:
        raise ValueError(f"`labels` must be one-hot of shape (n, k). Received: labels.shape={labels.shape}")
    return labels * np.float32(1.0 - eps) + np.float32(eps / labels.shape[1])


def _check(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim != 4:
        raise ValueError(f"`images` must be a batch (n, h, w, c). Received: images.shape={images.shape}")
    if not (np.issubdtype(images.dtype, np.integer) or np.issubdtype(images.dtype, np.floating)):
        raise ValueError(f"`images` must be numeric. Received: images.dtype={images.dtype}")
    if labels.ndim != 2 or labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"`labels_onehot` must have shape ({images.shape[0]}, k) to match the images "
            f"(use keras.utils.to_categorical on class indices). Received: labels_onehot.shape={labels.shape}"
        )
    labels = labels.astype(np.float32)
    if labels.size and (labels.min() < 0 or not np.allclose(labels.sum(axis=1), 1.0, atol=1e-4)):
        raise ValueError("`labels_onehot` rows must be probability vectors (>= 0, summing to 1)")
    return images, labels


def mix_batch(
    images: np.ndarray,
    labels_onehot: np.ndarray,
    method: str = "cutmix",
    alpha: float = 1.0,
    rng: int | np.random.Generator | None = None,
    *,
    probability: float = 1.0,
    label_smoothing: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Mix a batch with a shuffled copy of itself; returns new ``(images float32, labels float32)``.

    Args:
        images: ``(n, h, w, c)`` integer or float images (not modified).
        labels_onehot: ``(n, k)`` one-hot or soft labels (rows sum to 1).
        method: ``"cutmix"``, ``"mixup"`` or ``"none"`` (only label smoothing).
        alpha: ``Beta(alpha, alpha)`` parameter (> 0); 1.0 is uniform, small values mix less.
        rng: seed or ``numpy.random.Generator``; pass one generator for the whole epoch.
        probability: chance that an image is mixed at all (others keep ``lam = 1``).
        label_smoothing: ``eps`` of :func:`smooth_labels`, applied after mixing.
    """
    if method not in MIX_METHODS:
        raise ValueError(f"`method` must be one of {MIX_METHODS}. Received: method={method!r}")
    if not (isinstance(alpha, (int, float)) and np.isfinite(alpha) and alpha > 0):
        raise ValueError(f"`alpha` must be a number > 0. Received: alpha={alpha!r}")
    if not (isinstance(probability, (int, float)) and 0.0 <= probability <= 1.0):
        raise ValueError(f"`probability` must be in [0, 1]. Received: probability={probability!r}")
    images, labels = _check(images, labels_onehot)
    gen = as_generator(rng)
    out = images.astype(np.float32)  # a copy: the input is never modified
    n, h, w = images.shape[:3]
    if method != "none" and n > 1:
        partner = gen.permutation(n)
        lam = gen.beta(alpha, alpha, size=n).astype(np.float32)
        lam[gen.random(n) >= probability] = 1.0
        if method == "mixup":
            lam4 = lam[:, None, None, None]
            out = lam4 * out + (1.0 - lam4) * out[partner]
        else:
            cut = np.sqrt(1.0 - lam)
            cy, cx = gen.uniform(0, h, n), gen.uniform(0, w, n)
            y0 = np.clip(np.round(cy - cut * h / 2), 0, h).astype(np.int64)
            y1 = np.clip(np.round(cy + cut * h / 2), 0, h).astype(np.int64)
            x0 = np.clip(np.round(cx - cut * w / 2), 0, w).astype(np.int64)
            x1 = np.clip(np.round(cx + cut * w / 2), 0, w).astype(np.int64)
            rows = (np.arange(h) >= y0[:, None]) & (np.arange(h) < y1[:, None])
            cols = (np.arange(w) >= x0[:, None]) & (np.arange(w) < x1[:, None])
            box = rows[:, :, None] & cols[:, None, :]
            out = np.where(box[..., None], out[partner], out)
            lam = (1.0 - box.mean(axis=(1, 2))).astype(np.float32)  # the area actually kept
        labels = lam[:, None] * labels + (1.0 - lam[:, None]) * labels[partner]
    if label_smoothing:
        labels = smooth_labels(labels, label_smoothing)
    return out.astype(np.float32, copy=False), labels.astype(np.float32, copy=False)
