"""Argument validators with Keras-style messages: what was expected, then ``Received: name=value``.

Each ``check_*`` returns the value in its canonical form (an ``int``, a ``float``, a
lower-case choice) or raises ``error`` (``ValueError`` by default; the recipe passes
:class:`~cellkit.train.RecipeError`). ``label`` is how the message names the value when
that differs from ``name`` (``"phases[0].epochs"`` for the ``epochs`` of a recipe's first
phase); the ``Received:`` part always uses ``name``.

Dataclasses declare their rules on their fields (:func:`rule`) and check them all at once
(:func:`check_fields`), as :class:`cellkit.train.Recipe` does.

Example:
    >>> check_int(3, "epochs", minimum=1)
    3
    >>> check_choice("Lion", "optimizer", ("lion", "adamw"))
    'lion'
    >>> try:
    ...     check_float(0.0, "learning_rate", high=10.0, label="phases[0].learning_rate")
    ... except ValueError as exc:
    ...     print(exc)
    phases[0].learning_rate must be a finite number in (0, 10]. Received: learning_rate=0.0
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = [
    "check_bool",
    "check_choice",
    "check_fields",
    "check_float",
    "check_int",
    "check_str",
    "check_table",
    "rule",
]


def check_int(
    value: Any, name: str, *, minimum: int | None = None, label: str | None = None,
    error: type[Exception] = ValueError,
) -> int:
    """An integer (not a bool) ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or (minimum is not None and value < minimum):
        bound = "" if minimum is None else f" >= {minimum}"
        raise error(f"{label or name} must be an int{bound}. Received: {name}={value!r}")
    return int(value)


def check_float(
    value: Any, name: str, *, low: float = 0.0, high: float = math.inf, low_open: bool = True,
    high_open: bool = False, label: str | None = None, error: type[Exception] = ValueError,
) -> float:
    """A finite real number (not a bool) in the interval from ``low`` to ``high``.

    The bounds are excluded (``low_open``, ``high_open``) or included; an infinite
    ``high`` is always excluded.
    """
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))
    if ok:
        v = float(value)
        ok = (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    if not ok:
        lo = "(" if low_open else "["
        hi = ")" if high_open or high == math.inf else "]"
        raise error(
            f"{label or name} must be a finite number in {lo}{low:g}, {high:g}{hi}. Received: {name}={value!r}"
        )
    return float(value)


def check_choice(
    value: Any, name: str, choices: Sequence[str], *, label: str | None = None,
    error: type[Exception] = ValueError,
) -> str:
    """One of ``choices`` (lower-case strings), compared case-insensitively; a near miss is suggested."""
    if not isinstance(value, str) or value.lower() not in choices:
        hint = ""
        if isinstance(value, str):
            close = difflib.get_close_matches(value.lower(), choices, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise error(f"{label or name} must be one of {list(choices)}{hint}. Received: {name}={value!r}")
    return value.lower()


def check_str(value: Any, name: str, *, label: str | None = None, error: type[Exception] = ValueError) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value:
        raise error(f"{label or name} must be a non-empty string. Received: {name}={value!r}")
    return value


def check_bool(value: Any, name: str, *, label: str | None = None, error: type[Exception] = ValueError) -> bool:
    """``True`` or ``False`` (not ``0``, ``1`` or ``"yes"``)."""
    if not isinstance(value, bool):
        raise error(f"{label or name} must be true or false. Received: {name}={value!r}")
    return value


def check_table(
    value: Any, name: str, *, of: str = "options", label: str | None = None, error: type[Exception] = ValueError,
) -> dict[str, Any]:
    """A mapping with string keys (a TOML table), returned as a new ``dict``; ``of`` says what it holds."""
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise error(f"{label or name} must be a table of {of}. Received: {name}={value!r}")
    return dict(value)


# --------------------------------------------------------------------------- dataclass fields


def rule(check: Callable[..., Any], **options: Any) -> dict[str, Any]:
    """Metadata of a dataclass field: :func:`check_fields` validates it with ``check(value, name, **options)``.

    Example:
        >>> import dataclasses
        >>> @dataclasses.dataclass(frozen=True)
        ... class Settings:
        ...     epochs: int = dataclasses.field(default=1, metadata=rule(check_int, minimum=1))
        ...     def __post_init__(self):
        ...         check_fields(self)
        >>> try:
        ...     Settings(epochs=0)
        ... except ValueError as exc:
        ...     print(exc)
        epochs must be an int >= 1. Received: epochs=0
    """
    return {"check": functools.partial(check, **options)}


def check_fields(obj: Any, *, prefix: str = "", error: type[Exception] = ValueError) -> None:
    """Validate every field of dataclass ``obj`` that has a :func:`rule`, in declaration order.

    Each field is replaced by its canonical value (frozen dataclasses too); a field whose
    default is ``None`` accepts ``None``. Messages name a field ``prefix + name``
    (``"phases[0].epochs"``).
    """
    for f in dataclasses.fields(obj):
        check, value = f.metadata.get("check"), getattr(obj, f.name)
        if check is not None and not (value is None and f.default is None):
            object.__setattr__(obj, f.name, check(value, f.name, label=prefix + f.name, error=error))
