"""cellkit-mobilenet: MobileNetV2 backbones for cellkit's zoo, as a plugin.

cellkit finds this module through the entry point ``mobilenet = "cellkit_mobilenet"`` in
the ``cellkit`` group (see ``pyproject.toml``) and calls its hook.

Example:
    >>> from cellkit.zoo import build_classifier  # doctest: +SKIP
    >>> build_classifier("mobilenetv2").output.shape  # doctest: +SKIP
    (None, 8)
"""

from __future__ import annotations

import keras

from cellkit.plugins import hookimpl
from cellkit.zoo import BackboneSpec

__version__ = "0.1.0"
__all__ = ["build_mobilenetv2", "cellkit_register_backbones"]


def build_mobilenetv2(
    input_shape: tuple[int, int, int], weights: str | None = None, *, alpha: float = 1.0
) -> keras.Model:
    """MobileNetV2 without its top: 0-255 images in, the last feature map out.

    The input is mapped to [-1, 1] inside the model (what MobileNetV2's ImageNet weights
    expect); inputs smaller than 32x32 are upsampled to 32x32 first.
    """
    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    h, w, _ = input_shape
    if min(h, w) < 32:
        x = keras.layers.Resizing(max(h, 32), max(w, 32), name="upsample")(x, training=False)
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="to_minus1_1")(x)
    base = keras.applications.MobileNetV2(
        include_top=False, weights=weights, input_shape=tuple(x.shape[1:]), alpha=alpha
    )
    return keras.Model(inputs, base(x), name=f"mobilenetv2_{alpha:g}")


def _variant(alpha: float):
    def build(input_shape: tuple[int, int, int], weights: str | None = None) -> keras.Model:
        return build_mobilenetv2(input_shape, weights, alpha=alpha)

    return build


def _weights_file(alpha: float, rows: int = 96) -> str:
    # The file keras.applications.MobileNetV2 caches in ~/.keras/models for 96x96 inputs.
    return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{rows}_no_top.h5"


_SOURCE = "ImageNet-1k (96x96 variant), keras.applications download (cached in ~/.keras/models)"


@hookimpl
def cellkit_register_backbones() -> list[BackboneSpec]:
    """MobileNetV2 at width multipliers 1.0 and 0.35."""
    return [
        BackboneSpec(
            name="mobilenetv2",
            family="mobilenet",
            builder=_variant(1.0),
            preprocessing="[-1,1]",
            min_input_size=8,
            weights={"imagenet": _SOURCE},
            weight_files={"imagenet": _weights_file(1.0)},
            num_params=2_257_984,
            description="MobileNetV2, width 1.0 (from the cellkit-mobilenet plugin)",
        ),
        BackboneSpec(
            name="mobilenetv2_035",
            family="mobilenet",
            builder=_variant(0.35),
            preprocessing="[-1,1]",
            min_input_size=8,
            weights={"imagenet": _SOURCE},
            weight_files={"imagenet": _weights_file(0.35)},
            num_params=410_208,
            description="MobileNetV2, width 0.35 (from the cellkit-mobilenet plugin)",
        ),
    ]
