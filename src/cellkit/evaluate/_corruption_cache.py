"""The on-disk cache of :mod:`cellkit.evaluate.external`: one ``.npy`` per corrupted batch.

A file's name carries a key that hashes every input of the result: the images (a BLAKE2b
of their dtype, shape and bytes, :func:`images_digest`), the corruption, severity and
seed, and the versions of ``imagecorruptions``, of the libraries its output depends on and
of cellkit's side of the corruption (:data:`CACHE_FORMAT`). :func:`load_cached` reads a
file with ``allow_pickle=False`` and returns ``None`` for anything that is not the expected
``uint8`` array, so a damaged file is recomputed, never trusted.

Example:
    >>> import numpy as np
    >>> from pathlib import Path
    >>> x = np.zeros((2, 32, 32, 3), np.uint8)
    >>> path = cache_file(Path("cache"), images_digest(x), "fog", 3, 0)
    >>> path.name.startswith("fog-s3-seed0-"), load_cached(path, x.shape) is None
    (True, True)
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
from pathlib import Path

import cv2
import numpy as np

__all__ = ["CACHE_FORMAT", "cache_file", "images_digest", "load_cached"]


#: Part of every cache key: bump it when cellkit's side of a corruption changes (the shims,
#: the per-image seeds, the rounding to ``uint8`` in :mod:`cellkit.evaluate.external`), so
#: that older cached batches stop matching.
CACHE_FORMAT = 1

#: Distributions whose versions are part of every cache key: ``imagecorruptions`` and the
#: libraries its output depends on (OpenCV is keyed by ``cv2.__version__``: its wheel has
#: several distribution names).
_KEYED_DISTRIBUTIONS = ("imagecorruptions", "numpy", "scipy", "scikit-image", "pillow")


@functools.cache
def _library_versions() -> str:
    versions = [f"cellkit.evaluate.external={CACHE_FORMAT}", f"opencv={cv2.__version__}"]
    for dist in _KEYED_DISTRIBUTIONS:
        try:
            versions.append(f"{dist}={importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{dist}=none")
    return ";".join(versions)


def images_digest(images: np.ndarray) -> str:
    """BLAKE2b of a batch's dtype, shape and bytes: the images part of a cache key."""
    h = hashlib.blake2b(digest_size=20)
    h.update(f"{images.dtype.str}{images.shape}".encode())
    h.update(memoryview(np.ascontiguousarray(images)).cast("B"))
    return h.hexdigest()


def cache_file(folder: Path, digest: str, name: str, severity: int, seed: int) -> Path:
    """``<name>-s<severity>-seed<seed>-<key>.npy``; the key hashes every input of the result."""
    key = f"{digest}|{name}|{severity}|{seed}|{_library_versions()}"
    return folder / f"{name}-s{severity}-seed{seed}-{hashlib.blake2b(key.encode(), digest_size=16).hexdigest()}.npy"


def load_cached(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """The ``uint8`` array of ``shape`` stored at ``path``; ``None`` if missing, unreadable or not that."""
    try:
        cached = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):  # missing, truncated, not an .npy, a folder
        return None
    if not isinstance(cached, np.ndarray) or cached.dtype != np.uint8 or cached.shape != shape:
        return None
    return cached
