"""Corrupt a whole dataset the way the seed report's data was corrupted, with ground truth.

About 13% of the images superposed with another picture (natural photographs, drawn
cartoons/text, or other cells; some overlays reused many times, others unique) and 2%
seen through a blue filter; every image, clean ones included, then goes through a JPEG
round trip so that re-encoding is no cue. The result carries per-image masks so that
detectors can be scored.

Example:
    >>> import numpy as np
    >>> from cellkit.data import Dataset
    >>> from cellkit.corrupt import corrupt_dataset
    >>> ds = Dataset(np.random.default_rng(0).integers(0, 256, (50, 32, 32, 3), dtype=np.uint8))
    >>> res = corrupt_dataset(ds, superposed=0.2, color_filtered=0.1, seed=1)
    >>> int(res.is_superposed.sum()), int(res.is_color_filtered.sum())
    (10, 5)
    >>> res.dataset.ids == ds.ids
    True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from cellkit.corrupt.color import color_filter, random_filter_gains
from cellkit.corrupt.overlays import OVERLAY_KINDS, cell_overlays, overlay_bank
from cellkit.corrupt.superpose import check_alpha_range, check_kinds, jpeg_roundtrip, superpose
from cellkit.data import Dataset

__all__ = ["OVERLAY_MODES", "CorruptionResult", "corrupt_dataset"]

#: How overlays are reused: ``"repeated"`` (a few overlays reused many times),
#: ``"unique"`` (a fresh overlay each time), ``"mixed"`` (half each).
OVERLAY_MODES: tuple[str, ...] = ("mixed", "repeated", "unique")


@dataclass(frozen=True, eq=False)
class CorruptionResult:
    """A corrupted dataset and the ground truth of what was done to each image.

    Attributes:
        dataset: the corrupted :class:`~cellkit.data.Dataset` (same ids, labels, classes).
        is_superposed: ``bool`` ``(n,)``.
        is_color_filtered: ``bool`` ``(n,)`` (disjoint from ``is_superposed``).
        alpha: overlay weight ``(n,)`` float, 0 where not superposed.
        overlay_kind: ``(n,)`` str, ``"natural"``, ``"drawn"``, ``"cells"`` or ``""``.
        overlay_id: ``(n,)`` int, one id per distinct overlay picture (repeated overlays
            are ``0 .. n_repeated_overlays - 1``), -1 where not superposed.
        metadata: seed and parameters (JSON-serialisable), plus the filter gains used.
    """

    dataset: Dataset
    is_superposed: np.ndarray
    is_color_filtered: np.ndarray
    alpha: np.ndarray
    overlay_kind: np.ndarray
    overlay_id: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def is_clean(self) -> np.ndarray:
        """``bool`` ``(n,)``: neither superposed nor colour-filtered."""
        return ~(self.is_superposed | self.is_color_filtered)


def _fraction(value: float, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a fraction in [0, 1]. Received: {name}={value!r}") from None
    if not 0 <= v <= 1:
        raise ValueError(f"`{name}` must be a fraction in [0, 1]. Received: {name}={value!r}")
    return v


def corrupt_dataset(
    dataset: Dataset | np.ndarray,
    *,
    superposed: float = 0.13,
    color_filtered: float = 0.02,
    alpha: float | Sequence[float] = (0.25, 0.6),
    overlay_kinds: Sequence[str] = OVERLAY_KINDS,
    overlay_mode: Literal["mixed", "repeated", "unique"] = "mixed",
    n_repeated_overlays: int = 8,
    jpeg_quality: int | None = 90,
    seed: int = 0,
) -> CorruptionResult:
    """Corrupt a copy of ``dataset`` with superpositions and colour filters, seeded.

    Args:
        dataset: a :class:`~cellkit.data.Dataset` or a ``uint8`` ``(n, h, w, 3)`` array.
            Never modified.
        superposed: fraction of images superposed with an overlay (rounded to a count).
        color_filtered: fraction of the other images seen through a random blue filter
            (:func:`cellkit.corrupt.color.random_filter_gains`).
        alpha: overlay weight, a number or a ``(low, high)`` range drawn uniformly.
        overlay_kinds: kinds drawn from (see :mod:`cellkit.corrupt.overlays`).
        overlay_mode: ``"repeated"``: ``n_repeated_overlays`` overlays (kinds in turn)
            reused at random; ``"unique"``: a fresh overlay for every image; ``"mixed"``:
            half the superposed images each way.
        n_repeated_overlays: size of the reused set.
        jpeg_quality: every image, clean or not, is JPEG-encoded and decoded at this
            quality (``None`` skips the round trip).
        seed: the same seed gives the same output.

    Returns:
        A :class:`CorruptionResult`.
    """
    ds = dataset if isinstance(dataset, Dataset) else Dataset(np.asarray(dataset))
    p_sup = _fraction(superposed, "superposed")
    p_col = _fraction(color_filtered, "color_filtered")
    if p_sup + p_col > 1:
        raise ValueError(
            "`superposed + color_filtered` must be <= 1. "
            f"Received: superposed={superposed!r}, color_filtered={color_filtered!r}"
        )
    lo, hi = check_alpha_range(alpha)
    kinds = check_kinds(overlay_kinds)
    if overlay_mode not in OVERLAY_MODES:
        raise ValueError(
            f"`overlay_mode` must be one of {OVERLAY_MODES}. Received: overlay_mode={overlay_mode!r}"
        )
    if (
        isinstance(n_repeated_overlays, bool)
        or not isinstance(n_repeated_overlays, (int, np.integer))
        or n_repeated_overlays < 1
    ):
        raise ValueError(
            f"`n_repeated_overlays` must be an integer >= 1. Received: n_repeated_overlays={n_repeated_overlays!r}"
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"`seed` must be an integer. Received: seed={seed!r}")

    rng = np.random.default_rng(int(seed))
    images = ds.images
    n, h, w, _ = images.shape
    if "cells" in kinds and n < 2 and p_sup > 0:
        raise ValueError(f'overlay kind "cells" needs at least 2 images. Received: {n} image(s)')
    k_sup = int(round(p_sup * n))
    k_col = min(int(round(p_col * n)), n - k_sup)
    perm = rng.permutation(n)
    sup_idx = np.sort(perm[:k_sup])
    col_idx = np.sort(perm[k_sup : k_sup + k_col])

    alphas = rng.uniform(lo, hi, size=k_sup)
    if overlay_mode == "repeated":
        repeated = np.ones(k_sup, bool)
    elif overlay_mode == "unique":
        repeated = np.zeros(k_sup, bool)
    else:
        repeated = np.zeros(k_sup, bool)
        repeated[rng.permutation(k_sup)[: k_sup // 2]] = True

    overlays = np.empty((k_sup, h, w, 3), np.uint8)
    kind = np.full(k_sup, "", dtype="<U7")
    ids = np.full(k_sup, -1, np.int64)

    # The reused set: kinds in turn; repeated cell overlays come from images left clean.
    n_rep = int(n_repeated_overlays)
    rep_kinds = np.array([kinds[j % len(kinds)] for j in range(n_rep)])
    bank = np.empty((n_rep, h, w, 3), np.uint8)
    if repeated.any():
        not_sup = np.setdiff1d(np.arange(n), sup_idx)
        pool = not_sup if not_sup.size else np.arange(n)
        for k in kinds:
            sel = np.flatnonzero(rep_kinds == k)
            if sel.size == 0:
                continue
            if k == "cells":
                bank[sel] = cell_overlays(images[pool], sel.size, rng)[0]
            else:
                bank[sel] = overlay_bank(k, sel.size, (h, w), rng)
        rsel = np.flatnonzero(repeated)
        pick = rng.integers(0, n_rep, size=rsel.size)
        overlays[rsel] = bank[pick]
        kind[rsel] = rep_kinds[pick]
        ids[rsel] = pick

    usel = np.flatnonzero(~repeated)
    ukind = np.asarray(kinds)[rng.integers(0, len(kinds), size=usel.size)]
    for k in kinds:
        sel = usel[ukind == k]
        if sel.size == 0:
            continue
        if k == "cells":
            overlays[sel] = cell_overlays(images, sel.size, rng, exclude=sup_idx[sel])[0]
        else:
            overlays[sel] = overlay_bank(k, sel.size, (h, w), rng)
        kind[sel] = k
    ids[usel] = n_rep + np.arange(usel.size)

    out = images.copy()
    if k_sup:
        out[sup_idx] = superpose(images[sup_idx], overlays, alphas)
    gains = random_filter_gains(k_col, rng, kind="blue")
    if k_col:
        out[col_idx] = color_filter(images[col_idx], gains)
    out = jpeg_roundtrip(out, jpeg_quality)

    is_sup = np.zeros(n, bool)
    is_sup[sup_idx] = True
    is_col = np.zeros(n, bool)
    is_col[col_idx] = True
    alpha_full = np.zeros(n, np.float64)
    alpha_full[sup_idx] = alphas
    kind_full = np.full(n, "", dtype="<U7")
    kind_full[sup_idx] = kind
    id_full = np.full(n, -1, np.int64)
    id_full[sup_idx] = ids
    metadata: dict[str, Any] = {
        "seed": int(seed),
        "superposed": p_sup,
        "color_filtered": p_col,
        "alpha": [lo, hi],
        "overlay_kinds": list(kinds),
        "overlay_mode": overlay_mode,
        "n_repeated_overlays": n_rep,
        "jpeg_quality": jpeg_quality,
        "source": ds.source,
        "color_filter_gains": gains.round(6).tolist(),
    }
    corrupted = dataclasses.replace(ds, images=out)
    return CorruptionResult(
        dataset=corrupted,
        is_superposed=is_sup,
        is_color_filtered=is_col,
        alpha=alpha_full,
        overlay_kind=kind_full,
        overlay_id=id_full,
        metadata=metadata,
    )
