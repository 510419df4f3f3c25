"""The report's simple CNNs (its Table 1) as one configurable builder.

The report progressively modifies one small network; each registered variant adds to the
previous one:

* ``baseline``: two blocks, each one 3x3 convolution (32, then 64 filters), an activation
  and 2x2 max-pooling. (The report's text says "softmax activation" inside the blocks; we
  read that as a slip and use ReLU, the activation such blocks use.)
* *Network 1* is ``baseline`` trained on the filtered data set: a choice of data, not of
  architecture (``cellkit clean`` produces the filtered set), so it is not registered.
* ``network2``: ``baseline`` with a resizing layer to 32x32 before the convolutions.
* ``network3``: ``network2`` plus LeCun-normal initialisation and L2 weight regularisation.
  (The report's scores for networks 3 and 4 stay at network 2's level, which suggests the
  resize was kept; call :func:`simple_cnn` with ``resize_to=None`` to drop it.)
* ``network4``: ``network3`` plus batch normalisation after each convolution and dropout
  after each block.

Inputs are 0-255 pixel values, rescaled to [0, 1] inside the model; the output is the
feature map after the second block (the classification head pools it).

Example:
    >>> model = simple_cnn((96, 96, 3))
    >>> model.output.shape
    (None, 24, 24, 64)
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from cellkit.layers.batch_norm import FusedBatchNormalization
from cellkit.zoo.preprocessing import preprocessing_layers
from cellkit.zoo.spec import BackboneSpec

__all__ = ["SPECS", "simple_cnn"]


def simple_cnn(
    input_shape: tuple[int, int, int],
    weights: str | None = None,
    *,
    filters: Sequence[int] = (32, 64),
    kernel_size: int = 3,
    activation: str = "relu",
    resize_to: int | None = None,
    lecun_l2: float | None = None,
    batch_norm: bool = False,
    dropout: float = 0.0,
    name: str = "simple_cnn",
) -> keras.Model:
    """Blocks of one convolution + activation + 2x2 max-pooling, one block per ``filters`` entry.

    Args:
        input_shape: ``(h, w, c)`` of the 0-255 input.
        weights: must be ``None``: these networks have no pretrained weights.
        resize_to: resize the input to ``resize_to x resize_to`` first (network 2).
        lecun_l2: LeCun-normal kernel initialisation and L2 regularisation of this strength
            on the kernels (network 3); ``None`` for Glorot-uniform without regularisation.
        batch_norm: batch normalisation between each convolution and its activation.
        dropout: dropout rate after each block (0 for none).
    """
    if weights is not None:
        raise ValueError(f"the simple CNNs have no pretrained weights. Received: weights={weights!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1). Received: dropout={dropout!r}")
    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    if resize_to is not None:
        x = keras.layers.Resizing(resize_to, resize_to, interpolation="bilinear", name="resize")(x, training=False)
    for layer in preprocessing_layers("[0,1]", input_shape[-1]):
        x = layer(x)
    conv_kwargs: dict[str, object] = {}
    if lecun_l2 is not None:
        conv_kwargs = {
            "kernel_initializer": "lecun_normal",
            "kernel_regularizer": keras.regularizers.L2(lecun_l2),
        }
    for i, n in enumerate(filters, start=1):
        x = keras.layers.Conv2D(
            n, kernel_size, padding="same", use_bias=not batch_norm, name=f"block{i}_conv", **conv_kwargs
        )(x)
        if batch_norm:
            x = FusedBatchNormalization(name=f"block{i}_bn")(x)
        x = keras.layers.Activation(activation, name=f"block{i}_{activation}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"block{i}_dropout")(x)
    return keras.Model(inputs, x, name=name)


def _variant(name: str, **options: object):
    def build(input_shape: tuple[int, int, int], weights: str | None = None) -> keras.Model:
        return simple_cnn(input_shape, weights, name=name, **options)  # type: ignore[arg-type]

    build.__name__ = f"build_{name}"
    build.__doc__ = f"Build the report's ``{name}`` feature extractor (see :func:`simple_cnn`)."
    return build


_L2 = 1e-4
_DROPOUT = 0.25

SPECS: tuple[BackboneSpec, ...] = (
    BackboneSpec(
        name="baseline",
        family="simple_cnn",
        builder=_variant("baseline"),
        preprocessing="[0,1]",
        min_input_size=4,
        num_params=19_392,
        description="report's baseline: 2 x (3x3 conv + ReLU + max-pool), 32/64 filters",
    ),
    BackboneSpec(
        name="network2",
        family="simple_cnn",
        builder=_variant("network2", resize_to=32),
        preprocessing="[0,1]",
        min_input_size=1,
        num_params=19_392,
        description="report's network 2: baseline after resizing the input to 32x32",
    ),
    BackboneSpec(
        name="network3",
        family="simple_cnn",
        builder=_variant("network3", resize_to=32, lecun_l2=_L2),
        preprocessing="[0,1]",
        min_input_size=1,
        num_params=19_392,
        description=f"report's network 3: network 2 + LeCun-normal init + L2 ({_L2:g})",
    ),
    BackboneSpec(
        name="network4",
        family="simple_cnn",
        builder=_variant("network4", resize_to=32, lecun_l2=_L2, batch_norm=True, dropout=_DROPOUT),
        preprocessing="[0,1]",
        min_input_size=1,
        num_params=19_680,
        description=f"report's network 4: network 3 + batch norm + dropout ({_DROPOUT:g})",
    ),
)
