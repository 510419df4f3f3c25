"""Per-class quotas of a split and the samples dealt to them, for :mod:`cellkit.data.split`.

The argument checks of the labels and the sizes, the controlled rounding that gives each
class and part a whole number of samples within one of its exact share, and the dealing of
the free (ungrouped) samples to the parts, class by class, in random order.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np

__all__ = ["class_major_order", "controlled_round", "encode_labels", "fill_quota", "resolve_size"]

Size = float | int


def encode_labels(labels: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def resolve_size(size: Size, n: int, name: str) -> int:
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


def controlled_round(counts: np.ndarray, totals: np.ndarray) -> np.ndarray:
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


def class_major_order(codes: np.ndarray, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    """Indices sorted by class, in random order within each class."""
    perm = rng.permutation(codes.size)
    key = codes[perm]
    if n_classes <= 1 << 8:
        key = key.astype(np.uint8)  # small keys: numpy uses a radix sort
    elif n_classes <= 1 << 16:
        key = key.astype(np.uint16)
    return perm[np.argsort(key, kind="stable")]


def fill_quota(
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
    order = class_major_order(sub, n_classes, rng)
    if idx is not None:
        order = idx[order]
    slot_part = np.tile(np.arange(n_parts, dtype=part.dtype), n_classes)
    part[order] = np.repeat(slot_part, quota.ravel())

