"""cellkit: classify microscope images of blood cells.

Example:
    >>> import cellkit
    >>> ds = cellkit.load("sample")
    >>> len(ds), ds.num_classes
    (480, 8)
"""

from cellkit.data import Dataset, load, save_npz
from cellkit.errors import CellkitError, DataError

__version__ = "0.1.0"

__all__ = [
    "CellkitError",
    "DataError",
    "Dataset",
    "__version__",
    "load",
    "save_npz",
]
