"""Temperature scaling in NumPy, without Keras: what :class:`cellkit.inference.temperature.TemperatureScaling` computes.

:mod:`cellkit.evaluate.calibration` fits and measures temperatures with these, so its NumPy
functions import no Keras; the layer uses the same floor.

Example:
    >>> import numpy as np
    >>> apply_temperature(np.array([[0.8, 0.2]]), 1.0).round(6).tolist()
    [[0.8, 0.2]]
    >>> apply_temperature(np.array([[0.8, 0.2]]), 1e9).round(3).tolist()  # very hot: uniform
    [[0.5, 0.5]]
    >>> apply_temperature(np.array([[4.0, -2.0]]), 2.0, from_logits=True).tolist()
    [[2.0, -1.0]]
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

__all__ = ["PROBABILITY_FLOOR", "apply_temperature", "check_temperature", "log_scores"]

#: Probabilities are floored here before their logarithm: the smallest normal float32.
PROBABILITY_FLOOR: float = float(np.finfo(np.float32).tiny)


def check_temperature(temperature: Any) -> float:
    """``temperature`` as a float, or ``ValueError`` unless it is a finite number > 0."""
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real):
        raise ValueError(f"temperature must be a positive number. Received: temperature={temperature!r}")
    value = float(temperature)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"temperature must be a finite number > 0. Received: temperature={temperature!r}")
    return value


def log_scores(values: Any, from_logits: bool) -> np.ndarray:
    """``float64`` logits: ``values`` themselves, or the log of probabilities floored at :data:`PROBABILITY_FLOOR`."""
    x = np.asarray(values, dtype=np.float64)
    return x if from_logits else np.log(np.maximum(x, PROBABILITY_FLOOR))


def apply_temperature(values: Any, temperature: float, from_logits: bool = False) -> np.ndarray:
    """The layer in NumPy (``float64``): logits ``z / T``, or probabilities ``softmax(log(p) / T)``."""
    t = check_temperature(temperature)
    z = log_scores(values, from_logits) / t
    if from_logits:
        return z
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)
