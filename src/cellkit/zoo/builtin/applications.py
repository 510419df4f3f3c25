"""``keras.applications`` backbones: the report's Table 2 plus three light ones.

Each is the application network without its top (``include_top=False``), wrapped so that it
takes 0-255 pixel values and applies the preprocessing its ImageNet weights were trained
with, inside the model:

=====================  =======================  ===================================================
name                   keras.applications       preprocessing
=====================  =======================  ===================================================
convnext_tiny/_small   ConvNeXtTiny/Small       imagenet_torch, by the network itself
                                                (``include_preprocessing=True``)
efficientnetv2_b0/_b3  EfficientNetV2B0/B3      imagenet_torch, by the network itself (B variants)
efficientnetv2_s/_m    EfficientNetV2S/M        [-1,1] (``x / 128 - 1``), by the network itself
densenet201            DenseNet201              imagenet_torch, by a cellkit layer (torch mode)
inception_resnet_v2    InceptionResNetV2        [-1,1], by a cellkit layer (tf mode)
resnet50v2             ResNet50V2               [-1,1], by a cellkit layer (tf mode)
mobilenetv3_small      MobileNetV3Small         [-1,1], by the network itself
=====================  =======================  ===================================================

All accept 96x96 inputs directly (InceptionResNetV2 needs at least 75x75, the others 32x32):
smaller inputs are upsampled inside the model (bilinear) to that minimum. ImageNet weights
(``weights="imagenet"``) come from ``keras.applications``, which downloads them on first use
into the Keras cache (``~/.keras/models``); nothing downloads with ``weights=None``.

Example:
    >>> spec = next(s for s in SPECS if s.name == "mobilenetv3_small")
    >>> spec.builder((96, 96, 3), None).output.shape
    (None, 3, 3, 576)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import keras

from cellkit.errors import CellkitError
from cellkit.zoo.preprocessing import preprocessing_layers
from cellkit.zoo.spec import BackboneSpec

__all__ = ["SPECS", "build_application"]

_SOURCE = "ImageNet-1k, keras.applications download (cached in ~/.keras/models)"


def build_application(
    application: str,
    input_shape: tuple[int, int, int],
    weights: str | None = None,
    *,
    preprocessing: str | None = None,
    native_min: int = 32,
    name: str | None = None,
    **options: object,
) -> keras.Model:
    """Wrap ``keras.applications.<application>`` as a 0-255 -> feature-map backbone.

    Args:
        application: attribute of ``keras.applications``, e.g. ``"DenseNet201"``.
        input_shape: ``(h, w, c)`` of the 0-255 input.
        weights: ``None`` or ``"imagenet"`` (passed to the application).
        preprocessing: mode applied by cellkit layers before the network (see
            :func:`cellkit.zoo.preprocessing.preprocessing_layers`), or ``None`` when the
            application preprocesses itself (``include_preprocessing=True`` in ``options``).
        native_min: the application's smallest accepted input side; smaller inputs are
            upsampled to it inside the model.
        name: name of the returned model (default: ``application`` lower-cased).
        options: extra keyword arguments of the application function.
    """
    if weights not in (None, "imagenet"):
        raise ValueError(f"weights must be None or 'imagenet'. Received: weights={weights!r}")
    factory = getattr(keras.applications, application)
    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    h, w, c = input_shape
    if min(h, w) < native_min:
        x = keras.layers.Resizing(
            max(h, native_min), max(w, native_min), interpolation="bilinear", name="upsample"
        )(x, training=False)  # Resizing defaults to training=True and would hand it on to the BNs
    if preprocessing is not None:
        for layer in preprocessing_layers(preprocessing, c):
            x = layer(x)
    with warnings.catch_warnings():
        # MobileNetV3 warns that weights made at 224x224 are loaded for another size: expected here.
        warnings.filterwarnings(
            "ignore", message=r".*Weights for input shape \(224, 224\)", category=UserWarning
        )
        try:
            base = factory(include_top=False, weights=weights, input_shape=tuple(x.shape[1:]), **options)
        except Exception as exc:  # keras.utils.get_file raises a bare Exception when offline
            if weights is None or "URL fetch failure" not in str(exc):
                raise
            raise CellkitError(
                f"cannot download the ImageNet weights of {application} (no network here?): {exc}. "
                "Copy the weight file into the Keras cache (~/.keras/models) on a machine that has it, "
                "or train without them (--weights none)"
            ) from None
    return keras.Model(inputs, base(x), name=name or application.lower())


@dataclass(frozen=True)
class _App:
    name: str
    application: str
    family: str
    preprocessing: str
    included: bool
    weight_file: str
    num_params: int
    description: str
    native_min: int = 32
    options: dict[str, object] = field(default_factory=dict)

    def build(self, input_shape: tuple[int, int, int], weights: str | None = None) -> keras.Model:
        channels = input_shape[-1]
        if channels != 3 and (weights is not None or self.preprocessing == "imagenet_torch"):
            why = (
                "ImageNet weights" if weights is not None else "its ImageNet normalisation (per RGB channel)"
            )
            raise ValueError(
                f"backbone {self.name!r} needs 3 input channels for {why}; a high-pass layer with "
                "keep_input='concat' gives 6 (use keep_input=None or 'add', or a backbone with "
                f"[0,1] or [-1,1] preprocessing). Received: input_shape={tuple(input_shape)!r}"
            )
        options = dict(self.options)
        if self.included:
            options["include_preprocessing"] = True
        return build_application(
            self.application,
            input_shape,
            weights,
            preprocessing=None if self.included else self.preprocessing,
            native_min=self.native_min,
            name=self.name,
            **options,
        )

    def spec(self) -> BackboneSpec:
        return BackboneSpec(
            name=self.name,
            family=self.family,
            builder=self.build,
            preprocessing=self.preprocessing,
            min_input_size=8,
            weights={"imagenet": _SOURCE},
            weight_files={"imagenet": self.weight_file},
            num_params=self.num_params,
            description=self.description,
        )


_APPS = (
    _App(
        "convnext_tiny",
        "ConvNeXtTiny",
        "convnext",
        "imagenet_torch",
        True,
        "convnext_tiny_notop.h5",
        27_820_128,
        "ConvNeXt-T (report Table 2: best single network, FT 1%)",
    ),
    _App(
        "convnext_small",
        "ConvNeXtSmall",
        "convnext",
        "imagenet_torch",
        True,
        "convnext_small_notop.h5",
        49_454_688,
        "ConvNeXt-S (report Table 2, FT 10%; ensemble member)",
    ),
    _App(
        "densenet201",
        "DenseNet201",
        "densenet",
        "imagenet_torch",
        False,
        "densenet201_weights_tf_dim_ordering_tf_kernels_notop.h5",
        18_321_984,
        "DenseNet-201 (report Table 2, FT 10%)",
    ),
    _App(
        "inception_resnet_v2",
        "InceptionResNetV2",
        "inception_resnet",
        "[-1,1]",
        False,
        "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
        54_336_736,
        "Inception-ResNet-v2 (report Table 2, FT 1%)",
        native_min=75,
    ),
    _App(
        "efficientnetv2_b0",
        "EfficientNetV2B0",
        "efficientnetv2",
        "imagenet_torch",
        True,
        "efficientnetv2-b0_notop.h5",
        5_919_312,
        "EfficientNetV2-B0 (light)",
    ),
    _App(
        "efficientnetv2_b3",
        "EfficientNetV2B3",
        "efficientnetv2",
        "imagenet_torch",
        True,
        "efficientnetv2-b3_notop.h5",
        12_930_622,
        "EfficientNetV2-B3 (report Table 2, FT 10%; ensemble member)",
    ),
    _App(
        "efficientnetv2_s",
        "EfficientNetV2S",
        "efficientnetv2",
        "[-1,1]",
        True,
        "efficientnetv2-s_notop.h5",
        20_331_360,
        "EfficientNetV2-S (report Table 2, FT 10%; ensemble member)",
    ),
    _App(
        "efficientnetv2_m",
        "EfficientNetV2M",
        "efficientnetv2",
        "[-1,1]",
        True,
        "efficientnetv2-m_notop.h5",
        53_150_388,
        "EfficientNetV2-M (report Table 2, FT 10%)",
    ),
    _App(
        "mobilenetv3_small",
        "MobileNetV3Small",
        "mobilenet",
        "[-1,1]",
        True,
        "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5",
        939_120,
        "MobileNetV3-Small (light)",
    ),
    _App(
        "resnet50v2",
        "ResNet50V2",
        "resnetv2",
        "[-1,1]",
        False,
        "resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
        23_564_800,
        "ResNet-50 v2 (light-ish)",
    ),
)

SPECS: tuple[BackboneSpec, ...] = tuple(app.spec() for app in _APPS)
