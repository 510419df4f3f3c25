"""What every random augmentation layer of :mod:`cellkit.augment` shares: a seed, training-only randomness.

Private: :mod:`cellkit.augment.layers` and :mod:`cellkit.augment.acquisition` build on it.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


def _check_range(name: str, value: float, low: float, high: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a number in [{low}, {high}]. Received: {name}={value!r}") from None
    if not low <= v <= high:
        raise ValueError(f"`{name}` must be in [{low}, {high}]. Received: {name}={value!r}")
    return v


class _RandomLayer(keras.layers.Layer):
    """Base: a seed, a seed generator, identity unless ``training``; shape-preserving."""

    def __init__(self, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training: bool = False):  # noqa: ANN001, ANN201
        if not training:
            return inputs
        return self.augment(ops.cast(inputs, self.compute_dtype))

    def augment(self, images):  # noqa: ANN001, ANN201
        raise NotImplementedError

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "seed": self.seed}


def _batch_size(images):  # noqa: ANN001, ANN202
    return ops.shape(images)[0]
