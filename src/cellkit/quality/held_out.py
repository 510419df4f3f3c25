"""The honest protocol for the superposition detector: leave one overlay family out.

A detector that learns from synthetic superpositions must be measured on overlays it did
not learn from. For each overlay family ``F`` (:data:`~cellkit.corrupt.overlays.OVERLAY_FAMILIES`)
and each storage ``S`` (:data:`STORAGES`):

1. a bench is made from clean images: a fraction of them superposed with overlays of ``F``
   only, ``alpha`` uniform in a range, half of them carrying *one* overlay reused on all of
   them (as a meme reused across a dataset), then every image stored as ``S`` (lossless
   PNG, JPEG at several qualities, or a JPEG followed by a resize);
2. a :class:`~cellkit.quality.superposition.SuperpositionDetector` is fitted on the bench,
   without labels, with ``F`` removed from its synthetic overlays;
3. its scores are compared with the truth: AUROC, and precision, recall and F1 at its
   default threshold, with recall by alpha band and for the reused and the unique overlays.

Nothing here is used by the detector's training: the families it holds out are held out.

Example:
    >>> import cellkit
    >>> from cellkit.quality.held_out import held_out_family_protocol
    >>> report = held_out_family_protocol(cellkit.load("sample").images, families=("cartoon",),
    ...                                   storages=("png",), seed=0)
    >>> report.rows[0]["family"], report.rows[0]["storage"]
    ('cartoon', 'png')
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from cellkit._progress import progress
from cellkit.corrupt.overlays import OVERLAY_FAMILIES, cell_overlays, overlay_bank
from cellkit.corrupt.superpose import jpeg_roundtrip, superpose
from cellkit.data.dataset import image_batch
from cellkit.evaluate.metrics import roc_auc

__all__ = ["ALPHA_BANDS", "STORAGES", "HeldOutReport", "held_out_family_protocol", "make_bench", "store"]

#: How the bench is stored: lossless, JPEG at four qualities, and a JPEG q90 then resized
#: down to 5/6 and back (a re-saved, re-scaled picture).
STORAGES: tuple[str, ...] = ("png", "jpeg95", "jpeg90", "jpeg75", "jpeg50", "jpeg90+resize")

#: Alpha bands for the recall breakdown (the bench draws alpha from their union by default).
ALPHA_BANDS: tuple[tuple[float, float], ...] = ((0.25, 0.35), (0.35, 0.45), (0.45, 0.6))


def store(images: np.ndarray, storage: str) -> np.ndarray:
    """``images`` stored as ``storage`` (one of :data:`STORAGES`) and read back."""
    images = image_batch(images)
    if storage == "png":
        return images.copy()
    if storage.startswith("jpeg") and storage[4:].isdigit():
        return jpeg_roundtrip(images, int(storage[4:]))
    if storage == "jpeg90+resize":
        n, h, w, _ = images.shape
        small = (w * 5 // 6, h * 5 // 6)
        j = jpeg_roundtrip(images, 90)
        return np.stack([cv2.resize(cv2.resize(im, small, interpolation=cv2.INTER_AREA), (w, h),
                                    interpolation=cv2.INTER_LINEAR) for im in j]) if n else j
    raise ValueError(f"`storage` must be one of {STORAGES}. Received: storage={storage!r}")


@dataclass(frozen=True)
class Bench:
    """A bench: ``images`` with the truth of each (``superposed``, ``reused``, ``alpha``, NaN if clean)."""

    images: np.ndarray
    superposed: np.ndarray
    reused: np.ndarray
    alpha: np.ndarray

    @classmethod
    def of(cls, images: np.ndarray, which: np.ndarray, n_reused: int, alpha: np.ndarray) -> Bench:
        """The bench of ``images`` whose indices ``which`` were superposed at ``alpha`` (the first
        ``n_reused`` of them with a reused overlay)."""
        n = len(images)
        superposed = np.zeros(n, bool)
        superposed[which] = True
        reused = np.zeros(n, bool)
        reused[which[:n_reused]] = True
        alphas = np.full(n, np.nan)
        alphas[which] = alpha
        return cls(images, superposed, reused, alphas)


def make_bench(
    images: np.ndarray,
    family: str,
    rng: np.random.Generator,
    *,
    fraction: float = 0.1,
    alpha: tuple[float, float] = (0.25, 0.6),
    reused_share: float = 0.5,
    reused_group: int = 25,
) -> Bench:
    """Superpose overlays of one ``family`` on a ``fraction`` of ``images`` (not stored yet).

    ``reused_share`` of the superposed images carry a reused overlay: groups of
    ``reused_group`` images share one (a meme reused across a dataset); the others each
    carry their own. ``"cells"`` overlays are other images of ``images``.
    """
    images = image_batch(images)
    n = images.shape[0]
    k = int(round(fraction * n))
    out = images.copy()
    which = rng.choice(n, size=k, replace=False)
    if family == "cells":
        overlays, _ = cell_overlays(images, k, rng, exclude=which)
    else:
        overlays = overlay_bank(family, k, images.shape[1:3], rng)
    n_reused = int(round(reused_share * k))
    for start in range(0, n_reused, reused_group):  # each group carries its first overlay
        overlays[start : min(start + reused_group, n_reused)] = overlays[start]
    a = rng.uniform(alpha[0], alpha[1], size=k)
    out[which] = superpose(images[which], overlays, a)
    return Bench.of(out, which, n_reused, a)


@dataclass
class HeldOutReport:
    """Rows of :func:`held_out_family_protocol`, one per (family, storage)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"settings": self.settings, "rows": self.rows}

    def worst(self, key: str = "recall") -> dict[str, Any]:
        """The row with the lowest ``key``."""
        return min(self.rows, key=lambda r: r[key])

    def to_markdown(self) -> str:
        """A table: family, storage, AUROC, precision, recall, F1, recall by alpha band, reused/unique."""
        bands = [f"{lo:g}-{hi:g}" for lo, hi in ALPHA_BANDS]
        head = ["family", "storage", "n", "AUROC", "precision", "recall", "F1", *(f"recall a {b}" for b in bands),
                "recall reused", "recall unique", "flagged clean"]
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|"]
        for r in self.rows:
            cells = [r["family"], r["storage"], str(r["superposed"]), f"{r['auroc']:.4f}", f"{r['precision']:.3f}",
                     f"{r['recall']:.3f}", f"{r['f1']:.3f}", *(_fmt(r["recall_by_alpha"].get(b)) for b in bands),
                     _fmt(r["recall_reused"]), _fmt(r["recall_unique"]), f"{r['flagged_clean']:.4f}"]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"


