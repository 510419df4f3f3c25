"""``compact_resnet``: a small ResNet designed for 96x96 microscopy, trained from scratch.

Blood-cell classes differ by fine detail (granules, nucleus texture) rather than by global
shape, so the network keeps resolution early and stays small enough to train on a CPU:

* stem: 3x3 convolution, 32 filters, stride 2 (96 -> 48), batch norm, ReLU;
* three stages of basic residual blocks (two 3x3 convolutions with batch norm, identity
  shortcut, or a strided 1x1 convolution + batch norm when the shape changes), with
  64, 128 and 256 channels, each starting with a stride-2 block (48 -> 24 -> 12 -> 6);
  blocks per stage ``(2, 2, 1)``;
* output: the 6x6x256 feature map (the head pools it). About 1.58 M parameters.

Inputs are 0-255 pixel values, rescaled to [0, 1] inside the model.

Example:
    >>> model = compact_resnet((96, 96, 3))
    >>> model.output.shape
    (None, 6, 6, 256)
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from cellkit.layers.batch_norm import FusedBatchNormalization
from cellkit.zoo.preprocessing import preprocessing_layers
from cellkit.zoo.spec import BackboneSpec

__all__ = ["SPECS", "compact_resnet"]


#: Batch-norm momentum: PyTorch's default (0.1 there, 0.9 here). Keras' 0.99 lags badly in the
#: short from-scratch runs this network is meant for (validation accuracy near chance for epochs).
BN_MOMENTUM = 0.9


def _conv_bn(x, filters: int, kernel: int, stride: int, name: str, relu: bool = True):
    x = keras.layers.Conv2D(
        filters,
        kernel,
        strides=stride,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        name=f"{name}_conv",
    )(x)
    x = FusedBatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    if relu:
        x = keras.layers.Activation("relu", name=f"{name}_relu")(x)
    return x


def _basic_block(x, filters: int, stride: int, name: str):
    shortcut = x
    y = _conv_bn(x, filters, 3, stride, f"{name}_1")
    y = _conv_bn(y, filters, 3, 1, f"{name}_2", relu=False)
    if stride != 1 or x.shape[-1] != filters:
        shortcut = _conv_bn(x, filters, 1, stride, f"{name}_shortcut", relu=False)
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return keras.layers.Activation("relu", name=f"{name}_out")(y)


def compact_resnet(
    input_shape: tuple[int, int, int],
    weights: str | None = None,
    *,
    stem_filters: int = 32,
    widths: Sequence[int] = (64, 128, 256),
    blocks: Sequence[int] = (2, 2, 1),
    name: str = "compact_resnet",
) -> keras.Model:
    """Build the compact ResNet feature extractor (see the module docstring).

    Args:
        input_shape: ``(h, w, c)`` of the 0-255 input; at least 16x16.
        weights: must be ``None``: the network is meant to be trained from scratch.
        stem_filters: filters of the stride-2 stem convolution.
        widths: channels of each stage; each stage halves the resolution.
        blocks: basic blocks per stage (same length as ``widths``).
    """
    if weights is not None:
        raise ValueError(f"compact_resnet has no pretrained weights. Received: weights={weights!r}")
    if len(widths) != len(blocks) or not all(b >= 1 for b in blocks):
        raise ValueError(
            "widths and blocks must have the same length and every stage at least one block. "
            f"Received: widths={tuple(widths)!r}, blocks={tuple(blocks)!r}"
        )
    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    for layer in preprocessing_layers("[0,1]", input_shape[-1]):
        x = layer(x)
    x = _conv_bn(x, stem_filters, 3, 2, "stem")
    for s, (width, count) in enumerate(zip(widths, blocks, strict=True), start=1):
        for b in range(count):
            x = _basic_block(x, width, 2 if b == 0 else 1, f"stage{s}_block{b + 1}")
    return keras.Model(inputs, x, name=name)


def _build(input_shape: tuple[int, int, int], weights: str | None = None) -> keras.Model:
    """Build ``compact_resnet`` with its default configuration."""
    return compact_resnet(input_shape, weights)


SPECS: tuple[BackboneSpec, ...] = (
    BackboneSpec(
        name="compact_resnet",
        family="resnet",
        builder=_build,
        preprocessing="[0,1]",
        min_input_size=16,
        num_params=1_580_768,
        description="small ResNet for 96x96 microscopy (stem 32, stages 64-128-256); trains from scratch on a CPU",
    ),
)
