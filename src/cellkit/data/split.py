"""Stratified train/validation/test splits and k-fold splits that return indices.

Splits follow scikit-learn's conventions: they return sorted ``int64`` index arrays,
sizes are fractions (``0 <= x < 1``) or counts (``int``), and ``seed`` is an ``int`` or a
:class:`numpy.random.Generator`. The default is the seed report's 72 / 8 / 20 split.

Stratification is exact up to rounding: for every class ``c`` and split ``s`` the number
of images is within one image of ``n_c * n_s / n`` (when no ``groups`` are given), and the
split sizes are exactly the requested ones (a fraction ``f`` of ``n`` images means
``ceil(f * n)`` images, as in scikit-learn). A class with too few images to appear in
every split is allowed: its images still go where the rounding sends them (a class of
one image lands in exactly one split). This is documented rather than refused because
rare classes are common in real data and the per-class guarantee still holds.

``groups`` (one ``int`` per image, ``-1`` = no group; e.g. near-duplicate groups) keeps
every group inside a single split: groups are placed first, as units, and the remaining
images then fill each class's quota, so stratification stays close (no longer exact).

The work is vectorised: one permutation and one stable sort of the labels, no Python loop
over images (only over classes and groups). This module holds the :class:`Split` value and
the two entry points; the quotas and the dealing of samples are in
:mod:`cellkit.data._quota`, the placement of groups in :mod:`cellkit.data._groups`.

Example:
    >>> import numpy as np
    >>> from cellkit.data.split import stratified_split
    >>> labels = np.repeat([0, 1], [50, 50])
    >>> split = stratified_split(labels, val=0.1, test=0.2, seed=0)
    >>> [len(split.train), len(split.val), len(split.test)]
    [70, 10, 20]
    >>> np.bincount(labels[split.test]).tolist()
    [10, 10]
"""

from __future__ import annotations

import json
import numbers
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from cellkit._io import atomic_write_json
from cellkit._random import SeedLike, as_generator
from cellkit.data._groups import encode_groups, place_groups
from cellkit.data._quota import (
    Size,
    class_major_order,
    controlled_round,
    encode_labels,
    fill_quota,
    resolve_size,
)
from cellkit.errors import DataError

if TYPE_CHECKING:
    from cellkit.data.dataset import Dataset

__all__ = ["SPLIT_NAMES", "Split", "stratified_kfold", "stratified_split"]

#: The three parts of a :class:`Split`, in the order of its fields.
SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")

_FORMAT = "cellkit.split/1"
# Internal column order: test first, then val, then train (train takes what is left).
_TEST, _VAL, _TRAIN = 0, 1, 2


