"""Keras layers that map 0-255 pixel values to what a backbone expects.

Built from stock Keras layers (``Rescaling``, ``Normalization``) so that a model carrying
its preprocessing serialises without custom objects and runs on every Keras backend. The
modes are those of :data:`cellkit.zoo.spec.PREPROCESSING_MODES` and match
``keras.applications.imagenet_utils.preprocess_input``'s ``tf`` and ``torch`` modes.

Example:
    >>> import numpy as np
    >>> layers = preprocessing_layers("[-1,1]")
    >>> x = np.array([[[[0.0, 127.5, 255.0]]]], dtype="float32")
    >>> np.asarray(layers[0](x)).round(3).tolist()
    [[[[-1.0, 0.0, 1.0]]]]
"""

from __future__ import annotations

import keras

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "preprocessing_layers"]

#: ImageNet RGB channel means and standard deviations in the [0, 1] range (torch mode).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def preprocessing_layers(
    mode: str, channels: int = 3, name: str = "preprocessing"
) -> list[keras.layers.Layer]:
    """The layers applying preprocessing ``mode`` to 0-255 inputs with ``channels`` channels.

    ``"[0,1]"``: ``x / 255``; ``"[-1,1]"``: ``x / 127.5 - 1``; ``"imagenet_torch"``:
    ``x / 255`` then ``(x - mean) / std`` per RGB channel (3 channels only).
    """
    if mode == "[0,1]":
        return [keras.layers.Rescaling(1.0 / 255.0, name=f"{name}_rescale")]
    if mode == "[-1,1]":
        return [keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name=f"{name}_rescale")]
    if mode == "imagenet_torch":
        if channels != 3:
            raise ValueError(
                "imagenet_torch preprocessing normalises the three RGB channels. "
                f"Received: channels={channels!r}"
            )
        return [
            keras.layers.Rescaling(1.0 / 255.0, name=f"{name}_rescale"),
            keras.layers.Normalization(
                mean=list(IMAGENET_MEAN),
                variance=[s**2 for s in IMAGENET_STD],
                name=f"{name}_normalize",
            ),
        ]
    raise ValueError(f"mode must be one of '[0,1]', '[-1,1]', 'imagenet_torch'. Received: mode={mode!r}")
