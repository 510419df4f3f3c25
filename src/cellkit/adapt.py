"""Test-time adaptation to a new microscope: re-estimate batch-norm statistics on its images.

A classifier trained on one microscope sees, on another, images whose colours, brightness
and contrast differ; the features inside the network shift, and each batch-norm layer
normalises them with the training data's mean and variance, which no longer fit. Adaptive
batch normalisation (Li et al., *Revisiting Batch Normalization For Practical Domain
Adaptation*, 2016; Schneider et al., *Improving robustness against common corruptions by
covariate shift adaptation*, 2020) replaces those statistics by the ones of the new
images -- unlabelled: no label is needed or used, and no weight is trained.

:func:`adapt_batch_norm` does it with :func:`cellkit.train.precise_bn.recalibrate_batch_norm`
on *every* batch-norm layer, frozen ones included (a fine-tuned backbone keeps its
pretrained batch norm frozen), with dropout off; the statistics are the plain average of
the per-batch statistics. :func:`adapt_model` loads a model (or takes one), shuffles the
target images (a batch of one class would understate the variance), optionally keeps
``max_images`` of them, adapts a copy (the model passed in is left unchanged) and
returns it with a summary. It works for a plain classifier, a model wrapped in test-time
augmentation (:func:`cellkit.inference.tta.with_tta`; the statistics are then gathered over the
views, as the model sees them) and an ensemble (:func:`cellkit.inference.ensemble.build_ensemble`;
each member's layers are adapted): batch-norm layers inside nested models are found.

Measured on one kept model (the robust preset with Reinhard normalisation; ``python -m pytest
benchmarks/test_bench_robustness.py --full -k adaptation``): adapting on half of 1,000 shifted
test images and scoring the other half, the mean accuracy over 25 severity-5 shifts (18
third-party ImageNet-C corruptions, 7 of cellkit's held-out families) rose from 0.579 to 0.755;
on clean images it stayed at 0.96 (``docs/training.md``).

Example:
    >>> import keras, numpy as np
    >>> inp = keras.Input((8, 8, 3))
    >>> out = keras.layers.BatchNormalization()(keras.layers.Conv2D(4, 3)(inp))
    >>> model = keras.Model(inp, out)
    >>> target = np.random.default_rng(0).integers(0, 128, (64, 8, 8, 3), dtype=np.uint8)
    >>> adapted, info = adapt_model(model, target, batch_size=16)
    >>> info["batch_norm_layers"], info["images"]
    (1, 64)
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import keras
import numpy as np

from cellkit.errors import DataError
from cellkit.train.precise_bn import batch_norm_layers, recalibrate_batch_norm

__all__ = ["adapt_batch_norm", "adapt_model"]


def _check_count(name: str, value: Any, *, optional: bool = False) -> int | None:
    if optional and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        what = "an int >= 1" + (" or None" if optional else "")
        raise ValueError(f"{name} must be {what}. Received: {name}={value!r}")
    return int(value)


def _check_images(images: Any) -> np.ndarray:
    array = np.asarray(images)
    if array.ndim != 4 or array.shape[0] < 1:
        raise DataError(f"expected a batch of images (n, height, width, channels). Received: shape={array.shape}")
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise DataError(f"expected numeric images (uint8 or float). Received: dtype={array.dtype}")
    return array


def adapt_batch_norm(model: keras.Model, images: np.ndarray, batch_size: int = 64, batches: int | None = None) -> int:
    """Re-estimate every batch-norm layer of ``model`` (frozen ones too) on ``images``, in place.

    Args:
        model: any Keras model; batch-norm layers in nested models (a classifier's backbone,
            TTA-wrapped or ensemble members) are included.
        images: ``(n, h, w, c)`` unlabelled target images, as the model takes them (0-255).
            Pass them shuffled: each batch should mix the classes.
        batch_size: images per forward pass (the statistics are per batch, as in training).
        batches: use only the first ``batches`` batches; ``None``: every full batch (at
            least one).

    Returns:
        The number of batch-norm layers adapted (0: the model has none; it is unchanged).

    Example:
        >>> import keras, numpy as np
        >>> inp = keras.Input((4,)); bn = keras.layers.BatchNormalization()
        >>> bn.trainable = False
        >>> model = keras.Model(inp, bn(inp))
        >>> adapt_batch_norm(model, np.full((8, 4), 3.0, "float32"), batch_size=8)
        1
        >>> np.asarray(bn.moving_mean).tolist(), bn.trainable
        ([3.0, 3.0, 3.0, 3.0], False)
    """
    batch_size = _check_count("batch_size", batch_size)
    batches = _check_count("batches", batches, optional=True)
    if batches is not None:
        images = images[: batches * batch_size]
    return recalibrate_batch_norm(model, images, batch_size=batch_size, include_frozen=True)


def _load(model_or_path: keras.Model | str | os.PathLike[str]) -> tuple[keras.Model, str | None]:
    """A fresh model to adapt (the caller's own model is left unchanged) and its source path."""
    from cellkit.inference.saving import load_model, resolve_model_path, save_model

    if isinstance(model_or_path, keras.Model):  # a faithful copy: nested and shared models included
        with tempfile.TemporaryDirectory(prefix="cellkit-adapt-") as tmp:
            return load_model(save_model(model_or_path, Path(tmp) / "model.keras")), None
    path = resolve_model_path(model_or_path)
    return load_model(path), str(path)


def adapt_model(
    model_or_path: keras.Model | str | os.PathLike[str],
    images: np.ndarray,
    *,
    batch_size: int = 64,
    max_images: int | None = None,
    seed: int = 0,
) -> tuple[keras.Model, dict[str, Any]]:
    """A copy of a model with its batch-norm statistics adapted to unlabelled target images.

    Args:
        model_or_path: a Keras model (copied, not modified), a ``.keras`` file or a cellkit
            run folder (its ``model.keras``; loaded with ``safe_mode=True``).
        images: ``(n, h, w, c)`` images of the target microscope, as the model takes them
            (raw 0-255 for a cellkit classifier); labels are not needed.
        batch_size: images per forward pass; ``n // batch_size`` full batches are used (at
            least one).
        max_images: use at most this many images (a seeded random choice); ``None``: all.
        seed: seeds the shuffling and the choice of images.

    Returns:
        ``(adapted_model, info)``; ``info`` holds ``batch_norm_layers`` (adapted),
        ``images`` (used), ``batch_size``, ``batches``, ``seed`` and ``model`` (the path, or
        ``None`` for a model object).

    Raises:
        DataError: no batch-norm layer to adapt, images of the wrong shape for the model,
            or a model that cannot be loaded.
        ValueError: a bad ``batch_size``, ``max_images`` or ``seed``.
    """
    batch_size = _check_count("batch_size", batch_size)
    max_images = _check_count("max_images", max_images, optional=True)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be an int >= 0. Received: seed={seed!r}")
    images = _check_images(images)
    model, source = _load(model_or_path)
    name = source or getattr(model, "name", "model")
    if not batch_norm_layers(model, trainable_only=False):
        raise DataError(f"model {name!r} has no batch-norm layer to adapt")
    _check_shape(model, images, name)
    chosen = _Shuffled(images, np.random.default_rng(seed).permutation(len(images))[:max_images])
    count = adapt_batch_norm(model, chosen, batch_size=batch_size)
    info = {
        "model": source,
        "batch_norm_layers": count,
        "images": int(len(chosen)),
        "batch_size": batch_size,
        "batches": max(1, len(chosen) // batch_size),
        "seed": int(seed),
    }
    return model, info


def _check_shape(model: keras.Model, images: np.ndarray, name: str) -> None:
    try:
        expected = tuple(model.input_shape[1:])
    except (AttributeError, ValueError):
        return
    got = tuple(images.shape[1:])
    if len(expected) != len(got) or any(e is not None and e != g for e, g in zip(expected, got, strict=True)):
        raise DataError(
            f"the images do not fit model {name!r}: it takes {expected}. Received: images of shape {got}"
        )


class _Shuffled:
    """``images[order]`` read batch by batch (a large dataset is never copied as a whole)."""

    def __init__(self, images: np.ndarray, order: np.ndarray) -> None:
        self.images, self.order = images, order

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, index: slice) -> np.ndarray:
        return self.images[np.sort(self.order[index])]
