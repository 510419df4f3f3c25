"""Checks that a loaded dataset is usable by a command, made before any work starts.

The quality detectors need a minimum number of images and a minimum image size (see
:mod:`cellkit.quality`); a dataset below either is refused here with a message naming the
data and what was expected, instead of an error from deep inside a detector.

Example:
    >>> import numpy as np
    >>> from cellkit.data import Dataset
    >>> check_for_detectors(Dataset(np.zeros((25, 32, 32, 3), np.uint8)))
    >>> check_for_detectors(Dataset(np.zeros((5, 32, 32, 3), np.uint8)))
    Traceback (most recent call last):
    ...
    cellkit.errors.DataError: <array>: 5 images are too few for the quality detectors (expected at least 20)
"""

from __future__ import annotations

from collections.abc import Iterable

from cellkit.data.dataset import Dataset
from cellkit.errors import DataError

__all__ = ["MIN_DETECTOR_IMAGES", "MIN_DUPLICATE_SIZE", "check_for_detectors"]

#: Fewest images the superposition detector fits on (the colour-filter detector needs fewer).
MIN_DETECTOR_IMAGES = 20
#: Smallest side the perceptual hash of the duplicate finder accepts.
MIN_DUPLICATE_SIZE = 8
#: Issue kinds that fit a detector on the images (duplicates only hash them).
_FITTED_KINDS = ("superposition", "color_filter")


def check_for_detectors(
    dataset: Dataset, issues: Iterable[str] = ("superposition", "color_filter", "duplicates")
) -> None:
    """:class:`DataError` if the detectors of ``issues`` cannot run on ``dataset``.

    The fitted detectors (superposition, colour filter) need at least
    :data:`MIN_DETECTOR_IMAGES` images of at least ``features.MIN_SIZE`` pixels a side,
    with sides divisible by 8; the duplicate finder needs sides of at least
    :data:`MIN_DUPLICATE_SIZE`.
    """
    from cellkit.quality.features import MIN_SIZE

    issues = tuple(issues)
    n, h, w = len(dataset), int(dataset.images.shape[1]), int(dataset.images.shape[2])
    fitted = any(kind in _FITTED_KINDS for kind in issues)
    if fitted and n < MIN_DETECTOR_IMAGES:
        raise DataError(
            f"{n} images are too few for the quality detectors (expected at least {MIN_DETECTOR_IMAGES})",
            path=dataset.source,
        )
    if fitted and (h < MIN_SIZE or w < MIN_SIZE or h % 8 or w % 8):
        raise DataError(
            f"images of {h}x{w} (HxW) are too small for the quality detectors (expected at least "
            f"{MIN_SIZE}x{MIN_SIZE} with sides divisible by 8; pass --size {max(MIN_SIZE, h + -h % 8)}x"
            f"{max(MIN_SIZE, w + -w % 8)} to resize them)",
            path=dataset.source,
        )
    if "duplicates" in issues and (h < MIN_DUPLICATE_SIZE or w < MIN_DUPLICATE_SIZE):
        raise DataError(
            f"images of {h}x{w} (HxW) are too small for the duplicate finder (expected at least "
            f"{MIN_DUPLICATE_SIZE}x{MIN_DUPLICATE_SIZE}; pass --size to resize them)",
            path=dataset.source,
        )
