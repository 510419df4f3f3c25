"""Precise batch norm: re-estimate batch-norm statistics on clean training images.

During training, a batch-norm layer's moving mean and variance follow the *augmented*
batches (brightness, contrast, colour jitter, CutMix...) with an exponential average over
the last few dozen steps. At inference the images are not augmented, so the statistics do
not match what the layer sees, and validation accuracy swings from epoch to epoch. On pbc96
with the compact ResNet and the light policy (2-core CPU, 14 epochs): validation accuracy
0.870 with the moving statistics, 0.942 after re-estimating them on 3,840 clean training
images, with the same weights (``docs/training.md``).

:func:`recalibrate_batch_norm` replaces the statistics of every *trainable* batch-norm layer
of a model by their plain average over ``batches`` batches of images run in training mode
(the "precise BN" of Wu & Johnson, *Rethinking "Batch" in BatchNorm*, 2021), with every
dropout layer switched off meanwhile: in training mode dropout changes the variance a
later batch-norm layer sees, so statistics gathered with it do not match inference (the
"variance shift" of Li et al., *Understanding the Disharmony between Dropout and Batch
Normalization*, 2019); the report's ``network4`` (dropout after each block, batch norm in
the next) is the case in point (``docs/training.md``). Frozen layers
(a fine-tuned backbone's pretrained statistics) are left alone: Keras runs them in
inference mode (``include_frozen=True`` recalibrates them too: test-time adaptation,
:mod:`cellkit.adapt`). :class:`PreciseBatchNorm` does it before every validation, so the best
checkpoint is chosen, and saved, with calibrated statistics.

Example:
    >>> import keras, numpy as np
    >>> inp = keras.Input((8, 8, 3))
    >>> out = keras.layers.BatchNormalization()(keras.layers.Conv2D(4, 3)(inp))
    >>> model = keras.Model(inp, out)
    >>> x = np.random.default_rng(0).normal(5.0, 2.0, (64, 8, 8, 3)).astype("float32")
    >>> recalibrate_batch_norm(model, x, batch_size=16)
    1
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import keras
import numpy as np

__all__ = ["PreciseBatchNorm", "batch_norm_layers", "dropout_layers", "recalibrate_batch_norm"]


def batch_norm_layers(model: keras.layers.Layer, trainable_only: bool = True) -> list[keras.layers.BatchNormalization]:
    """Every ``BatchNormalization`` layer inside ``model`` (nested models included)."""
    found = [layer for layer in _walk_unique(model) if isinstance(layer, keras.layers.BatchNormalization)]
    return [layer for layer in found if layer.trainable or not trainable_only]


def _walk_unique(model: keras.layers.Layer) -> list[Any]:
    """``model`` and every layer nested in it, each once."""

    def walk(layer: Any) -> Iterator[Any]:
        yield layer
        for child in getattr(layer, "layers", ()):
            yield from walk(child)

    return list({id(layer): layer for layer in walk(model)}.values())


#: Layers that add noise in training mode through a ``rate`` (``SpatialDropout*`` are ``Dropout``).
_DROPOUT_TYPES = (keras.layers.Dropout, keras.layers.GaussianDropout, keras.layers.AlphaDropout)


def dropout_layers(model: keras.layers.Layer) -> list[keras.layers.Layer]:
    """Every dropout-like layer inside ``model`` (nested models included)."""
    return [layer for layer in _walk_unique(model) if isinstance(layer, _DROPOUT_TYPES)]


def recalibrate_batch_norm(
    model: keras.Model, images: np.ndarray, batch_size: int = 64, include_frozen: bool = False
) -> int:
    """Set each trainable batch-norm layer's statistics to their average over ``images``.

    Args:
        model: the inference model (no augmentation layers: the point is clean images).
        images: ``(n, h, w, c)`` images as the model takes them (0-255 uint8 or float);
            ``n // batch_size`` full batches are used (at least one).
        batch_size: images per forward pass; batch statistics are per batch, as in training.
        include_frozen: also recalibrate the frozen (``trainable=False``) batch-norm layers:
            they are made trainable while the statistics are gathered, then frozen again
            (test-time adaptation, :mod:`cellkit.adapt`). Default: frozen layers are left alone.

    Returns:
        The number of batch-norm layers recalibrated (0: nothing to do, model unchanged).
    """
    layers = batch_norm_layers(model, trainable_only=not include_frozen)
    if not layers:
        return 0
    n_batches = max(1, len(images) // batch_size)
    momenta = [layer.momentum for layer in layers]
    frozen = [layer for layer in layers if not layer.trainable]
    dropouts = dropout_layers(model)
    rates = [layer.rate for layer in dropouts]
    try:
        for layer in frozen:
            layer.trainable = True  # Keras runs a frozen batch norm in inference mode
        for layer in dropouts:
            layer.rate = 0.0  # the statistics inference will see: no dropout noise
        for k in range(n_batches):
            for layer in layers:
                layer.momentum = k / (k + 1)  # moving = cumulative mean of the batch statistics
            batch = np.asarray(images[k * batch_size:(k + 1) * batch_size], dtype="float32")
            model(batch, training=True)
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum
        for layer, rate in zip(dropouts, rates, strict=True):
            layer.rate = rate
        for layer in frozen:
            layer.trainable = False
    return len(layers)


class PreciseBatchNorm(keras.callbacks.Callback):
    """Recalibrate ``target``'s batch norm on clean training images before each validation.

    Args:
        target: the inference model (it shares its weights with the model being fitted).
        images: the dataset's images (uint8, never copied as a whole).
        indices: training indices to draw from.
        batches: batches of ``batch_size`` images used (a fixed, seeded choice).
        batch_size: images per batch.
        seed: seeds the choice of images.
    """

    def __init__(
        self, target: keras.Model, images: np.ndarray, indices: np.ndarray, batches: int, batch_size: int = 64,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if isinstance(batches, bool) or not isinstance(batches, int) or batches < 1:
            raise ValueError(f"batches must be an int >= 1. Received: batches={batches!r}")
        self.target = target
        self.images = images
        take = min(len(indices), batches * batch_size)
        # shuffled, not sorted: a batch of one class would understate the variance
        self.indices = np.random.default_rng(seed).choice(np.asarray(indices), size=take, replace=False)
        self.batch_size = int(batch_size)

    def recalibrate(self) -> int:
        """Recalibrate now; returns the number of batch-norm layers updated."""
        return recalibrate_batch_norm(self.target, self.images[self.indices], self.batch_size)

    def on_test_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.recalibrate()
