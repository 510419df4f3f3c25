"""Shims that let ``imagecorruptions`` 1.1.2 run on current NumPy and scikit-image, unchanged.

``imagecorruptions`` (its latest release) predates scikit-image 0.19 and NumPy 2. While
:func:`compat` is active, three names inside ``imagecorruptions.corruptions`` are swapped:
``gaussian(multichannel=True)`` becomes ``gaussian(channel_axis=-1)`` (``gaussian_blur``,
``glass_blur``), ``np.float_`` is ``np.float64`` (``fog``), and ``skimage.util.random_noise``
gets an ``rng`` drawn from the seeded NumPy global state (``impulse_noise``). The algorithms
are the package's own; :mod:`cellkit.evaluate.external` is the only user.

Example:
    >>> import types, numpy as np
    >>> fake = types.ModuleType("corruptions")
    >>> fake.np = np
    >>> with compat(fake):
    ...     fake.np.float_ is np.float64
    True
    >>> fake.np is np
    True
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import numpy as np

__all__ = ["compat"]


def _gaussian_compat(gaussian: Any) -> Any:
    @functools.wraps(gaussian)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if kwargs.pop("multichannel", False):
            kwargs["channel_axis"] = -1
        return gaussian(*args, **kwargs)

    return wrapped


class _NumpyCompat:
    """``numpy`` with the ``float_`` alias NumPy 2 removed."""

    float_ = np.float64

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)


class _SkimageCompat:
    """``skimage`` whose ``util.random_noise`` draws its ``rng`` from NumPy's (seeded) global state."""

    def __init__(self, skimage: Any) -> None:
        self._skimage = skimage
        noise = skimage.util.random_noise

        def random_noise(*args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("rng", int(np.random.randint(2**31 - 1)))
            return noise(*args, **kwargs)

        self.util = _Overlay(skimage.util, random_noise=random_noise)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._skimage, name)


class _Overlay:
    def __init__(self, base: Any, **overrides: Any) -> None:
        self._base = base
        self.__dict__.update(overrides)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._base, name)


@contextlib.contextmanager
def compat(module: ModuleType) -> Iterator[None]:
    """Swap the shims into ``module`` (``imagecorruptions.corruptions``) and restore it afterwards."""
    saved = {name: module.__dict__[name] for name in ("gaussian", "np", "sk") if name in module.__dict__}
    shims = {"gaussian": _gaussian_compat, "np": lambda _: _NumpyCompat(), "sk": _SkimageCompat}
    for name, original in saved.items():
        setattr(module, name, shims[name](original))
    try:
        yield
    finally:
        module.__dict__.update(saved)
