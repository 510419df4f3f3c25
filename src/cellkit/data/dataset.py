"""The :class:`Dataset` value: images, labels, class names and a stable id per image.

Example:
    >>> import numpy as np
    >>> from cellkit.data import Dataset
    >>> ds = Dataset(np.zeros((2, 96, 96, 3), np.uint8), labels=np.array([0, 1]),
    ...              class_names=("basophil", "eosinophil"))
    >>> len(ds), ds.ids
    (2, ('0', '1'))
    >>> ds.subset([1]).labels
    array([1])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from cellkit.errors import DataError

__all__ = ["PBC_CLASSES", "Dataset", "image_batch"]

#: The eight classes in the label order of the seed report and of ``pbc96``.
PBC_CLASSES: tuple[str, ...] = (
    "basophil",
    "eosinophil",
    "erythroblast",
    "ig",
    "lymphocyte",
    "monocyte",
    "neutrophil",
    "platelet",
)


@dataclass(frozen=True, eq=False)
class Dataset:
    """An in-memory image dataset.

    Attributes:
        images: ``uint8`` array ``(n, h, w, 3)``, RGB.
        labels: ``int64`` array ``(n,)`` of class indices, or ``None`` when unlabelled.
        class_names: name of each class index (empty when unknown).
        ids: one stable string per image: the file path (relative to the dataset root)
            or, for arrays, the index in the source array.
        source: where the dataset came from (a path, ``"sample"`` or ``"<array>"``).
        problems: ``(file, reason)`` for every file the loader left out.
    """

    images: np.ndarray
    labels: np.ndarray | None = None
    class_names: tuple[str, ...] = ()
    ids: tuple[str, ...] = field(default=())
    source: str = "<array>"
    problems: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        images = self.images
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            got = (
                f"dtype={images.dtype}, shape={images.shape}"
                if isinstance(images, np.ndarray)
                else type(images).__name__
            )
            raise DataError(f"images must be a uint8 array (n, h, w, 3) RGB; got {got}", path=self.source)
        n = images.shape[0]
        if self.labels is not None:
            labels = np.asarray(self.labels)
            if labels.ndim != 1 or labels.shape[0] != n:
                raise DataError(
                    f"labels must have shape ({n},) to match {n} images; got shape {labels.shape}",
                    path=self.source,
                )
            if labels.size and not np.issubdtype(labels.dtype, np.integer):
                raise DataError(f"labels must be integers; got dtype {labels.dtype}", path=self.source)
            labels = labels.astype(np.int64, copy=False)
            if labels.size and labels.min() < 0:
                raise DataError(f"labels must be >= 0; got {labels.min()}", path=self.source)
            if self.class_names and labels.size and labels.max() >= len(self.class_names):
                raise DataError(
                    f"label {labels.max()} has no class name ({len(self.class_names)} classes given)",
                    path=self.source,
                )
            object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))
        ids = tuple(str(i) for i in self.ids) if len(self.ids) else tuple(str(i) for i in range(n))
        if len(ids) != n:
            raise DataError(f"{len(ids)} ids given for {n} images", path=self.source)
        object.__setattr__(self, "ids", ids)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __repr__(self) -> str:
        lab = "unlabelled" if self.labels is None else f"{len(self.class_names) or 'unnamed'} classes"
        return f"Dataset(n={len(self)}, shape={self.images.shape[1:]}, {lab}, source={self.source!r})"

    @property
    def num_classes(self) -> int:
        """Number of classes: ``len(class_names)``, else ``max(label) + 1``, else 0."""
        if self.class_names:
            return len(self.class_names)
        if self.labels is not None and self.labels.size:
            return int(self.labels.max()) + 1
        return 0

    def class_counts(self) -> dict[str, int]:
        """Images per class, by class name (index as a string when unnamed)."""
        if self.labels is None:
            return {}
        counts = np.bincount(self.labels, minlength=self.num_classes)
        names = self.class_names or tuple(str(i) for i in range(len(counts)))
        return {names[i]: int(c) for i, c in enumerate(counts)}

    def subset(self, indices: Sequence[int] | np.ndarray) -> Dataset:
        """A new dataset with the images at ``indices`` (ids and class names kept)."""
        idx = np.asarray(indices)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.intp, copy=False)
        return Dataset(
            images=self.images[idx],
            labels=None if self.labels is None else self.labels[idx],
            class_names=self.class_names,
            ids=tuple(self.ids[i] for i in idx),
            source=self.source,
            problems=self.problems,
        )


def image_batch(images: object, name: str = "images") -> np.ndarray:
    """The ``uint8 (n, h, w, 3)`` RGB array of a :class:`Dataset` or of an array, else ``ValueError``.

    The one input check of every batch function (features, detectors, corruptions).

    Example:
        >>> image_batch(np.zeros((2, 8, 8, 3), np.uint8)).shape
        (2, 8, 8, 3)
    """
    arr = images.images if isinstance(images, Dataset) else images
    if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
        got = f"dtype={arr.dtype}, shape={arr.shape}" if isinstance(arr, np.ndarray) else f"type={type(arr).__name__}"
        hint = " (for a single image pass images[None])" if isinstance(arr, np.ndarray) and arr.ndim == 3 else ""
        raise ValueError(
            f"`{name}` must be a cellkit Dataset or a uint8 array (n, h, w, 3) RGB{hint}. Received: {name} {got}"
        )
    return arr
