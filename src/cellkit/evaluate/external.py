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
and NumPy 2. While a corruption runs, three names inside ``imagecorruptions.corruptions``
are swapped for shims that keep its algorithms unchanged: ``gaussian(multichannel=True)``
becomes ``gaussian(channel_axis=-1)`` (``gaussian_blur``, ``glass_blur``), ``np.float_`` is
``np.float64`` (``fog``), and ``skimage.util.random_noise`` gets an ``rng`` drawn from the
seeded NumPy global state (``impulse_noise``; current scikit-image otherwise draws fresh
entropy). ``imagecorruptions`` draws from NumPy's *global* random state: each image is
corrupted with the global state seeded from ``(seed, crc32(name), image index)``, and the
caller's global state is restored afterwards (so this is not thread-safe).

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

import contextlib
import functools
import importlib
import warnings
import zlib
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any

import cv2
import numpy as np

from cellkit.corrupt._batch import check_batch, check_severity
from cellkit.data import Dataset
from cellkit.data.split import stratified_split
from cellkit.evaluate.robustness import RobustnessReport, _accuracy_grid, _as_dataset, _as_predictor

__all__ = [
    "EXTERNAL_CORRUPTIONS",
    "MIN_SIDE",
    "evaluate_external_robustness",
    "external_corrupt",
]

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
def _compat(module: ModuleType) -> Iterator[None]:
    """Swap the shims into ``module`` (``imagecorruptions.corruptions``) and restore it afterwards."""
    saved = {name: module.__dict__[name] for name in ("gaussian", "np", "sk") if name in module.__dict__}
    shims = {"gaussian": _gaussian_compat, "np": lambda _: _NumpyCompat(), "sk": _SkimageCompat}
    for name, original in saved.items():
        setattr(module, name, shims[name](original))
    try:
        yield
    finally:
        module.__dict__.update(saved)


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
        with _compat(module), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # third-party deprecations and overflow warnings
            for j, image in enumerate(images):
                np.random.seed(_image_seed(seed, name, first_index + j))
                out[j] = _to_uint8(fn(Image.fromarray(image), severity), image.shape[:2])
    finally:
        np.random.set_state(saved_state)
    return out


def external_corrupt(images: np.ndarray, name: str, severity: int, seed: int = 0) -> np.ndarray:
    """Apply one ImageNet-C corruption of ``imagecorruptions`` to every image, deterministically.

    Args:
        images: ``uint8`` RGB batch ``(n, h, w, 3)`` with ``h, w >= 32`` (or a Dataset).
        name: one of :data:`EXTERNAL_CORRUPTIONS`.
        severity: 1..5.
        seed: image ``i`` is corrupted with NumPy's global random state seeded from
            ``(seed, crc32(name), i)``, the same at every severity; the caller's global
            state is restored afterwards.

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
    return _corrupt_range(images, name, severity, seed, first_index=0)


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

    def corrupt_chunk(batch: np.ndarray, name: str, severity: int, chunk: int, start: int) -> np.ndarray:
        return _corrupt_range(batch, name, severity, seed, first_index=start)

    clean, accuracy = _accuracy_grid(predict, images, labels, names, sevs, corrupt_chunk, "external robustness", quiet)
    return RobustnessReport(
        clean_accuracy=clean,
        accuracy=accuracy,
        n_images=n,
        seed=seed,
        source=ds.source,
        held_out=names,
    )