def _fmt(v: float | None) -> str:
    return "" if v is None or np.isnan(v) else f"{v:.3f}"


def _recall(flag: np.ndarray, mask: np.ndarray) -> float:
    return float(flag[mask].mean()) if mask.any() else float("nan")


def score_bench(bench: Bench, scores: np.ndarray, threshold: float) -> dict[str, Any]:
    """AUROC, precision, recall, F1 (flagged = ``scores < threshold``) and the breakdowns."""
    y = bench.superposed
    flag = scores < threshold
    tp = int((flag & y).sum())
    precision = tp / max(int(flag.sum()), 1)
    recall = tp / max(int(y.sum()), 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    by_alpha = {f"{lo:g}-{hi:g}": _recall(flag, y & (bench.alpha >= lo) & (bench.alpha < hi + 1e-9))
                for lo, hi in ALPHA_BANDS}
    return {
        "superposed": int(y.sum()),
        "images": int(y.size),
        "auroc": roc_auc(y, -scores) if 0 < y.sum() < y.size else float("nan"),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "recall_by_alpha": by_alpha,
        "recall_reused": _recall(flag, bench.reused),
        "recall_unique": _recall(flag, y & ~bench.reused),
        "flagged_clean": float(flag[~y].mean()) if (~y).any() else float("nan"),
    }


def held_out_family_protocol(
    images: np.ndarray,
    families: Sequence[str] = OVERLAY_FAMILIES,
    storages: Sequence[str] = STORAGES,
    *,
    training_families: Sequence[str] = OVERLAY_FAMILIES,
    fraction: float = 0.1,
    alpha: tuple[float, float] = (0.25, 0.6),
    reused_share: float = 0.5,
    seed: int = 0,
    detector_params: Mapping[str, Any] | None = None,
    quiet: bool = True,
    on_fit: Callable[[str, str, Bench, Any, np.ndarray], None] | None = None,
) -> HeldOutReport:
    """Run the protocol (module docstring) on clean ``images``; one row per (family, storage).

    Args:
        images: clean ``uint8`` images ``(n, h, w, 3)`` (or a Dataset).
        families: the families to hold out, one at a time.
        storages: how each bench is stored (:data:`STORAGES`).
        training_families: the detector's synthetic families, less the held-out one.
        fraction, alpha, reused_share: the bench (:func:`make_bench`).
        seed: seed of the benches; the detector uses ``random_state=seed``.
        detector_params: other :class:`SuperpositionDetector` parameters.
        quiet: no progress bar.
        on_fit: called after each row as ``on_fit(family, storage, bench, detector, scores)``
            (the stored bench, the fitted detector, its scores): for probes that study the
            scores themselves (e.g. ``benchmarks/probes/threshold_rules.py``).
    """
    from cellkit.quality.superposition import SuperpositionDetector

    images = image_batch(images)
    params = dict(detector_params or {})
    report = HeldOutReport(settings={"images": int(images.shape[0]), "fraction": fraction, "alpha": list(alpha),
                                     "reused_share": reused_share, "seed": seed, "detector_params": params,
                                     "training_families": list(training_families)})
    jobs = [(f, s) for f in families for s in storages]
    for family, storage in progress(jobs, desc="held-out families", quiet=quiet):
        rng = np.random.default_rng([seed, OVERLAY_FAMILIES.index(family)])
        bench = make_bench(images, family, rng, fraction=fraction, alpha=alpha, reused_share=reused_share)
        stored = store(bench.images, storage)
        kinds = tuple(k for k in training_families if k != family)
        start = time.perf_counter()
        det = SuperpositionDetector(overlay_kinds=kinds, random_state=seed, **params).fit(stored)
        scores = det.score_samples(stored)
        stored_bench = Bench(stored, bench.superposed, bench.reused, bench.alpha)
        row = {"family": family, "storage": storage, "fit_seconds": round(time.perf_counter() - start, 1),
               **score_bench(stored_bench, scores, det.threshold_)}
        report.rows.append(row)
        if on_fit is not None:
            on_fit(family, storage, stored_bench, det, scores)
    return report
