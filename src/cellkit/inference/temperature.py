"""Temperature scaling as a Keras layer that saves inside a ``.keras`` file.

A network trained with cross-entropy is often over-confident: its top probability is
higher than its accuracy. Temperature scaling (Guo et al., 2017) divides the logits by one
number ``T`` fitted on held-out images (``T > 1`` softens, ``T < 1`` sharpens); the arg-max,
hence every prediction and the accuracy, is unchanged. :func:`cellkit.evaluate.calibration.fit_temperature`
fits ``T``; :func:`cellkit.evaluate.calibration.calibrate_model` fits it and appends this layer.

:class:`TemperatureScaling` keeps the kind of its input: logits in, logits ``z / T`` out;
probabilities in (cellkit's classifiers, TTA models and ensembles end in probabilities),
probabilities ``softmax(log(p) / T)`` out, with ``p`` floored at the smallest normal
float32 (:data:`PROBABILITY_FLOOR`) so that a probability of exactly 0 stays finite.
:func:`apply_temperature` is the same computation in NumPy (``cellkit.inference._temperature_math``,
which imports no Keras).

Example:
    >>> import keras
    >>> import numpy as np
    >>> inp = keras.Input((4,))
    >>> clf = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(inp))
    >>> calibrated = with_temperature(clf, 2.0)
    >>> x = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
    >>> p, q = clf.predict(x, verbose=0), calibrated.predict(x, verbose=0)
    >>> bool((p.argmax(1) == q.argmax(1)).all()), bool((q.max(1) <= p.max(1) + 1e-6).all())
    (True, True)
    >>> np.allclose(q, apply_temperature(p, 2.0), atol=1e-5)
    True
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from cellkit.inference._temperature_math import PROBABILITY_FLOOR, apply_temperature
from cellkit.inference._temperature_math import check_temperature as _check_temperature

__all__ = ["PROBABILITY_FLOOR", "TemperatureScaling", "apply_temperature", "split_temperature", "with_temperature"]

_LAYER_NAME = "temperature_scaling"


@keras.saving.register_keras_serializable(package="cellkit")
class TemperatureScaling(keras.layers.Layer):
    """Divide logits by ``temperature``; or, with ``from_logits=False``, return ``softmax(log(p) / T)``.

    Args:
        temperature: ``T > 0`` (a number kept in the layer's config).
        from_logits: ``True`` when the input is logits (the output is then logits too);
            ``False`` (default) when it is class probabilities, as cellkit's models give.

    Computed in float32 whatever the dtype policy (like the classifier head's softmax).

    Example:
        >>> import numpy as np
        >>> layer = TemperatureScaling(2.0, from_logits=True)
        >>> np.asarray(layer(np.array([[2.0, -4.0]], "float32"))).tolist()
        [[1.0, -2.0]]
    """

    def __init__(self, temperature: float = 1.0, from_logits: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if not isinstance(from_logits, bool):
            raise ValueError(f"from_logits must be True or False. Received: from_logits={from_logits!r}")
        self.temperature = _check_temperature(temperature)
        self.from_logits = from_logits

    def call(self, inputs: Any) -> Any:
        x = ops.cast(inputs, "float32")
        if self.from_logits:
            return x / self.temperature
        logp = ops.log(ops.maximum(x, PROBABILITY_FLOOR))
        return ops.softmax(logp / self.temperature, axis=-1)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "temperature": self.temperature, "from_logits": self.from_logits}


def split_temperature(model: keras.Model) -> tuple[keras.Model, float, bool] | None:
    """``(inner model, T, from_logits)`` for a model built by :func:`with_temperature`, else ``None``."""
    layers = getattr(model, "layers", [])
    if len(layers) != 3 or not isinstance(layers[-1], TemperatureScaling) or not isinstance(layers[1], keras.Model):
        return None
    last = layers[-1]
    return layers[1], last.temperature, last.from_logits


def with_temperature(
    model: keras.Model, temperature: float, from_logits: bool = False, name: str | None = None
) -> keras.Model:
    """``model`` followed by :class:`TemperatureScaling`: one functional model, same input and output shapes.

    The model is used as it is (not copied, not modified). A model that already ends in a
    temperature (built by this function) is not wrapped twice: the temperatures multiply
    (exactly: ``softmax(log(softmax(log(p) / T1)) / T2) = softmax(log(p) / (T1 * T2))``).

    Args:
        model: a built single-input, single-output Keras model ``(batch, ...) -> (batch, k)``:
            a classifier, a TTA model (:func:`cellkit.inference.tta.with_tta`) or an ensemble.
        temperature: ``T > 0``.
        from_logits: the model outputs logits rather than probabilities.
        name: name of the returned model (default ``"<model.name>_calibrated"``).
    """
    t = _check_temperature(temperature)
    if not isinstance(model, keras.Model):
        raise ValueError(f"model must be a keras.Model. Received: {type(model).__name__}")
    inner = split_temperature(model)
    if inner is not None and inner[2] == from_logits:
        model, t = inner[0], inner[1] * t
    try:
        shape, out_shape = model.input_shape, model.output_shape
    except (AttributeError, ValueError):
        shape, out_shape = None, None
    if not isinstance(shape, tuple) or not shape or isinstance(shape[0], tuple):
        raise ValueError(f"model must be a built single-input Keras model. Received: input_shape={shape!r}")
    if not isinstance(out_shape, tuple) or len(out_shape) != 2:
        raise ValueError(f"model must give one (batch, classes) output. Received: output_shape={out_shape!r}")
    name = name or (model.name if model.name.endswith("_calibrated") else f"{model.name}_calibrated")
    if model.name in ("images", _LAYER_NAME):
        # Keras needs unique names in a graph: wrap a clashing model, leaving it untouched.
        inner_in = keras.Input(shape=shape[1:])
        model = keras.Model(inner_in, model(inner_in), name=f"classifier_{model.name}")
    inputs = keras.Input(shape=shape[1:], name="images")
    outputs = TemperatureScaling(t, from_logits=from_logits, name=_LAYER_NAME)(model(inputs))
    return keras.Model(inputs, outputs, name=name)
