"""Compare rules for the superposition detector's default threshold, on held-out families.

The detector's default flags images whose estimated probability of being clean is below
``AUTO_THRESHOLD``; on the held-out protocol that flags 0.6-0.8% of the clean images, so
precision at 10% superposed is 0.93-0.95. This probe fits the detector once per bench (the
protocol of ``cellkit.quality.held_out``), keeps every score, and then applies each rule of
``RULES`` to the same scores. It runs on the *development* families (natural, drawn, cells,
text; PNG, JPEG q90, q50) plus data with 0% and 30% superposed images, and with
``--confirm`` on the *confirmation* families (cartoon, graphics, microscopy, faces; all six
storages): a rule is chosen on the first and only confirmed on the second.

    python benchmarks/probes/threshold_rules.py ../shared/data/pbc96 [--n 4000] [--confirm]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import cellkit
from cellkit.corrupt.overlays import OVERLAY_FAMILIES
from cellkit.quality.held_out import STORAGES, Bench, held_out_family_protocol, make_bench, score_bench, store
from cellkit.quality.superposition import AUTO_THRESHOLD, SuperpositionDetector

DEVELOPMENT = ("natural", "drawn", "cells", "text")
CONFIRMATION = ("cartoon", "graphics", "microscopy", "faces")
DEV_STORAGES = ("png", "jpeg90", "jpeg50")


def fdr_threshold(scores: np.ndarray, q: float, cap: float = 1.0) -> float:
    """The threshold flagging the most images whose mean probability of being clean is at most ``q``.

    Flagging the ``k`` lowest scores (estimated probabilities of being clean), the expected
    share of clean images among them is their mean (a Bayesian false discovery rate); never
    an image scoring ``cap`` or more, always one scoring below ``q``; ties together or not at all.
    """
    x = np.sort(np.asarray(scores, dtype=np.float64).ravel())
    below = np.cumsum(x) <= q * np.arange(1, x.size + 1)
    k = int(np.flatnonzero(below)[-1]) + 1 if below.any() else 0  # the running mean only grows
    if k == x.size:
        cutoff = np.nextafter(x[-1], np.inf)
    else:
        cutoff = 0.5 * (x[k - 1] + x[k]) if k and x[k - 1] < x[k] else x[k - 1] if k else 0.0
    return float(min(cap, max(q, cutoff)))


def _fixed(value: float):  # noqa: ANN202
    return lambda scores, det: value


def _fdr(q: float):  # noqa: ANN202
    return lambda scores, det: fdr_threshold(scores, q, AUTO_THRESHOLD)


RULES = {"fixed 0.35": _fixed(AUTO_THRESHOLD), "fixed 0.2": _fixed(0.2), "fixed 0.1": _fixed(0.1),
         "fdr 0.01": _fdr(0.01), "fdr 0.02": _fdr(0.02), "fdr 0.05": _fdr(0.05)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--confirm", action="store_true")
    args = parser.parse_args()
    ds = cellkit.load(args.data)
    images = ds.images[np.sort(np.random.default_rng(0).choice(len(ds), args.n, replace=False))]
    results: dict[str, list[dict]] = {name: [] for name in RULES}

    def apply_rules(family, storage, bench, det, scores) -> None:  # noqa: ANN001
        for name, rule in RULES.items():
            results[name].append({"family": family, "storage": storage,
                                  **score_bench(bench, scores, rule(scores, det))})

    start = time.perf_counter()
    families, storages = (CONFIRMATION, STORAGES) if args.confirm else (DEVELOPMENT, DEV_STORAGES)
    held_out_family_protocol(images, families, storages, seed=0, on_fit=apply_rules)
    extra: dict[str, dict[str, list[dict]]] = {"0%": {k: [] for k in RULES}, "30%": {k: [] for k in RULES}}
    for label, fraction, share in (("0%", 0.0, 0.5), ("30%", 0.3, 1 / 3)):
        for storage in ("png", "jpeg90"):
            rng = np.random.default_rng([0, 99])
            bench = make_bench(images, "natural", rng, fraction=fraction, reused_share=share,
                               reused_group=max(int(0.1 * len(images)), 1))
            stored = store(bench.images, storage)
            det = SuperpositionDetector(overlay_kinds=tuple(k for k in OVERLAY_FAMILIES if k != "natural"),
                                        random_state=0).fit(stored)
            scores = det.score_samples(stored)
            for name, rule in RULES.items():
                extra[label][name].append(score_bench(
                    Bench(stored, bench.superposed, bench.reused, bench.alpha), scores, rule(scores, det)))
    print(f"{'confirmation' if args.confirm else 'development'} families, {args.n} images, "
          f"{(time.perf_counter() - start) / 60:.1f} min")
    print("| rule | mean precision | min precision | mean recall | min recall | rows P,R >= 0.95 "
          "| 0% flagged (png, q90) | 30%: precision, recall (png, q90) |")
    print("|---|---:|---:|---:|---:|---:|---|---|")
    for name, rows in results.items():
        p = np.array([r["precision"] for r in rows])
        r = np.array([r["recall"] for r in rows])
        zero = ", ".join(f"{x['flagged_clean']:.4f}" for x in extra["0%"][name])
        thirty = ", ".join(f"{x['precision']:.3f}/{x['recall']:.3f}" for x in extra["30%"][name])
        print(f"| {name} | {p.mean():.4f} | {p.min():.4f} | {r.mean():.4f} | {r.min():.4f} "
              f"| {int(((p >= 0.95) & (r >= 0.95)).sum())}/{len(rows)} | {zero} | {thirty} |")
    for name, rows in results.items():
        print(name, " ".join(f"{x['family']}/{x['storage']}:{x['precision']:.3f}/{x['recall']:.3f}" for x in rows))


if __name__ == "__main__":
    main()
