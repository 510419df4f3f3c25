"""Create a high-pass layer by name: ``high_pass_layer("laplacian", keep_input="concat")``.

Example:
    >>> from cellkit.layers import high_pass_layer
    >>> layer = high_pass_layer("dog", sigma_low=0.5, sigma_high=1.5, keep_input="concat")
    >>> type(layer).__name__, layer.keep_input
    ('DifferenceOfGaussians', 'concat')
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from cellkit.layers.high_pass import (
    DifferenceOfGaussians,
    HighPassFilter,
    LaplacianFilter,
    LearnableHighPass,
    SobelMagnitude,
)

__all__ = ["HIGH_PASS_LAYERS", "high_pass_layer"]

#: The high-pass layers by name (read-only).
HIGH_PASS_LAYERS: Mapping[str, type[HighPassFilter]] = MappingProxyType(
    {
        "laplacian": LaplacianFilter,
        "sobel": SobelMagnitude,
        "dog": DifferenceOfGaussians,
        "learnable": LearnableHighPass,
    }
)


def high_pass_layer(name: str, /, **kwargs: Any) -> HighPassFilter:
    """A new high-pass layer: ``name`` is a key of :data:`HIGH_PASS_LAYERS`.

    Args:
        name: ``"laplacian"``, ``"sobel"``, ``"dog"`` or ``"learnable"``.
        **kwargs: the layer's arguments (``mode``, ``keep_input``, ``scale``, ``sigma_low``...,
            and Keras ones such as ``name`` or ``dtype``).

    Raises:
        ValueError: unknown ``name`` (with close matches) or a bad layer argument.
    """
    cls = HIGH_PASS_LAYERS.get(name) if isinstance(name, str) else None
    if cls is None:
        close = difflib.get_close_matches(str(name).lower(), list(HIGH_PASS_LAYERS), n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"Unknown high-pass layer.{hint} Available: {', '.join(map(repr, sorted(HIGH_PASS_LAYERS)))}. "
            f"Received: name={name!r}"
        )
    return cls(**kwargs)
