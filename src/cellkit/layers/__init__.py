"""Serializable Keras 3 high-pass filter layers (``keras.ops`` only; any backend).

Fixed :class:`LaplacianFilter`, :class:`SobelMagnitude`, :class:`DifferenceOfGaussians` and
a trainable zero-sum :class:`LearnableHighPass`, created by name with
:func:`high_pass_layer`; the stain/illumination normalisation layers
:class:`ReinhardNormalization`, :class:`GrayWorldNormalization` and
:class:`MacenkoNormalization`, created by name with :func:`normalization_layer`; and
:class:`FusedBatchNormalization` (Keras' batch norm, trained with TensorFlow's fused
kernel on that backend) and :class:`AdaptiveBatchNormalization` (batch norm that adapts to
each batch at prediction time). They are registered under the ``"cellkit"`` package, so a saved
``.keras`` model loads back with ``safe_mode=True`` once ``cellkit.layers`` is imported.

Example:
    >>> import keras
    >>> from cellkit.layers import high_pass_layer
    >>> inputs = keras.Input((96, 96, 3))
    >>> high_pass_layer("laplacian", keep_input="concat")(inputs).shape
    (None, 96, 96, 6)
"""

from cellkit.layers.batch_norm import AdaptiveBatchNormalization, FusedBatchNormalization
from cellkit.layers.factory import HIGH_PASS_LAYERS, high_pass_layer
from cellkit.layers.high_pass import (
    KEEP_INPUT,
    MODES,
    DifferenceOfGaussians,
    HighPassFilter,
    LaplacianFilter,
    LearnableHighPass,
    SobelMagnitude,
)
from cellkit.layers.stain_norm import (
    NORMALIZATION_LAYERS,
    GrayWorldNormalization,
    MacenkoNormalization,
    ReinhardNormalization,
    normalization_layer,
)

__all__ = [
    "HIGH_PASS_LAYERS",
    "KEEP_INPUT",
    "MODES",
    "NORMALIZATION_LAYERS",
    "AdaptiveBatchNormalization",
    "DifferenceOfGaussians",
    "FusedBatchNormalization",
    "GrayWorldNormalization",
    "HighPassFilter",
    "LaplacianFilter",
    "LearnableHighPass",
    "MacenkoNormalization",
    "ReinhardNormalization",
    "SobelMagnitude",
    "high_pass_layer",
    "normalization_layer",
]
