"""Seeded corruption generators: superpositions, colour filters, JPEG round trips, and
the acquisition-shift suite (23 corruptions x 5 severities) used to measure robustness.

Use :func:`corrupt_dataset` to make a corrupted copy of a dataset with ground-truth
masks (to score detectors), :func:`corrupt` for one corruption of the suite, or the
building blocks directly.

Example:
    >>> import numpy as np
    >>> from cellkit.corrupt import overlay_bank, superpose
    >>> cells = np.full((3, 96, 96, 3), 200, np.uint8)
    >>> out = superpose(cells, overlay_bank("natural", 3, rng=0), alpha=0.3)
    >>> out.shape, out.dtype
    ((3, 96, 96, 3), dtype('uint8'))
"""

from cellkit.corrupt.color import color_filter, random_filter_gains
from cellkit.corrupt.dataset import OVERLAY_MODES, CorruptionResult, corrupt_dataset
from cellkit.corrupt.overlays import OVERLAY_KINDS, overlay_bank
from cellkit.corrupt.suite import (
    AUGMENTATION_FAMILIES,
    CORRUPTIONS,
    EVALUATION_FAMILIES,
    FAMILIES,
    SEVERITIES,
    corrupt,
    list_corruptions,
    resolve_corruptions,
)
from cellkit.corrupt.superpose import Superpositions, jpeg_roundtrip, random_superpositions, superpose

__all__ = [
    "AUGMENTATION_FAMILIES",
    "CORRUPTIONS",
    "EVALUATION_FAMILIES",
    "FAMILIES",
    "SEVERITIES",
    "corrupt",
    "list_corruptions",
    "resolve_corruptions",
    "OVERLAY_KINDS",
    "OVERLAY_MODES",
    "CorruptionResult",
    "Superpositions",
    "color_filter",
    "corrupt_dataset",
    "jpeg_roundtrip",
    "overlay_bank",
    "random_filter_gains",
    "random_superpositions",
    "superpose",
]
