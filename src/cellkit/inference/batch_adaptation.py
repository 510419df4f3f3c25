"""A model that adapts to every batch it predicts: its batch norms blend the batch's statistics in.

``cellkit adapt`` re-estimates a model's batch-norm statistics once, on a folder of images
of the new microscope. A model deployed where no such folder exists -- the course's
evaluation server calls ``predict(X)`` on images nobody here has seen -- can adapt on the
batch it is given instead: :func:`with_batch_adaptation` returns a model whose every batch
norm (nested backbones, test-time-augmentation wrappers and ensemble members included) is a
:class:`cellkit.layers.AdaptiveBatchNormalization` with the same weights, blending the
training statistics (weighted as ``prior`` images) with the batch's (Schneider et al., 2020).
The other layers are shared with ``model``, not copied; ``model`` itself is not changed.
Predictions then depend on the batch: pass batches of tens of images or more, mixed classes
(batches read in class order, two or three classes each, cost a trained model 12.8 points on
clean images: ``docs/training.md``, "Adapting on each batch").

Example:
    >>> import keras, numpy as np
    >>> inp = keras.Input((8, 8, 3))
    >>> x = keras.layers.BatchNormalization()(keras.layers.Conv2D(4, 3)(inp))
    >>> model = keras.Model(inp, keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(x)))
    >>> adaptive = with_batch_adaptation(model, prior=16)
    >>> [type(layer).__name__ for layer in adaptive.layers][2]
    'AdaptiveBatchNormalization'
"""

from __future__ import annotations

from typing import Any

import keras

from cellkit.layers.batch_norm import AdaptiveBatchNormalization

__all__ = ["DEFAULT_PRIOR", "with_batch_adaptation"]

#: The weight of the training statistics, in images: Schneider et al.'s choice for batches of tens of images.
DEFAULT_PRIOR = 16.0


def _adaptive(layer: keras.layers.BatchNormalization, prior: float) -> AdaptiveBatchNormalization:
    config = {k: v for k, v in layer.get_config().items() if k != "prior"}
    config["name"] = f"{layer.name}_adaptive"
    adaptive = AdaptiveBatchNormalization.from_config({**config, "prior": prior})
    try:
        shape = tuple(layer.input.shape)
    except (AttributeError, ValueError):  # a layer never called in a graph: channels last, 4-D
        shape = (None, None, None, layer.moving_mean.shape[0])
    adaptive.build(shape)
    adaptive.set_weights(layer.get_weights())
    return adaptive


def with_batch_adaptation(model: keras.Model, prior: float = DEFAULT_PRIOR) -> keras.Model:
    """``model`` with each batch norm replaced by an :class:`AdaptiveBatchNormalization` (module docstring).

    Args:
        model: a functional or sequential Keras model (nested ones are walked).
        prior: the weight of the training statistics, in images (``>= 0``).

    Raises:
        ValueError: ``prior`` is not a number >= 0, or ``model`` holds no batch norm.
    """
    if isinstance(prior, bool) or not isinstance(prior, int | float) or not prior >= 0:
        raise ValueError(f"prior must be a number >= 0. Received: prior={prior!r}")
    found = []

    def clone(layer: Any) -> Any:
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer.name)
            return _adaptive(layer, float(prior))
        return layer

    adapted = keras.models.clone_model(model, clone_function=clone, recursive=True)
    if not found:
        raise ValueError(f"model {model.name!r} has no batch-norm layer to adapt")
    return adapted
