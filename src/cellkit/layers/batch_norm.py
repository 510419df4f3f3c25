"""``FusedBatchNormalization``: Keras' batch norm, trained with TensorFlow's fused kernel where it can be.

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

__all__ = ["FusedBatchNormalization"]


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
