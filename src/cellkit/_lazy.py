"""Public names imported on first use: one ``__getattr__`` / ``__dir__`` pair for every package.

``cellkit``, ``cellkit.evaluate``, ``cellkit.inference`` and ``cellkit.quality`` list their
public names with the module that defines each (PEP 562); importing the package imports none
of them, so ``import cellkit`` and the command line start without Keras or the detectors.

Example:
    >>> namespace = {}
    >>> getattr_, dir_ = lazy_names("demo", {"sqrt": "math"}, namespace)
    >>> getattr_("sqrt")(9.0), "sqrt" in namespace
    (3.0, True)
    >>> getattr_("nope")
    Traceback (most recent call last):
    ...
    AttributeError: module 'demo' has no attribute 'nope'
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_names"]


def lazy_names(
    package: str, names: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` resolving ``names`` (name -> defining module).

    A resolved name is stored in ``namespace`` (the package's ``globals()``), so it is looked
    up only once.
    """

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(names))

    return __getattr__, __dir__
