"""An external yardstick: robustness to the ImageNet-C corruptions of ``imagecorruptions``.

cellkit's own corruption suite (:mod:`cellkit.corrupt.suite`) was written alongside the
models it measures, and part of it feeds training-time augmentation. This module measures
robustness against a *third-party* implementation instead: the ImageNet-C corruptions of
the ``imagecorruptions`` package (Hendrycks & Dietterich, 2019; Michaelis et al., 2019).
Nothing in cellkit trains or augments with it; install it for evaluation only::

    pip install imagecorruptions          # or: pip install "cellkit[eval]"

:func:`external_corrupt` applies one corruption to a ``uint8`` batch, deterministically;
:func:`evaluate_external_robustness` returns the same
:class:`~cellkit.evaluate.robustness.RobustnessReport` as :func:`~cellkit.evaluate.robustness.evaluate_robustness`
(table, JSON, heat map), with every corruption marked held out.

Compatibility: ``imagecorruptions`` 1.1.2 (its latest release) predates scikit-image 0.19
and NumPy 2; while a corruption runs, :mod:`cellkit.evaluate._imagecorruptions_compat`
swaps in shims that keep its algorithms unchanged. It draws from NumPy's *global* random
state: each image is corrupted with the global state seeded from ``(seed, crc32(name),
image index)``, and the caller's state is restored afterwards (so this is not thread-safe).

Caching: ``imagecorruptions`` works image by image (``glass_blur`` about 130 ms a 96x96
image), so both functions take ``cache_dir``: a folder of one ``.npy`` per corrupted batch,
keyed by a content hash (BLAKE2b) of the input images (bytes, shape, dtype), the corruption,
severity and seed, and the versions of ``imagecorruptions``, of the libraries its output
depends on and of this module's own code (:mod:`cellkit.evaluate._corruption_cache`). A
second model evaluated on the same images then pays only prediction. Files are written
atomically (:func:`cellkit._io.atomic_writer`) and read with ``allow_pickle=False``; a file
that cannot be read, or holds the wrong shape or dtype, is recomputed and rewritten. The
folder never changes a result, only how long it takes; delete it to reclaim the space
(about ``n x h x w x 3`` bytes a cell: 27.6 MB for 1,000 96x96 images).

Example:
    >>> import numpy as np
    >>> from cellkit.evaluate.external import EXTERNAL_CORRUPTIONS, external_corrupt
    >>> len(EXTERNAL_CORRUPTIONS), EXTERNAL_CORRUPTIONS[0]
    (19, 'gaussian_noise')
    >>> x = np.full((2, 96, 96, 3), 128, np.uint8)
    >>> y = external_corrupt(x, "gaussian_noise", severity=3, seed=0)  # doctest: +SKIP
    >>> y.dtype, y.shape, bool((y != x).any())  # doctest: +SKIP
    (dtype('uint8'), (2, 96, 96, 3), True)
"""

from __future__ import annotations

import importlib
import os
import warnings
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import numpy as np

from cellkit._io import atomic_writer
from cellkit.corrupt._batch import check_batch, check_severity
from cellkit.data import Dataset
from cellkit.data.split import stratified_split
from cellkit.evaluate._corruption_cache import cache_file, images_digest, load_cached
from cellkit.evaluate._imagecorruptions_compat import compat
from cellkit.evaluate.robustness import RobustnessReport, _accuracy_grid, _as_dataset, _as_predictor

__all__ = ["EXTERNAL_CORRUPTIONS", "MIN_SIDE", "evaluate_external_robustness", "external_corrupt"]

#: The ImageNet-C corruptions used: the 15 "common" ones in ImageNet-C order, then the 4
#: "validation" extras (``speckle_noise``, ``gaussian_blur``, ``spatter``, ``saturate``).
#: All 19 run on 96x96 images. They are HELD OUT: cellkit never uses them for training or
#: augmentation, only to evaluate.
EXTERNAL_CORRUPTIONS: tuple[str, ...] = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
    "speckle_noise",
    "gaussian_blur",
    "spatter",
    "saturate",
)

#: ``imagecorruptions`` refuses images smaller than 32 pixels on a side.
MIN_SIDE = 32

_INSTALL_HINT = "pip install imagecorruptions (evaluation only)"


