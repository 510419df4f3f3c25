"""The one backend-dependent part of Grad-CAM: ``d(class score) / d(feature map)``.

:func:`class_score_gradients` differentiates ``sum_i score[i, classes[i]]`` of the head
``post`` (the part of a classifier after its last feature map; see
:func:`cellkit.inference.saliency.feature_split`) with respect to the feature maps, with
TensorFlow's ``GradientTape``, JAX's ``jax.grad`` of ``stateless_call`` or PyTorch's
autograd, whichever backend Keras runs on.

Example:
    >>> import keras, numpy as np
    >>> post = keras.Sequential([keras.Input((2, 2, 3)), keras.layers.GlobalAveragePooling2D(),
    ...                          keras.layers.Dense(2)])
    >>> class_score_gradients(post, np.ones((4, 2, 2, 3), np.float32), np.array([0, 1, 0, 1])).shape
    (4, 2, 2, 3)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from cellkit.errors import DataError

__all__ = ["class_score_gradients", "gradient_function"]



def _tensorflow_gradients(post: keras.Model, features: np.ndarray, classes: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    f = tf.convert_to_tensor(features)
    with tf.GradientTape() as tape:
        tape.watch(f)
        scores = tf.cast(post(f, training=False), tf.float32)
        total = tf.reduce_sum(tf.gather(scores, tf.constant(classes), axis=1, batch_dims=1))
    return tape.gradient(total, f).numpy()


def _jax_gradients(post: keras.Model, features: np.ndarray, classes: np.ndarray) -> np.ndarray:
    import jax
    import jax.numpy as jnp

    trainable = [v.value for v in post.trainable_variables]
    non_trainable = [v.value for v in post.non_trainable_variables]
    index = jnp.asarray(classes)[:, None]

    def total(f: Any) -> Any:
        scores, _ = post.stateless_call(trainable, non_trainable, f, training=False)
        return jnp.sum(jnp.take_along_axis(scores.astype(jnp.float32), index, axis=1))

    return np.asarray(jax.grad(total)(jnp.asarray(features)))


def _torch_gradients(post: keras.Model, features: np.ndarray, classes: np.ndarray) -> np.ndarray:
    import torch

    f = keras.ops.convert_to_tensor(features).detach().requires_grad_(True)
    scores = post(f, training=False).float()
    total = scores.gather(1, torch.as_tensor(classes, device=scores.device)[:, None]).sum()
    (grad,) = torch.autograd.grad(total, f)
    return grad.detach().cpu().numpy()


_GRADIENTS: dict[str, Callable[[keras.Model, np.ndarray, np.ndarray], np.ndarray]] = {
    "tensorflow": _tensorflow_gradients, "jax": _jax_gradients, "torch": _torch_gradients,
}


def gradient_function() -> Callable[[keras.Model, np.ndarray, np.ndarray], np.ndarray]:
    backend = keras.backend.backend()
    if backend not in _GRADIENTS:
        raise DataError(f"Grad-CAM needs gradients, which the Keras backend {backend!r} does not give "
                        f"(expected KERAS_BACKEND one of {', '.join(_GRADIENTS)}; method='occlusion' needs none)")
    return _GRADIENTS[backend]


def class_score_gradients(post: keras.Model, features: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """``d sum_i score[i, classes[i]] / d features``, float32, the shape of ``features``."""
    return np.asarray(gradient_function()(post, features, classes.astype(np.int32)), np.float32)
