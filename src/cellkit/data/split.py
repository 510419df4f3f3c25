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
over images (only over classes and groups).

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
import math
import numbers
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from cellkit._io import atomic_write_json
from cellkit._random import SeedLike, as_generator
from cellkit.errors import DataError

if TYPE_CHECKING:
    from cellkit.data.dataset import Dataset

__all__ = ["SPLIT_NAMES", "Split", "stratified_kfold", "stratified_split"]

#: The three parts of a :class:`Split`, in the order of its fields.
SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")

_FORMAT = "cellkit.split/1"
# Internal column order: test first, then val, then train (train takes what is left).
_TEST, _VAL, _TRAIN = 0, 1, 2

Size = float | int


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
    codes, counts = _encode_labels(labels)
    n = codes.size
    n_test = _resolve_size(test, n, "test")
    n_val = _resolve_size(val, n, "val")
    if n_test + n_val >= n:
        raise ValueError(
            f"val and test leave no training samples: {n_val} + {n_test} of {n} samples. "
            f"Received: val={val!r}, test={test!r}"
        )
    rng = as_generator(seed, "seed")
    totals = np.array([n_test, n_val, n - n_test - n_val], dtype=np.int64)
    quota = _controlled_round(counts, totals)  # (classes, 3): within one image of exact
    part = np.full(n, _TRAIN, dtype=np.int8)
    if groups is None:
        free = np.ones(n, dtype=bool)
    else:
        gcodes = _encode_groups(groups, n)
        free = gcodes < 0
        if not free.all():
            quota = _place_groups(codes, gcodes, quota, rng, part)
    _fill_quota(codes, free, quota, rng, part)
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
    codes, counts = _encode_labels(labels)
    n = codes.size
    if isinstance(n_splits, bool) or not isinstance(n_splits, numbers.Integral) or not 2 <= n_splits <= n:
        raise ValueError(f"n_splits must be an int in [2, n_samples={n}]. Received: n_splits={n_splits!r}")
    k = int(n_splits)
    rng = as_generator(seed, "seed")
    fold = np.empty(n, dtype=np.int64)
    if groups is None:
        # Position in a (class, random) order, dealt round-robin: balanced folds and classes.
        order = _class_major_order(codes, counts.size, rng)
        fold[order] = np.arange(n) % k
    else:
        gcodes = _encode_groups(groups, n)
        fold[:] = -1
        totals = np.full(k, n // k, dtype=np.int64)
        totals[: n % k] += 1
        quota = _controlled_round(counts, totals)
        free = gcodes < 0
        if not free.all():
            quota = _place_groups(codes, gcodes, quota, rng, fold)
        _fill_quota(codes, free, quota, rng, fold)
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


def _encode_labels(labels: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense class codes (``intp``) and the count of each code."""
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"labels must be a 1-D array. Received: labels with shape={y.shape}")
    if y.size == 0:
        raise ValueError("labels is empty: nothing to split. Received: labels with shape=(0,)")
    if y.dtype.kind in "biu" and y.min() >= 0 and y.max() <= 4 * y.size + 1024:
        codes = y.astype(np.intp, copy=False)
        counts = np.bincount(codes)
    else:
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            raise ValueError("labels contain NaN or infinity. Received: labels with non-finite values")
        _, codes, counts = np.unique(y, return_inverse=True, return_counts=True)
        codes = codes.reshape(-1).astype(np.intp, copy=False)
    return codes, counts.astype(np.int64)


def _encode_groups(groups: Sequence[int] | np.ndarray, n: int) -> np.ndarray:
    g = np.asarray(groups)
    if g.shape != (n,) or (g.size and g.dtype.kind not in "biu"):
        raise ValueError(
            f"groups must be an int array of shape ({n},) (one group per label, -1 = none). "
            f"Received: groups with dtype={g.dtype}, shape={g.shape}"
        )
    return g.astype(np.int64, copy=False)


def _resolve_size(size: Size, n: int, name: str) -> int:
    """A fraction (rounded up) or a count, validated against ``n`` samples."""
    if isinstance(size, bool) or not isinstance(size, numbers.Real):
        raise ValueError(f"{name} must be a fraction in [0, 1) or an int count. Received: {name}={size!r}")
    if isinstance(size, numbers.Integral):
        if not 0 <= size < n:
            raise ValueError(
                f"{name} as a count must be in [0, {n}) for {n} samples. Received: {name}={size!r}"
            )
        return int(size)
    if not (math.isfinite(size) and 0.0 <= size < 1.0):
        raise ValueError(f"{name} as a fraction must be in [0, 1). Received: {name}={size!r}")
    return int(math.ceil(float(size) * n - 1e-9))


def _controlled_round(counts: np.ndarray, totals: np.ndarray) -> np.ndarray:
    """Integer ``(classes, parts)`` table with row sums ``counts``, column sums ``totals``.

    Each entry is the floor or the ceiling of its exact share ``counts[c] * totals[s] / n``
    (controlled rounding). The fractional parts form a feasible fractional flow, so an
    integral one exists (integrality of network flows); it is found by a greedy pass in
    order of largest remainder plus augmenting paths, looping over classes only.
    """
    n = int(counts.sum())
    prod = counts[:, None] * totals[None, :]
    table = prod // n
    rem = prod % n
    row_need = (rem.sum(axis=1) // n).astype(np.int64)
    col_cap = (rem.sum(axis=0) // n).astype(np.int64)
    up = np.zeros(rem.shape, dtype=bool)
    # Greedy: largest remainders first (ties by class, then part: deterministic).
    flat = np.flatnonzero(rem.ravel() > 0)
    flat = flat[np.argsort(-rem.ravel()[flat], kind="stable")]
    n_parts = rem.shape[1]
    for cell in flat.tolist():
        c, s = divmod(cell, n_parts)
        if row_need[c] and col_cap[s]:
            up[c, s] = True
            row_need[c] -= 1
            col_cap[s] -= 1
    for c in np.flatnonzero(row_need).tolist():
        while row_need[c]:
            _augment(c, rem > 0, up, col_cap)
            row_need[c] -= 1
    return table + up


def _augment(c: int, eligible: np.ndarray, up: np.ndarray, col_cap: np.ndarray) -> None:
    """Give class ``c`` one more round-up via an augmenting path over the parts."""
    n_parts = up.shape[1]
    parent: dict[int, tuple[int, int]] = {}  # part -> (previous part or -1, class moved)
    frontier = []
    for s in range(n_parts):
        if eligible[c, s] and not up[c, s]:
            parent[s] = (-1, c)
            frontier.append(s)
    while frontier:
        nxt = []
        for s in frontier:
            if col_cap[s]:
                # Walk back: each step moves one round-up from part `prev` to part `s`.
                col_cap[s] -= 1
                while True:
                    prev, cls = parent[s]
                    up[cls, s] = True
                    if prev < 0:
                        return
                    up[cls, prev] = False
                    s = prev
            for cls in np.flatnonzero(up[:, s]).tolist():
                for t in range(n_parts):
                    if t not in parent and eligible[cls, t] and not up[cls, t]:
                        parent[t] = (s, cls)
                        nxt.append(t)
        frontier = nxt
    raise AssertionError("controlled rounding found no augmenting path")  # pragma: no cover


def _class_major_order(codes: np.ndarray, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    """Indices sorted by class, in random order within each class."""
    perm = rng.permutation(codes.size)
    key = codes[perm]
    if n_classes <= 1 << 8:
        key = key.astype(np.uint8)  # small keys: numpy uses a radix sort
    elif n_classes <= 1 << 16:
        key = key.astype(np.uint16)
    return perm[np.argsort(key, kind="stable")]


def _fill_quota(
    codes: np.ndarray, free: np.ndarray, quota: np.ndarray, rng: np.random.Generator, part: np.ndarray
) -> None:
    """Assign the ``free`` samples: within each class, a random ``quota[c, s]`` go to part ``s``.

    In class-major random order the samples of class ``c`` are contiguous, and so are its
    ``quota[c, 0]``, ``quota[c, 1]``, ... slots, so one ``np.repeat`` of the flattened quota
    gives the part of every position.
    """
    all_free = bool(free.all())
    idx = None if all_free else np.flatnonzero(free)
    sub = codes if idx is None else codes[idx]
    if sub.size == 0:
        return
    n_classes, n_parts = quota.shape
    order = _class_major_order(sub, n_classes, rng)
    if idx is not None:
        order = idx[order]
    slot_part = np.tile(np.arange(n_parts, dtype=part.dtype), n_classes)
    part[order] = np.repeat(slot_part, quota.ravel())


def _place_groups(
    codes: np.ndarray, gcodes: np.ndarray, quota: np.ndarray, rng: np.random.Generator, part: np.ndarray
) -> np.ndarray:
    """Assign grouped samples as units; return the quota left for the ungrouped samples.

    Groups go largest first (random order among equal sizes), each to the part with the
    largest remaining need for the group's labels. The leftover quota of each class is then
    re-balanced so that its row sum equals the class's number of ungrouped samples.
    """
    n_classes, n_parts = quota.shape
    grouped = np.flatnonzero(gcodes >= 0)
    _, ginv = np.unique(gcodes[grouped], return_inverse=True)
    ginv = ginv.reshape(-1)
    n_groups = int(ginv.max()) + 1
    # Composition (group, class) -> count, as sparse triplets sorted by group.
    pair = ginv.astype(np.int64) * n_classes + codes[grouped]
    pairs, pair_counts = np.unique(pair, return_counts=True)
    pair_group, pair_class = np.divmod(pairs, n_classes)
    starts = np.searchsorted(pair_group, np.arange(n_groups + 1))
    sizes = np.bincount(ginv, minlength=n_groups)
    visit = rng.permutation(n_groups)
    visit = visit[np.argsort(-sizes[visit], kind="stable")]
    need = quota.astype(np.int64).tolist()
    target = quota.sum(axis=1).tolist()
    where = np.empty(n_groups, dtype=np.int64)
    pc, pn = pair_class.tolist(), pair_counts.tolist()
    for g in visit.tolist():
        members = range(starts[g], starts[g + 1])
        best, best_score = 0, None
        for s in range(n_parts):
            # Remaining need (relative to class size) minus overshoot: fill big deficits first.
            score = sum(pn[j] * (need[pc[j]][s] - pn[j]) / target[pc[j]] for j in members)
            if best_score is None or score > best_score:
                best, best_score = s, score
        where[g] = best
        for j in members:
            need[pc[j]][best] -= pn[j]
    part[grouped] = where[ginv].astype(part.dtype)
    left = np.asarray(need, dtype=np.int64)
    free_counts = np.bincount(codes[gcodes < 0], minlength=n_classes)
    return _rebalance(left, free_counts)


def _rebalance(need: np.ndarray, free_counts: np.ndarray) -> np.ndarray:
    """Non-negative integer table with row sums ``free_counts``, close to ``need``.

    Negative needs (a part over-filled by groups) are dropped and the rest scaled to the
    free samples of the class by largest remainders.
    """
    pos = np.clip(need, 0, None)
    out = np.zeros_like(pos)
    for c in np.flatnonzero(free_counts).tolist():
        w = pos[c]
        total = int(w.sum())
        if total == 0:  # every part over-filled: spread like the class's original quota
            w = np.ones_like(w)
            total = int(w.size)
        f = int(free_counts[c])
        base = w * f // total
        rem = w * f % total
        short = f - int(base.sum())
        order = np.argsort(-rem, kind="stable")[:short]
        base[order] += 1
        out[c] = base
    return out
