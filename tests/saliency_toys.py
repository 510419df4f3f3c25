"""A classifier whose answer and evidence are known, for the saliency tests (Grad-CAM, occlusion).

Its weights are set, not fitted: class 1 ("red") when the left half of the image holds red
pixels; the right half is cropped away, so covering it or any gradient there changes nothing.
"""

from __future__ import annotations

import keras
import numpy as np


def left_half_red_model(size: int = 32) -> keras.Model:
    """Class 1 ("red") when the left half of the image holds red pixels; the right half is never seen."""
    inp = keras.Input((size, size, 3), name="image")
    x = keras.layers.Rescaling(1 / 255)(inp)
    x = keras.layers.Cropping2D(((0, 0), (0, size // 2)))(x)
    x = keras.layers.ZeroPadding2D(((0, 0), (0, size // 2)))(x)
    redness = keras.layers.Conv2D(1, 1, activation="relu", name="redness")
    x = keras.layers.AveragePooling2D(4)(redness(x))  # an 8x8 feature map, as a backbone's
    logits = keras.layers.Dense(2, name="logits")
    out = keras.layers.Activation("softmax", name="probabilities")(logits(keras.layers.GlobalAveragePooling2D()(x)))
    model = keras.Model(inp, out, name="left_half_red")
    redness.set_weights([np.array([1.0, -0.5, -0.5], np.float32).reshape(1, 1, 3, 1), np.zeros(1, np.float32)])
    logits.set_weights([np.array([[0.0, 200.0]], np.float32), np.array([0.0, -4.0], np.float32)])
    return model
