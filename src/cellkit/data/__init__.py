"""Datasets: the :class:`Dataset` value, loaders, the bundled sample, splitting."""

from cellkit.data.dataset import PBC_CLASSES, Dataset
from cellkit.data.loading import (
    IMAGE_EXTENSIONS,
    DataWarning,
    index_folder,
    iter_batches,
    load,
    sample_path,
    save_npz,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "PBC_CLASSES",
    "DataWarning",
    "Dataset",
    "index_folder",
    "iter_batches",
    "load",
    "sample_path",
    "save_npz",
]
