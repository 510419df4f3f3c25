"""Test-time augmentation (TTA) as Keras layers that save inside a ``.keras`` file.

A classifier sees the same cell in several symmetric (and optionally colour-shifted) views
and its class probabilities are averaged over them. Blood cells have no preferred
orientation, so the eight symmetries of the square are free accuracy; mild colour views
average over the stain and white-balance differences between microscopes.

A TTA specification is a string ``"<views>[+color]"``:

- views: ``"flips"`` (identity, left-right, up-down, both: any image shape),
  ``"rot90"`` (the four quarter turns) or ``"d4"`` (all eight symmetries of the square);
  the last two need square images;
- ``+color`` adds, for every geometric view, two colour views with the saturation scaled by
  :data:`COLOR_FACTORS` around each pixel's grey level, clipped to the image's own value
  range (range-agnostic: it works for 0-255 and [0, 1] inputs alike, and leaves grey
  pixels unchanged).

:func:`with_tta` wraps a classifier into one model ``images -> averaged probabilities``;
:class:`TestTimeAugmentation` and :class:`ViewAverage` are the two layers it uses (the
ensemble of :mod:`cellkit.inference.ensemble` uses them too). Every view is computed with
``keras.ops``, so the model runs on every backend and an exported ``model.py`` (a traced
SavedModel) applies the same views.

Example:
    >>> import keras, numpy as np
    >>> inp = keras.Input((8, 8, 3))
    >>> clf = keras.Model(inp, keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(inp)))
    >>> model = with_tta(clf, "d4+color")
    >>> model.predict(np.zeros((3, 8, 8, 3)), verbose=0).shape
    (3, 2)
    >>> parse_tta("flips+color"), num_views("d4+color")
    (('flips', True), 24)
"""

from __future__ import annotations

import numbers
from typing import Any

import keras
from keras import ops

from cellkit.inference._tta_spec import COLOR_FACTORS, TTA_MODES, TTA_SPECS, num_views, parse_tta

__all__ = [
    "COLOR_FACTORS",
    "TTA_MODES",
    "TTA_SPECS",
    "TestTimeAugmentation",
    "ViewAverage",
    "num_views",
    "parse_tta",
    "with_tta",
]

_RESERVED = frozenset({"images", "tta_views", "tta_mean"})


def _rot90(x: Any) -> Any:
    """Quarter turn of a ``(batch, h, w, c)`` tensor with ``h == w`` (like ``np.rot90``)."""
    return ops.flip(ops.transpose(x, (0, 2, 1, 3)), axis=1)


def _saturate(x: Any, factor: float) -> Any:
    """Scale saturation around each pixel's grey level, kept inside each image's own value range."""
    grey = ops.mean(x, axis=-1, keepdims=True)
    low = ops.min(x, axis=(1, 2, 3), keepdims=True)
    high = ops.max(x, axis=(1, 2, 3), keepdims=True)
    return ops.minimum(ops.maximum(grey + factor * (x - grey), low), high)


def check_square(mode: str, image_shape: tuple[int | None, ...]) -> None:
    """Raise ``ValueError`` when ``mode`` rotates but ``(h, w, ...)`` is not square."""
    if mode != "flips" and image_shape[0] != image_shape[1]:
        raise ValueError(
            f"tta={mode!r} rotates, so images must be square; use tta='flips'. Received: image shape={image_shape}"
        )