def _load_corruptions() -> ModuleType:
    """``imagecorruptions.corruptions``, imported with its import-time deprecation warnings silenced."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy.ndimage.interpolation, pkg_resources
            return importlib.import_module("imagecorruptions.corruptions")
    except ImportError as exc:
        raise ImportError(
            f"cellkit.evaluate.external needs the `imagecorruptions` package: {_INSTALL_HINT}. "
            f"Received: {type(exc).__name__}: {exc}"
        ) from exc


def _check_name(name: object) -> str:
    if not isinstance(name, str) or name not in EXTERNAL_CORRUPTIONS:
        raise ValueError(
            f"`name` must be one of {', '.join(EXTERNAL_CORRUPTIONS)}. Received: name={name!r}"
        )
    return name


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or int(seed) < 0:
        raise ValueError(f"`seed` must be an integer >= 0. Received: seed={seed!r}")
    return int(seed)


def _image_seed(seed: int, name: str, index: int) -> int:
    """The global-state seed of image ``index``: the same at every severity."""
    return int(np.random.SeedSequence([seed, zlib.crc32(name.encode()), index]).generate_state(1)[0])


def _to_uint8(image: Any, shape: tuple[int, int]) -> np.ndarray:
    """Round and clip to ``uint8`` RGB, resized back to ``shape`` (h, w) if the corruption changed it."""
    out = np.asarray(image, dtype=np.float32)
    if out.ndim == 2:
        out = np.repeat(out[..., None], 3, axis=2)
    if out.shape[:2] != shape:
        out = cv2.resize(out, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _corrupt_range(images: np.ndarray, name: str, severity: int, seed: int, first_index: int) -> np.ndarray:
    """Corrupt ``images``; image ``j`` is seeded as image ``first_index + j`` of the whole set."""
    from PIL import Image

    module = _load_corruptions()
    fn = module.__dict__[name]
    out = np.empty_like(images)
    saved_state = np.random.get_state()
    try:
        with compat(module), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # third-party deprecations and overflow warnings
            for j, image in enumerate(images):
                np.random.seed(_image_seed(seed, name, first_index + j))
                out[j] = _to_uint8(fn(Image.fromarray(image), severity), image.shape[:2])
    finally:
        np.random.set_state(saved_state)
    return out


def _corrupt_cached(images: np.ndarray, name: str, severity: int, seed: int, folder: Path, digest: str) -> np.ndarray:
    """:func:`_corrupt_range` of the whole batch, read from ``folder`` when stored there, else stored."""
    path = cache_file(folder, digest, name, severity, seed)
    cached = load_cached(path, images.shape)
    if cached is not None:
        return cached
    out = _corrupt_range(images, name, severity, seed, first_index=0)
    with atomic_writer(path, "wb") as fh:
        np.save(fh, out, allow_pickle=False)
    return out


def external_corrupt(
    images: np.ndarray,
    name: str,
    severity: int,
    seed: int = 0,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
) -> np.ndarray:
    """Apply one ImageNet-C corruption of ``imagecorruptions`` to every image, deterministically.

    Args:
        images: ``uint8`` RGB batch ``(n, h, w, 3)`` with ``h, w >= 32`` (or a Dataset).
        name: one of :data:`EXTERNAL_CORRUPTIONS`.
        severity: 1..5.
        seed: image ``i`` is corrupted with NumPy's global random state seeded from
            ``(seed, crc32(name), i)``, the same at every severity; the caller's global
            state is restored afterwards.
        cache_dir: a folder (created if missing) where the result is stored and found
            again for the same images, corruption, severity, seed and library versions
            (see the module's *Caching*); ``None`` computes every time. Never changes
            the result.

    Returns:
        ``uint8`` array of the input's shape: the corruption's float output rounded to
        nearest and clipped to 0..255 (``imagecorruptions.corrupt`` truncates instead).

    Raises:
        ImportError: ``imagecorruptions`` is not installed.

    Example:
        >>> import numpy as np
        >>> x = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
        >>> a = external_corrupt(x, "motion_blur", severity=2, seed=7)  # doctest: +SKIP
        >>> bool((a == external_corrupt(x, "motion_blur", severity=2, seed=7)).all())  # doctest: +SKIP
        True
        >>> import os
        >>> b = external_corrupt(x, "motion_blur", severity=2, seed=7, cache_dir="cache")  # doctest: +SKIP
        >>> bool((a == b).all()), len(os.listdir("cache"))  # doctest: +SKIP
        (True, 1)
    """
    images = check_batch(images)
    name = _check_name(name)
    severity = check_severity(severity)
    seed = _check_seed(seed)
    if min(images.shape[1:3]) < MIN_SIDE:
        raise ValueError(
            f"`images` must be at least {MIN_SIDE} pixels on a side for imagecorruptions. "
            f"Received: images of shape {images.shape}"
        )
    if cache_dir is None:
        return _corrupt_range(images, name, severity, seed, first_index=0)
    _load_corruptions()  # the install hint, even when the result is cached
    return _corrupt_cached(images, name, severity, seed, Path(cache_dir), images_digest(images))


def _chunk_corrupter(
    images: np.ndarray, seed: int, cache_dir: str | os.PathLike[str] | None
) -> Callable[[np.ndarray, str, int, int, int], np.ndarray]:
    """The ``corrupt_chunk`` of :func:`~cellkit.evaluate.robustness._accuracy_grid` for ``images``.

    Without a cache each chunk is corrupted alone; with one, the whole cell (all of
    ``images``) is read or computed and stored once, and sliced chunk by chunk.
    """
    if cache_dir is None:

        def uncached(batch: np.ndarray, name: str, severity: int, chunk: int, start: int) -> np.ndarray:
            return _corrupt_range(batch, name, severity, seed, first_index=start)

        return uncached

    folder, digest = Path(cache_dir), images_digest(images)
    cell: dict[tuple[str, int], np.ndarray] = {}  # the current cell, whole

    def cached(batch: np.ndarray, name: str, severity: int, chunk: int, start: int) -> np.ndarray:
        if (name, severity) not in cell:
            cell.clear()
            cell[name, severity] = _corrupt_cached(images, name, severity, seed, folder, digest)
        return cell[name, severity][start : start + len(batch)]

    return cached


def _stratified_subset(ds: Dataset, max_images: int | None, seed: int) -> Dataset:
    if max_images is None:
        return ds
    if isinstance(max_images, bool) or not isinstance(max_images, (int, np.integer)) or max_images < 1:
        raise ValueError(f"`max_images` must be None or an integer >= 1. Received: max_images={max_images!r}")
    if max_images >= len(ds):
        return ds
    return ds.subset(stratified_split(ds.labels, val=0, test=int(max_images), seed=seed).test)


def _check_corruptions(corruptions: str | Sequence[str]) -> tuple[str, ...]:
    names = [c.strip() for c in corruptions.split(",")] if isinstance(corruptions, str) else list(corruptions)
    if not names:
        raise ValueError(f"`corruptions` must name at least one corruption. Received: corruptions={corruptions!r}")
    for c in names:
        _check_name(c)
    return tuple(dict.fromkeys(names))


def evaluate_external_robustness(
    model_or_predict_fn: Any,
    dataset: Dataset | tuple[np.ndarray, np.ndarray],
    corruptions: str | Sequence[str] = EXTERNAL_CORRUPTIONS,
    severities: Sequence[int] = (1, 2, 3, 4, 5),
    seed: int = 0,
    batch_size: int = 256,
    max_images: int | None = None,
    *,
    quiet: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
) -> RobustnessReport:
    """Accuracy of a classifier clean and under each ImageNet-C corruption and severity.

    The counterpart of :func:`cellkit.evaluate.robustness.evaluate_robustness` with the corruptions
    of ``imagecorruptions`` (:func:`external_corrupt`); it returns the same
    :class:`~cellkit.evaluate.robustness.RobustnessReport`, every corruption marked held out.

    Args:
        model_or_predict_fn: a Keras model (``predict`` on float32 images 0-255, then
            argmax) or a function ``uint8 images -> scores (n, k)`` (or integer labels).
        dataset: a labelled :class:`~cellkit.data.Dataset` or ``(images, labels)``;
            images at least 32 pixels on a side.
        corruptions: names from :data:`EXTERNAL_CORRUPTIONS`, a list or a comma-separated string.
        severities: which of 1..5.
        seed: corruption seed (and the seed of the ``max_images`` subset).
        batch_size: images per prediction batch.
        max_images: evaluate a stratified (by label), seeded subset of this many images;
            ``None`` for all. ``imagecorruptions`` works image by image (about 0.1-15 ms
            per 96x96 image, ``glass_blur`` far more), so the full grid is slow.
        quiet: no progress bar.
        cache_dir: a folder where each corrupted cell (the whole evaluated set, one
            corruption and severity) is stored, and read back when a later evaluation
            (another model, say) corrupts the same images with the same seed; the same
            files as :func:`external_corrupt` of those images. ``None``: computed every
            time, a chunk at a time. Never changes the report.

    Example:
        >>> import numpy as np
        >>> x = np.concatenate([np.full((4, 32, 32, 3), 60, np.uint8), np.full((4, 32, 32, 3), 200, np.uint8)])
        >>> bright = lambda images: (images.mean(axis=(1, 2, 3)) > 128).astype(int)
        >>> rep = evaluate_external_robustness(bright, (x, np.repeat([0, 1], 4)), corruptions="contrast")  # doctest: +SKIP
        >>> rep.clean_accuracy, rep.corruptions  # doctest: +SKIP
        (1.0, ('contrast',))
    """
    names = _check_corruptions(corruptions)
    sevs = tuple(dict.fromkeys(check_severity(s) for s in severities))
    if not sevs:
        raise ValueError(f"`severities` must name at least one of 1..5. Received: severities={severities!r}")
    seed = _check_seed(seed)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be an integer >= 1. Received: batch_size={batch_size!r}")
    ds = _stratified_subset(_as_dataset(dataset), max_images, seed)
    if min(ds.images.shape[1:3]) < MIN_SIDE:
        raise ValueError(
            f"`dataset` images must be at least {MIN_SIDE} pixels on a side for imagecorruptions. "
            f"Received: images of shape {ds.images.shape}"
        )
    _load_corruptions()  # fail with the install hint before the clean pass
    predict = _as_predictor(model_or_predict_fn, batch_size)
    images, labels, n = ds.images, ds.labels, len(ds)

    corrupt_chunk = _chunk_corrupter(images, seed, cache_dir)
    clean, accuracy = _accuracy_grid(predict, images, labels, names, sevs, corrupt_chunk, "external robustness", quiet)
    return RobustnessReport(
        clean_accuracy=clean,
        accuracy=accuracy,
        n_images=n,
        seed=seed,
        source=ds.source,
        held_out=names,
    )
