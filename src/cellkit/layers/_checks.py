"""Argument checks of the layers' constructors, with Keras-style "Received:" messages."""

from __future__ import annotations

import math
from numbers import Real
from typing import Any

import numpy as np

__all__ = ["check_choice", "check_epsilon", "check_int", "check_real", "check_triple"]


def check_choice(name: str, value: Any, choices: tuple[Any, ...]) -> Any:
    if not any(value is c or (isinstance(value, str) and value == c) for c in choices):
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}. Received: {name}={value!r}")
    return value


def check_real(name: str, value: Any, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number. Received: {name}={value!r}")
    if positive and not value > 0:
        raise ValueError(f"{name} must be > 0. Received: {name}={value!r}")
    return float(value)


def check_int(
    name: str, value: Any, *, minimum: int, odd: bool = False, optional: bool = False
) -> int | None:
    if optional and value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | np.integer)
        or value < minimum
        or (odd and value % 2 == 0)
    ):
        what = f"an{' odd' if odd else ''} int >= {minimum}{' or None' if optional else ''}"
        raise ValueError(f"{name} must be {what}. Received: {name}={value!r}")
    return int(value)


def check_triple(name: str, value: Any, *, positive: bool = False) -> tuple[float, float, float]:
    try:
        values = tuple(value)
    except TypeError:
        values = ()
    ok = len(values) == 3 and all(
        isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v) and (v > 0 or not positive)
        for v in values
    )
    if not ok:
        what = "positive" if positive else "finite"
        raise ValueError(f"{name} must be three {what} numbers. Received: {name}={value!r}")
    return tuple(float(v) for v in values)  # type: ignore[return-value]


def check_epsilon(value: Any, name: str = "epsilon") -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0. Received: {name}={value!r}")
    return float(value)