@dataclass(frozen=True, eq=False)
class Split:
    """Indices of a train / validation / test split.

    Attributes:
        train, val, test: sorted, disjoint ``int64`` index arrays covering ``range(n)``.
        seed: the integer seed that produced the split (``None`` if a Generator was given).
        val_size, test_size: the requested sizes (fractions or counts), as given.
    """

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    seed: int | None = None
    val_size: Size = 0.08
    test_size: Size = 0.2

    def __post_init__(self) -> None:
        parts = []
        for name in SPLIT_NAMES:
            arr = np.asarray(getattr(self, name))
            if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
                raise DataError(
                    f"Split.{name} must be a 1-D integer index array. Received: {name} with "
                    f"dtype={arr.dtype}, shape={arr.shape}"
                )
            arr = arr.astype(np.int64)  # a copy: the caller's array is never aliased
            if arr.size > 1 and not (arr[1:] > arr[:-1]).all():
                arr.sort()
            arr.setflags(write=False)
            parts.append(arr)
            object.__setattr__(self, name, arr)
        if not _is_partition(parts):
            raise DataError(
                "Split parts must be disjoint and together cover the indices 0 .. n-1 exactly once"
            )

    @property
    def n(self) -> int:
        """Number of indexed samples (``len(train) + len(val) + len(test)``)."""
        return int(self.train.size + self.val.size + self.test.size)

    def sizes(self) -> dict[str, int]:
        """Number of samples in each part, keyed by ``"train"``, ``"val"``, ``"test"``."""
        return {name: int(getattr(self, name).size) for name in SPLIT_NAMES}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Split):
            return NotImplemented
        return all(np.array_equal(getattr(self, k), getattr(other, k)) for k in SPLIT_NAMES) and (
            self.seed,
            self.val_size,
            self.test_size,
        ) == (other.seed, other.val_size, other.test_size)

    __hash__ = None  # type: ignore[assignment]

    def subsets(self, data: Dataset) -> dict[str, Dataset]:
        """The three parts of ``data`` as datasets, keyed by ``"train"``, ``"val"``, ``"test"``."""
        if len(data) != self.n:
            raise DataError(
                f"split indexes {self.n} samples but the dataset has {len(data)}. Received: data={data!r}"
            )
        return {name: data.subset(getattr(self, name)) for name in SPLIT_NAMES}

    def to_dict(self, ids: Sequence[str] | None = None) -> dict[str, Any]:
        """A JSON-ready dict: seed, sizes, and per part the indices (and ``ids`` when given)."""
        if ids is not None and len(ids) != self.n:
            raise DataError(
                f"{len(ids)} ids given for a split of {self.n} samples. Received: len(ids)={len(ids)}"
            )
        parts: dict[str, Any] = {}
        for name in SPLIT_NAMES:
            idx = getattr(self, name)
            part: dict[str, Any] = {"size": int(idx.size), "indices": idx.tolist()}
            if ids is not None:
                part["ids"] = [str(ids[i]) for i in idx]
            parts[name] = part
        return {
            "format": _FORMAT,
            "n": self.n,
            "seed": self.seed,
            "val_size": self.val_size,
            "test_size": self.test_size,
            "splits": parts,
        }

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> Split:
        """Inverse of :meth:`to_dict` (ids, if present, are ignored)."""
        if not isinstance(obj, dict) or obj.get("format") != _FORMAT or "splits" not in obj:
            raise DataError(f"not a cellkit split (expected format {_FORMAT!r})")
        try:
            parts = {name: np.asarray(obj["splits"][name]["indices"], dtype=np.int64) for name in SPLIT_NAMES}
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"malformed cellkit split: {exc}") from None
        split = cls(
            **parts,
            seed=obj.get("seed"),
            val_size=obj.get("val_size", 0.08),
            test_size=obj.get("test_size", 0.2),
        )
        if "n" in obj and obj["n"] != split.n:
            raise DataError(f"malformed cellkit split: n={obj['n']} but the parts hold {split.n} indices")
        return split

    def save(self, path: str | os.PathLike[str], ids: Sequence[str] | None = None) -> None:
        """Write the split as JSON to ``path`` atomically (see :meth:`to_dict`)."""
        atomic_write_json(path, self.to_dict(ids))

    @classmethod
    def load(cls, path: str | os.PathLike[str], ids: Sequence[str] | None = None) -> Split:
        """Read a split written by :meth:`save`.

        With ``ids`` (the image ids of the data it will index), the split must have been made
        for that data: same count, and every part's saved ids equal to the data's ids at its
        indices. A split for other data with only the same count is refused.
        """
        try:
            with open(path, encoding="utf-8") as fh:
                obj = json.load(fh)
        except json.JSONDecodeError as exc:
            raise DataError(f"not valid JSON: {exc}", path=path) from None
        except UnicodeDecodeError:
            raise DataError("not a text file (expected a cellkit split.json)", path=path) from None
        except IsADirectoryError:
            raise DataError("is a folder (expected a cellkit split.json file)", path=path) from None
        try:
            split = cls.from_dict(obj)
        except DataError as exc:
            raise DataError(exc.reason, path=path) from None
        if ids is not None:
            split._check_ids(obj, ids, path)
        return split

    def _check_ids(self, obj: dict[str, Any], ids: Sequence[str], path: str | os.PathLike[str]) -> None:
        if self.n != len(ids):
            raise DataError(f"the split indexes {self.n} images but the dataset has {len(ids)}: it was made for "
                            "other data", path=path)
        for name in SPLIT_NAMES:
            saved = obj["splits"][name].get("ids")
            if saved is not None and [str(ids[i]) for i in getattr(self, name)] != [str(v) for v in saved]:
                raise DataError(f"the {name} image ids of the split differ from the dataset's: it was made for "
                                "other data (or the folder changed)", path=path)


