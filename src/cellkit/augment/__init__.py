"""Training-time augmentation: Keras policy layers, CutMix/MixUp, label smoothing.

The ``robust`` training recipe that combines them is a preset of :mod:`cellkit.train.presets`
(``robust.toml``).

Policies simulate only the corruption families of
:data:`cellkit.corrupt.suite.AUGMENTATION_FAMILIES`, so that robustness measured on
:data:`~cellkit.corrupt.suite.EVALUATION_FAMILIES` is measured on shifts the model never saw.

Example:
    >>> import keras
    >>> from cellkit.augment import augmentation_layer
    >>> inputs = keras.Input((96, 96, 3))
    >>> x = augmentation_layer("light", seed=0)(inputs)
    >>> outputs = keras.layers.Dense(8, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    >>> model = keras.Model(inputs, outputs)
"""

from cellkit.augment.acquisition import (
    RandomBlots,
    RandomErasing,
    RandomExposure,
    RandomFading,
    RandomGaussianNoise,
    RandomSensorNoise,
)
from cellkit.augment.layers import (
    RandomAffine,
    RandomApply,
    RandomBlur,
    RandomChannelGain,
    RandomChromaBlur,
    RandomHueSaturation,
    RandomRot90,
)
from cellkit.augment.mix import MIX_METHODS, mix_batch, smooth_labels
from cellkit.augment.policies import (
    POLICIES,
    POLICY_FAMILIES,
    Augmentation,
    augmentation_layer,
    describe_policy,
)

__all__ = [
    "MIX_METHODS",
    "POLICIES",
    "POLICY_FAMILIES",
    "Augmentation",
    "RandomAffine",
    "RandomApply",
    "RandomBlots",
    "RandomBlur",
    "RandomChannelGain",
    "RandomChromaBlur",
    "RandomErasing",
    "RandomExposure",
    "RandomFading",
    "RandomGaussianNoise",
    "RandomHueSaturation",
    "RandomRot90",
    "RandomSensorNoise",
    "augmentation_layer",
    "describe_policy",
    "mix_batch",
    "smooth_labels",
]
