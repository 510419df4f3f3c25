"""Cross-fitted rounds: every user image scored by models that never saw it.

Step 2 of :class:`~cellkit.quality.superposition.SuperpositionDetector`'s ``fit``. Each round
splits the user's images in two folds; the model trained on one fold's images (less the
suspects) and the positives made from them scores the other fold's images. The images whose
out-of-fold logit exceeds ``suspect_logit`` are left out of the next round's negatives; from
the second round on, those above ``pseudo_logit`` also serve as positives. The copies of a
reused overlay (``reused``) are always suspects and positives.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["cross_fit"]


def cross_fit(
    train: Callable[[np.ndarray, np.ndarray, int], Any],
    x_neg: np.ndarray,
    x_pos: np.ndarray,
    base: np.ndarray,
    folds: Sequence[np.ndarray],
    reused: np.ndarray,
    suspects: np.ndarray,
    *,
    seed: int,
    suspect_logit: float,
    pseudo_logit: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(oof, suspects, pseudo)`` after the rounds of ``folds`` (one 0/1 array per round).

    ``train(x_neg, x_pos, seed)`` returns a model with ``logit``; round ``r`` trains fold
    ``k``'s model with ``seed + 2 * r + k``. ``base[i]``: the user image positive ``i`` was
    made from (a positive is in the fold of its image). ``oof``: the last round's
    out-of-fold logits of the user images.
    """
    n = x_neg.shape[0]
    pseudo = reused.copy()
    for r, fold in enumerate(folds):
        oof = np.zeros(n)
        for k in (0, 1):
            tr_neg = (fold != k) & ~suspects
            tr_pos = fold[base] != k
            x_p = np.concatenate([x_pos[tr_pos], x_neg[(fold != k) & pseudo]])
            model = train(x_neg[tr_neg], x_p, seed + 2 * r + k)
            oof[fold == k] = model.logit(x_neg[fold == k])
        suspects = (oof > suspect_logit) | reused
        if r >= 1:
            pseudo = (oof > pseudo_logit) | reused
    return oof, suspects, pseudo