@keras.saving.register_keras_serializable(package="cellkit")
class TestTimeAugmentation(keras.layers.Layer):
    """Stack views of an image batch along the batch axis.

    ``(batch, h, w, c) -> (views * batch, h, w, c)``, view-major: rows
    ``[v * batch, (v + 1) * batch)`` hold view ``v`` (the identity is view 0). With
    ``color=True`` every geometric view is followed by its :data:`COLOR_FACTORS` saturation
    variants (3-channel inputs only). Pair with :class:`ViewAverage`.

    Example:
        >>> import numpy as np
        >>> views = TestTimeAugmentation("flips", color=True)(np.zeros((2, 8, 8, 3), "float32"))
        >>> tuple(views.shape)
        (24, 8, 8, 3)
    """

    __test__ = False  # not a pytest test class despite its name

    def __init__(self, mode: str = "flips", color: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if mode not in TTA_MODES:
            raise ValueError(f"mode must be one of {tuple(TTA_MODES)}. Received: mode={mode!r}")
        if not isinstance(color, bool):
            raise ValueError(f"color must be True or False. Received: color={color!r}")
        self.mode = mode
        self.color = color
        self.num_views = TTA_MODES[mode] * (1 + len(COLOR_FACTORS) * color)

    def views(self, x: Any) -> list[Any]:
        """The list of transformed batches (the identity first)."""
        if self.mode == "flips":
            geometric = [x, ops.flip(x, axis=2), ops.flip(x, axis=1), ops.flip(ops.flip(x, axis=1), axis=2)]
        else:
            geometric = [x]
            for _ in range(3):
                geometric.append(_rot90(geometric[-1]))
            if self.mode == "d4":
                geometric += [ops.flip(t, axis=2) for t in geometric]
        if not self.color:
            return geometric
        return [v for g in geometric for v in (g, *(_saturate(g, f) for f in COLOR_FACTORS))]

    def call(self, inputs: Any) -> Any:
        check_square(self.mode, tuple(inputs.shape[1:]))
        if self.color and inputs.shape[-1] != 3:
            raise ValueError(f"color views need RGB images (3 channels). Received: input shape={tuple(inputs.shape)}")
        x = inputs if not self.color else ops.cast(inputs, "float32")
        return ops.concatenate(self.views(x), axis=0)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        batch = None if input_shape[0] is None else input_shape[0] * self.num_views
        return (batch, *input_shape[1:])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mode": self.mode, "color": self.color}


@keras.saving.register_keras_serializable(package="cellkit")
class ViewAverage(keras.layers.Layer):
    """Average ``(views * batch, k)`` predictions over the views: ``-> (batch, k)``.

    Always float32, whatever the dtype policy it is built or loaded under: under mixed
    precision a bfloat16 input cast would round the probabilities to 8 bits, and the rows
    would no longer sum to 1 within the 1e-3 that tells probabilities from logits
    (:func:`cellkit.evaluate.calibration.is_probabilities`).
    """

    def __init__(self, num_views: int, **kwargs: Any) -> None:
        kwargs["dtype"] = "float32"  # also for a model saved with another policy
        super().__init__(**kwargs)
        if isinstance(num_views, bool) or not isinstance(num_views, numbers.Integral) or num_views < 1:
            raise ValueError(f"num_views must be a positive int. Received: num_views={num_views!r}")
        self.num_views = int(num_views)

    def call(self, inputs: Any) -> Any:
        x = ops.cast(inputs, "float32")
        k = x.shape[-1]
        return ops.mean(ops.reshape(x, (self.num_views, -1, k)), axis=0)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        batch = None if input_shape[0] is None else input_shape[0] // self.num_views
        return (batch, *input_shape[1:])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_views": self.num_views}


def with_tta(model: keras.Model, tta: str | bool = "d4", name: str | None = None) -> keras.Model:
    """Wrap a classifier so that it averages its probabilities over test-time views.

    Args:
        model: a built single-input Keras model ``(batch, h, w, c) -> (batch, k)``; used as
            it is (not copied, not modified).
        tta: a TTA specification (module docstring), e.g. ``"d4"`` or ``"flips+color"``.
        name: name of the returned model (default ``"<model.name>_tta"``).

    Returns:
        A functional model with the same input and output shapes; it saves to and loads
        from one ``.keras`` file (``safe_mode=True``) once :mod:`cellkit` is imported.

    Raises:
        ValueError: ``tta`` is not a specification, the model is not single-input
            ``(h, w, c)``, or the views rotate non-square images.
    """
    parsed = parse_tta(tta)
    if parsed is None:
        raise ValueError(f"with_tta needs a TTA specification, not {tta!r}; e.g. tta='d4'")
    mode, color = parsed
    if not isinstance(model, keras.Model):
        raise ValueError(f"model must be a keras.Model. Received: {type(model).__name__}")
    try:
        shape = model.input_shape
    except (AttributeError, ValueError):
        shape = None
    if not isinstance(shape, tuple) or len(shape) != 4 or None in shape[1:]:
        raise ValueError(f"model must take one batch of images (batch, h, w, c). Received: input_shape={shape!r}")
    image_shape = tuple(shape[1:])
    check_square(mode, image_shape)
    name = name or f"{model.name}_tta"
    if model.name in _RESERVED:
        # Keras needs unique names in a graph: wrap a clashing model, leaving it untouched.
        inner = keras.Input(shape=image_shape)
        model = keras.Model(inner, model(inner), name=f"classifier_{model.name}")
    inputs = keras.Input(shape=image_shape, name="images")
    views = TestTimeAugmentation(mode, color=color, name="tta_views")(inputs)
    outputs = ViewAverage(num_views(tta), name="tta_mean")(model(views))
    return keras.Model(inputs, outputs, name=name)
