"""The ``.npz`` layout: read its arrays (never unpickling), check them, and write a dataset.

An ``images`` array ``(n, h, w, 3)`` uint8 and optional ``labels`` (``(n,)`` or ``(n, 1)``
integers, or one-hot ``(n, k)``), ``class_names`` and ``ids`` (:mod:`cellkit.data.loading`
turns them into a :class:`~cellkit.data.Dataset`).
"""

from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from cellkit._io import atomic_save_npz
from cellkit.data.dataset import Dataset
from cellkit.errors import DataError

__all__ = ["npz_images", "npz_labels", "read_npz_arrays", "save_npz"]

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


def read_npz_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` (never unpickling); :class:`DataError` for anything else."""
    not_zip = "not a valid .npz (zip) file: damaged or truncated (expected a file written by numpy.savez)"
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below; np.load would leak it on a bad zip
    except OSError as exc:
        raise DataError(f"cannot read file: {exc.strerror or exc}", path=path) from None
    with fh:
        return _read_npz_from(fh, path, not_zip)


def _read_npz_from(fh, path: Path, not_zip: str) -> dict[str, np.ndarray]:  # noqa: ANN001 - a binary file
    head = fh.read(4)
    if head not in _ZIP_MAGIC:
        raise DataError(f"{not_zip}. Received: a file starting with {head!r}", path=path)
    fh.seek(0)
    try:
        with np.load(fh, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise DataError(
                "holds pickled (object) arrays, which cellkit never loads (allow_pickle=False); "
                "save plain numeric/string arrays instead",
                path=path,
            ) from None
        raise DataError(f"{not_zip}. Received: {exc}", path=path) from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, KeyError) as exc:
        raise DataError(f"{not_zip}. Received: {type(exc).__name__}: {exc}", path=path) from None


def npz_images(images: np.ndarray, convert: bool, path: Path) -> np.ndarray:
    if images.ndim == 3 or (images.ndim == 4 and images.shape[-1] == 1):
        if not convert:
            raise DataError(
                f"'images' is grayscale {images.shape}; expected (n, h, w, 3) RGB "
                "(pass convert=True / --convert to replicate the channel)",
                path=path,
            )
        images = np.repeat(images.reshape(images.shape[:3] + (1,)), 3, axis=-1)
    elif images.ndim == 4 and images.shape[-1] == 4:
        if not convert:
            raise DataError(
                f"'images' is RGBA {images.shape}; expected (n, h, w, 3) RGB "
                "(pass convert=True / --convert to drop the alpha channel)",
                path=path,
            )
        images = images[..., :3]
    if images.ndim != 4 or images.shape[-1] != 3:
        raise DataError(f"'images' has shape {images.shape}; expected (n, h, w, 3) RGB", path=path)
    if images.dtype == np.uint8:
        return images
    if images.dtype == np.uint16 and convert:
        return (images >> 8).astype(np.uint8)
    if np.issubdtype(images.dtype, np.floating) and convert:
        _check_float_values(images, path)
        hi = float(images.max()) if images.size else 0.0
        scale = 255.0 if hi <= 1.0 else 1.0
        return np.clip(np.rint(images * scale), 0, 255).astype(np.uint8)
    raise DataError(
        f"'images' has dtype {images.dtype}; expected uint8 0-255 "
        "(pass convert=True / --convert to scale float [0, 1] or [0, 255] and 16-bit data)",
        path=path,
    )


def _check_float_values(images: np.ndarray, path: Path) -> None:
    """:class:`DataError` unless every value is finite and in [0, 255] (NaN would silently become 0)."""
    bad = int(np.count_nonzero(~np.isfinite(images)))
    if bad:
        raise DataError(
            f"'images' contains NaN or infinite values ({bad} of {images.size}); expected finite pixel values "
            "in [0, 1] or [0, 255] (convert=True / --convert does not invent pixels)",
            path=path,
        )
    lo, hi = (float(images.min()), float(images.max())) if images.size else (0.0, 0.0)
    if lo < 0 or hi > 255:
        raise DataError(
            f"'images' holds values from {lo:g} to {hi:g}; expected pixel values in [0, 1] or [0, 255]",
            path=path,
        )


def npz_labels(labels: np.ndarray, n: int, path: Path) -> np.ndarray:
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    elif labels.ndim == 2 and labels.shape[0] == n and labels.shape[1] > 1:
        if not np.all((labels == 0) | (labels == 1)) or not np.all(labels.sum(axis=1) == 1):
            raise DataError(f"'labels' of shape {labels.shape} is not one-hot", path=path)
        labels = labels.argmax(axis=1)
    if labels.ndim != 1:
        raise DataError(f"'labels' has shape {labels.shape}; expected ({n},) class indices", path=path)
    if labels.shape[0] != n:
        raise DataError(f"{labels.shape[0]} labels for {n} images; expected one label per image", path=path)
    if not np.issubdtype(labels.dtype, np.integer):
        if np.issubdtype(labels.dtype, np.floating) and np.all(labels == np.round(labels)):
            labels = labels.astype(np.int64)
        else:
            raise DataError(f"'labels' has dtype {labels.dtype}; expected integer class indices", path=path)
    return labels.astype(np.int64)


def save_npz(dataset: Dataset, path: str | os.PathLike[str]) -> Path:
    """Write ``dataset`` to ``path`` (``.npz``) atomically, readable by :func:`load`.

    Stores ``images``, ``labels`` (when present), ``class_names`` and ``ids`` as plain
    arrays (no pickles).
    """
    path = Path(path)
    if path.suffix.lower() != ".npz":
        raise DataError("output file must end in .npz", path=path)
    arrays: dict[str, np.ndarray] = {
        "images": dataset.images,
        "ids": np.asarray(dataset.ids, dtype=str),
        "class_names": np.asarray(dataset.class_names, dtype=str),
    }
    if dataset.labels is not None:
        arrays["labels"] = dataset.labels
    atomic_save_npz(path, **arrays)
    return path
