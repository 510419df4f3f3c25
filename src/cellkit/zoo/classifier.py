"""``build_classifier``: raw uint8 images in, class probabilities out, preprocessing inside.

The model is ``image -> [normalisation layer] -> [high-pass layer] -> backbone -> head``:

* ``image``: raw RGB pixel values 0-255, uint8 or float (Keras casts to float32 on entry),
  so ``model.predict(dataset.images)`` just works;
* an optional stain/illumination normalisation layer on the raw 0-255 image, from
  :func:`cellkit.layers.normalization_layer` (``normalize="reinhard"``, ``"grayworld"`` or
  ``"macenko"``);
* an optional high-pass layer from :func:`cellkit.layers.high_pass_layer` (the report adds
  high-pass filters "in the model");
* ``backbone``: the registered feature extractor, as one nested layer named ``"backbone"``
  (what :func:`cellkit.zoo.fine_tune` and :func:`cellkit.zoo.freeze_backbone` act on); it
  carries its own preprocessing;
* the head of :class:`cellkit.zoo.HeadConfig`, ending in ``probabilities``: ``(n, num_classes)``
  softmax in float32.

Only stock Keras layers (and cellkit's registered high-pass and normalisation layers) are
used, so the model saves to ``.keras`` and loads back with ``safe_mode=True``.

Example:
    >>> import numpy as np
    >>> model = build_classifier("baseline", num_classes=8)
    >>> model.predict(np.zeros((2, 96, 96, 3), np.uint8), verbose=0).shape
    (2, 8)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras

from cellkit.plugins import PluginError
from cellkit.zoo.head import HeadConfig, apply_head
from cellkit.zoo.registry import check_backbone_options, get_backbone, load_weights
from cellkit.zoo.spec import BackboneSpec
from cellkit.zoo.weights import check_weights

__all__ = ["BACKBONE_LAYER", "build_classifier", "get_backbone_layer"]

#: Name of the nested backbone model inside a classifier.
BACKBONE_LAYER = "backbone"


def build_classifier(
    backbone: str,
    num_classes: int = 8,
    input_shape: tuple[int, int, int] | None = None,
    weights: str | Path | None = None,
    head: HeadConfig | Mapping[str, Any] | None = None,
    high_pass: str | Mapping[str, Any] | keras.layers.Layer | None = None,
    name: str | None = None,
    backbone_options: Mapping[str, Any] | None = None,
    normalize: str | None = None,
) -> keras.Model:
    """Build a classifier on the registered backbone ``backbone``.

    Args:
        backbone: a registered backbone name (``cellkit.zoo.list_backbones()``).
        num_classes: number of classes (>= 2); 8 for the PBC data.
        input_shape: ``(h, w, 3)`` of the raw images; default: the backbone's
            ``default_input_shape`` (``(96, 96, 3)`` for every built-in).
        weights: ``None`` (random initialisation); a pretrained tag of the backbone such as
            ``"imagenet"`` (backbone only; may download into ``~/.keras/models``); or the
            path of a ``.weights.h5`` file saved from a classifier built with the same
            arguments (``model.save_weights``), loaded into the whole model.
        head: a :class:`HeadConfig` or a dict of its fields; default ``HeadConfig()``.
        high_pass: ``None``; a :func:`cellkit.layers.high_pass_layer` name
            (``"laplacian"``, ``"sobel"``, ``"dog"``, ``"learnable"``); a dict
            ``{"name": ..., **options}``; or a Keras layer. Applied to the raw image before
            the backbone, which is built for the layer's output channels.
        name: model name; default ``"<backbone>_classifier"``.
        backbone_options: keyword arguments of the backbone's builder (backbone-specific,
            e.g. ``{"resize_to": 160}`` for the EfficientNet-Lite plugin); checked against
            the builder's signature before anything is built.
        normalize: ``None``, or a stain/illumination normalisation applied to the raw image
            first, before the high-pass layer and the backbone: ``"reinhard"``
            (:class:`cellkit.layers.ReinhardNormalization`), ``"grayworld"``
            (:class:`cellkit.layers.GrayWorldNormalization`) or ``"macenko"``
            (:class:`cellkit.layers.MacenkoNormalization`).

    Raises:
        UnknownBackboneError: ``backbone`` is not registered (lists close matches).
        ValueError: a bad argument (named in the message).
        FileNotFoundError: ``weights`` names a ``.weights.h5`` file that does not exist.
    """
    spec = get_backbone(backbone)
    shape = spec.check_input_shape(spec.default_input_shape if input_shape is None else input_shape)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2. Received: num_classes={num_classes!r}")
    head_config = HeadConfig.from_value(head)
    checked = check_weights(spec, weights)
    options = check_backbone_options(spec, backbone_options)
    normalization = None if normalize is None else _normalization(normalize)

    inputs = keras.Input(shape=shape, name="image")
    x = inputs
    if normalization is not None:
        x = normalization(x)
    if high_pass is not None:
        x = _high_pass(high_pass)(x)
    features_in = tuple(int(d) for d in x.shape[1:])
    bb = _backbone_model(spec, features_in, None if isinstance(checked, Path) else checked, options)
    outputs = apply_head(bb(x), num_classes, head_config)
    model = keras.Model(inputs, outputs, name=name or f"{spec.name}_classifier")
    if isinstance(checked, Path):
        load_weights(model, checked)
    return model


def get_backbone_layer(model: keras.Model) -> keras.Model:
    """The nested ``"backbone"`` model of a classifier made by :func:`build_classifier`."""
    try:
        layer = model.get_layer(BACKBONE_LAYER)
    except ValueError:
        layer = None
    if not isinstance(layer, keras.Model):
        raise ValueError(
            f"model {getattr(model, 'name', model)!r} has no nested model named {BACKBONE_LAYER!r}; "
            "build it with cellkit.zoo.build_classifier. "
            f"Received: model={getattr(model, 'name', model)!r}"
        )
    return layer


def _backbone_model(
    spec: BackboneSpec, input_shape: tuple[int, ...], weights: str | None, options: Mapping[str, Any]
) -> keras.Model:
    built = spec.builder(input_shape, weights, **options)
    if not isinstance(built, keras.Model):
        raise PluginError(
            f"the builder of backbone {spec.name!r} (plugin {spec.plugin!r}) returned "
            f"{type(built).__name__}, not a keras.Model"
        )
    try:
        inputs, outputs = built.inputs, built.outputs
    except (AttributeError, ValueError):
        inputs = outputs = None
    if inputs is None or outputs is None:  # a subclassed model: wrap it in a functional one
        tensor = keras.Input(shape=input_shape, name="image")
        return keras.Model(tensor, built(tensor), name=BACKBONE_LAYER)
    if len(inputs) != 1 or len(outputs) != 1:
        raise PluginError(
            f"the builder of backbone {spec.name!r} (plugin {spec.plugin!r}) returned a model with "
            f"{len(inputs)} inputs and {len(outputs)} outputs; expected one of each"
        )
    return keras.Model(inputs[0], outputs[0], name=BACKBONE_LAYER)


def _normalization(value: str) -> keras.layers.Layer:
    from cellkit.layers import NORMALIZATION_LAYERS, normalization_layer  # lazily: only when asked for

    if not isinstance(value, str) or value not in NORMALIZATION_LAYERS:
        raise ValueError(
            f"normalize must be None or one of {', '.join(map(repr, NORMALIZATION_LAYERS))}. "
            f"Received: normalize={value!r}"
        )
    return normalization_layer(value, name="normalize")


def _high_pass(value: str | Mapping[str, Any] | keras.layers.Layer) -> keras.layers.Layer:
    if isinstance(value, keras.layers.Layer):
        return value
    from cellkit.layers import high_pass_layer  # lazily: only when asked for

    if isinstance(value, str):
        return high_pass_layer(value)
    if isinstance(value, Mapping) and isinstance(value.get("name"), str):
        options = dict(value)
        return high_pass_layer(options.pop("name"), **options)
    raise ValueError(
        "high_pass must be None, a high-pass layer name, a dict with a 'name' key, or a Keras layer. "
        f"Received: high_pass={value!r}"
    )
