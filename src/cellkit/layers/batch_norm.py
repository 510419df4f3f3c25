"""Batch norm variants: trained with TensorFlow's fused kernel; adapted at prediction time to each batch.

``FusedBatchNormalization`` is Keras' batch norm, trained with TensorFlow's fused kernel where it can be.

Keras 3's ``BatchNormalization`` computes a training step from separate ops: it casts the
activations to float32, takes the mean and the variance in two reductions, normalises,
scales and casts back, and automatic differentiation then builds the backward pass out of
as many elementwise ops again. TensorFlow has one fused kernel for all of it (oneDNN's on a
CPU; cuDNN's on a GPU), forward and backward. This subclass uses that kernel for the
training-mode call of channels-last 4-D activations on the TensorFlow backend and is
Keras' layer everywhere else (inference, JAX, PyTorch, masks, renorm, synchronized batch
norm, other ranks): the same weights, the same moving-statistics update (the batch's
biased variance, as Keras), the same outputs up to rounding.

A ``.keras`` file holding it reloads with ``safe_mode=True`` once ``cellkit.layers`` is
imported (the layer is registered under the ``"cellkit"`` package); its weights are
interchangeable with ``keras.layers.BatchNormalization``'s.

``AdaptiveBatchNormalization`` normalises, at prediction time, with statistics blended from
the training data's and the batch's own (Schneider et al., *Improving robustness against
common corruptions by covariate shift adaptation*, NeurIPS 2020): a model meeting a new
microscope adapts to each batch it is given, with no separate adaptation step. The blend
weights the training statistics as ``prior`` images and the batch as its number of images.

Example:
    >>> import numpy as np
    >>> bn = FusedBatchNormalization(momentum=0.9)
    >>> x = np.random.default_rng(0).normal(3.0, 2.0, (8, 4, 4, 5)).astype("float32")
    >>> y = np.asarray(bn(x, training=True))
    >>> bool(abs(y.mean()) < 1e-4), bool(abs(y.std() - 1.0) < 1e-2)
    (True, True)
"""

from __future__ import annotations

import importlib

import keras
from keras import ops

__all__ = ["AdaptiveBatchNormalization", "FusedBatchNormalization"]


@keras.saving.register_keras_serializable(package="cellkit")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` whose TensorFlow training step runs one fused kernel (module docstring)."""

    def call(self, inputs, training=None, mask=None):  # noqa: ANN001, ANN201
        if training and self.trainable and self._fusable(inputs, mask):
            return self._fused_training_call(inputs)
        return super().call(inputs, training=training, mask=mask)

    def _fusable(self, inputs, mask) -> bool:  # noqa: ANN001
        return (
            keras.backend.backend() == "tensorflow"
            and mask is None
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
            and not self.renorm
            and not self.synchronized
        )

    def _fused_training_call(self, inputs):  # noqa: ANN001, ANN202
        tf = importlib.import_module("tensorflow")  # TensorFlow backend only (see _fusable)
        channels = inputs.shape[-1]
        scale = ops.cast(self.gamma, "float32") if self.scale else ops.ones((channels,), "float32")
        offset = ops.cast(self.beta, "float32") if self.center else ops.zeros((channels,), "float32")
        x = ops.cast(inputs, "float32") if inputs.dtype not in ("float32", "float16", "bfloat16") else inputs
        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            x, scale, offset, epsilon=self.epsilon, data_format="NHWC", is_training=True
        )[:3]
        # the kernel returns the Bessel-corrected variance for the moving average; Keras averages the biased one
        count = ops.cast(ops.prod(ops.shape(inputs)[:-1]), "float32")
        variance = variance * (count - 1.0) / ops.maximum(count, 2.0)
        momentum = self.momentum
        self.moving_mean.assign(
            ops.cast(self.moving_mean, "float32") * momentum + ops.stop_gradient(mean) * (1.0 - momentum)
        )
        self.moving_variance.assign(
            ops.cast(self.moving_variance, "float32") * momentum + ops.stop_gradient(variance) * (1.0 - momentum)
        )
        return ops.cast(outputs, self.compute_dtype)


@keras.saving.register_keras_serializable(package="cellkit")
class AdaptiveBatchNormalization(keras.layers.BatchNormalization):
    """Batch norm that, at prediction time, blends the moving statistics with the batch's (prior-weighted).

    With ``n`` images in the batch, the mean and variance used are
    ``(prior * moving + n * batch) / (prior + n)``; the batch's are taken over every axis but
    the channels' (its images, rows and columns). ``prior=0`` uses the batch alone; a large
    prior approaches plain batch norm. Training is Keras' batch norm, unchanged. Its weights
    are interchangeable with ``keras.layers.BatchNormalization``'s.

    Example:
        >>> import numpy as np
        >>> bn = AdaptiveBatchNormalization(prior=0.0)
        >>> x = np.random.default_rng(0).normal(5.0, 3.0, (16, 4, 4, 2)).astype("float32")
        >>> y = np.asarray(bn(x))  # moving statistics 0 and 1; the batch's are used instead
        >>> bool(abs(y.mean()) < 1e-3 and abs(y.std() - 1.0) < 1e-2)
        True
    """

    def __init__(self, prior: float = 16.0, **kwargs):  # noqa: ANN003
        super().__init__(**kwargs)
        if isinstance(prior, bool) or not isinstance(prior, int | float) or not prior >= 0:
            raise ValueError(f"prior must be a number >= 0. Received: prior={prior!r}")
        self.prior = float(prior)

    def call(self, inputs, training=None, mask=None):  # noqa: ANN001, ANN201
        if training or mask is not None:
            return super().call(inputs, training=training, mask=mask)
        axis = self.axis if self.axis >= 0 else len(inputs.shape) + self.axis
        reduce = [i for i in range(len(inputs.shape)) if i != axis]
        shape = [1] * len(inputs.shape)
        shape[axis] = inputs.shape[axis]
        x = ops.cast(inputs, "float32")
        batch_mean = ops.mean(x, axis=reduce)
        batch_var = ops.mean(ops.square(x - ops.reshape(batch_mean, shape)), axis=reduce)
        n = ops.cast(ops.shape(inputs)[0], "float32")
        weight = n / (n + self.prior)
        mean = ops.cast(self.moving_mean, "float32") * (1.0 - weight) + batch_mean * weight
        var = ops.cast(self.moving_variance, "float32") * (1.0 - weight) + batch_var * weight
        y = (x - ops.reshape(mean, shape)) * ops.reshape(ops.rsqrt(var + self.epsilon), shape)
        if self.scale:
            y = y * ops.reshape(ops.cast(self.gamma, "float32"), shape)
        if self.center:
            y = y + ops.reshape(ops.cast(self.beta, "float32"), shape)
        return ops.cast(y, self.compute_dtype)

    def get_config(self) -> dict:
        return {**super().get_config(), "prior": self.prior}