def stratified_split(
    labels: Sequence[int] | np.ndarray,
    val: Size = 0.08,
    test: Size = 0.2,
    seed: SeedLike = 0,
    groups: Sequence[int] | np.ndarray | None = None,
) -> Split:
    """Split sample indices into stratified train / validation / test parts.

    Args:
        labels: one class label per sample (any integers, or other sortable values).
        val, test: size of the validation and test parts: a fraction in ``[0, 1)`` of the
            samples (rounded up, as scikit-learn does) or an ``int`` count. The training
            part gets the rest and must not be empty.
        seed: ``int`` seed or :class:`numpy.random.Generator` (``None``: fresh entropy).
        groups: optional ``int`` group per sample, ``-1`` for none. Samples of one group
            always land in the same part.

    Returns:
        A :class:`Split` of sorted ``int64`` index arrays.

    Example:
        >>> split = stratified_split([0] * 8 + [1] * 4, val=0, test=0.25, seed=1)
        >>> split.sizes()
        {'train': 9, 'val': 0, 'test': 3}
    """
    codes, counts = encode_labels(labels)
    n = codes.size
    n_test = resolve_size(test, n, "test")
    n_val = resolve_size(val, n, "val")
    if n_test + n_val >= n:
        raise ValueError(
            f"val and test leave no training samples: {n_val} + {n_test} of {n} samples. "
            f"Received: val={val!r}, test={test!r}"
        )
    rng = as_generator(seed, "seed")
    totals = np.array([n_test, n_val, n - n_test - n_val], dtype=np.int64)
    quota = controlled_round(counts, totals)  # (classes, 3): within one image of exact
    part = np.full(n, _TRAIN, dtype=np.int8)
    if groups is None:
        free = np.ones(n, dtype=bool)
    else:
        gcodes = encode_groups(groups, n)
        free = gcodes < 0
        if not free.all():
            quota = place_groups(codes, gcodes, quota, rng, part)
    fill_quota(codes, free, quota, rng, part)
    return Split(
        train=np.flatnonzero(part == _TRAIN),
        val=np.flatnonzero(part == _VAL),
        test=np.flatnonzero(part == _TEST),
        seed=int(seed) if isinstance(seed, numbers.Integral) else None,
        val_size=val,
        test_size=test,
    )


def stratified_kfold(
    labels: Sequence[int] | np.ndarray,
    n_splits: int = 5,
    seed: SeedLike = 0,
    groups: Sequence[int] | np.ndarray | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified k-fold cross-validation indices.

    Every sample is in exactly one test fold; fold sizes differ by at most one and, without
    groups, each class's count in each fold is ``floor`` or ``ceil`` of ``n_c / n_splits``
    (a class with fewer than ``n_splits`` samples is simply absent from some folds).
    With ``groups`` (``-1`` = none) a group never straddles two folds.

    Returns:
        ``n_splits`` pairs ``(train_idx, test_idx)`` of sorted ``int64`` arrays.

    Example:
        >>> folds = stratified_kfold([0, 0, 0, 1, 1, 1], n_splits=3, seed=0)
        >>> [len(test) for _, test in folds]
        [2, 2, 2]
    """
    codes, counts = encode_labels(labels)
    n = codes.size
    if isinstance(n_splits, bool) or not isinstance(n_splits, numbers.Integral) or not 2 <= n_splits <= n:
        raise ValueError(f"n_splits must be an int in [2, n_samples={n}]. Received: n_splits={n_splits!r}")
    k = int(n_splits)
    rng = as_generator(seed, "seed")
    fold = np.empty(n, dtype=np.int64)
    if groups is None:
        # Position in a (class, random) order, dealt round-robin: balanced folds and classes.
        order = class_major_order(codes, counts.size, rng)
        fold[order] = np.arange(n) % k
    else:
        gcodes = encode_groups(groups, n)
        fold[:] = -1
        totals = np.full(k, n // k, dtype=np.int64)
        totals[: n % k] += 1
        quota = controlled_round(counts, totals)
        free = gcodes < 0
        if not free.all():
            quota = place_groups(codes, gcodes, quota, rng, fold)
        fill_quota(codes, free, quota, rng, fold)
    folds = []
    for f in range(k):
        in_fold = fold == f
        folds.append((np.flatnonzero(~in_fold), np.flatnonzero(in_fold)))
    return folds


# --------------------------------------------------------------------------- helpers


def _is_partition(parts: list[np.ndarray]) -> bool:
    """True when the index arrays together hold each of ``0 .. n-1`` exactly once."""
    joined = np.concatenate(parts)
    if joined.size == 0:
        return True
    if int(joined.min()) != 0 or int(joined.max()) != joined.size - 1:
        return False
    return bool(np.bincount(joined).max() == 1)

