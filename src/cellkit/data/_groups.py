"""Grouped samples placed as units (a group never straddles two parts), for :mod:`cellkit.data.split`.

Groups go first, largest first, each to the part that needs its labels most; the quota left
for the ungrouped samples is then re-balanced class by class.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["encode_groups", "place_groups"]


def encode_groups(groups: Sequence[int] | np.ndarray, n: int) -> np.ndarray:
    g = np.asarray(groups)
    if g.shape != (n,) or (g.size and g.dtype.kind not in "biu"):
        raise ValueError(
            f"groups must be an int array of shape ({n},) (one group per label, -1 = none). "
            f"Received: groups with dtype={g.dtype}, shape={g.shape}"
        )
    return g.astype(np.int64, copy=False)


def place_groups(
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
