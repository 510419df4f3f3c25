"""Where pretrained weights live, and checking a ``weights=`` argument.

``keras.applications`` downloads ImageNet weights on first use into the Keras cache,
``$KERAS_HOME/models`` (default ``~/.keras/models``). Nothing here downloads: it only looks.

Example:
    >>> keras_cache_dir().name
    'models'
"""

from __future__ import annotations

import os
from pathlib import Path

from cellkit.zoo.spec import BackboneSpec

__all__ = ["check_weights", "keras_cache_dir", "weights_file", "weights_available"]

WEIGHTS_SUFFIX = ".weights.h5"


def keras_cache_dir() -> Path:
    """The folder ``keras.utils.get_file`` caches model weights in (as Keras computes it)."""
    home = os.environ.get("KERAS_HOME")
    if home is None:
        base = os.path.expanduser("~")
        if not os.access(base, os.W_OK):
            base = "/tmp"
        home = os.path.join(base, ".keras")
    return Path(home) / "models"


def weights_file(spec: BackboneSpec, tag: str) -> Path | None:
    """The file ``tag``'s weights are (or will be) stored in, ``None`` if the spec does not say."""
    name = spec.weight_files.get(tag)
    if name is None:
        return None
    path = Path(name)
    return path if path.is_absolute() else keras_cache_dir() / path


def weights_available(spec: BackboneSpec, tag: str) -> bool:
    """Whether ``tag``'s weights are already on this machine (so building needs no network)."""
    path = weights_file(spec, tag)
    return path is not None and path.is_file()


def check_weights(spec: BackboneSpec, weights: object) -> str | Path | None:
    """Validate a ``weights=`` argument for ``spec``.

    Returns ``None`` (random initialisation), a tag of ``spec.weights`` (e.g. ``"imagenet"``)
    or the :class:`~pathlib.Path` of an existing ``.weights.h5`` file.
    """
    if weights is None:
        return None
    if isinstance(weights, str) and weights in spec.weights:
        return weights
    if isinstance(weights, (str, os.PathLike)):
        path = Path(weights)
        if path.name.endswith(WEIGHTS_SUFFIX):
            if not path.is_file():
                raise FileNotFoundError(f"weights file not found: {path}")
            return path
    tags = ", ".join(repr(t) for t in spec.weights) or "none"
    raise ValueError(
        f"weights must be None, a pretrained tag of backbone {spec.name!r} (available: {tags}) "
        f"or the path of a '{WEIGHTS_SUFFIX}' file saved by keras. Received: weights={weights!r}"
    )
