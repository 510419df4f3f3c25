"""Development check of the superposition detector on real data (not part of the test suite).

Corrupts pbc96 (or a subset) with :func:`cellkit.corrupt.corrupt_dataset` defaults and an
evaluation seed, fits :class:`cellkit.quality.superposition.SuperpositionDetector` on the
corrupted images without labels, and prints AUROC/F1 overall and per overlay kind, the
fit time and the scoring throughput.

Usage:
    python benchmarks/probes/eval_superposition.py [PBC96_DIR_OR_NPZ] [--n 4000] [--seed 123]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import cellkit
from cellkit.corrupt import corrupt_dataset
from cellkit.evaluate.metrics import roc_auc as auroc
from cellkit.quality.superposition import SuperpositionDetector


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "data",
        nargs="?",
        default=os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "pbc96"),
    )
    ap.add_argument("--n", type=int, default=0, help="random subset size (0 = all)")
    ap.add_argument("--seed", type=int, default=123, help="corruption seed")
    ap.add_argument("--random-state", type=int, default=0, help="detector seed")
    ap.add_argument("--save", default=None, help="write scores and ground truth to this .npz")
    ap.add_argument("--set", nargs="*", default=[], help="detector params key=value (Python literals)")
    args = ap.parse_args()
    ds = cellkit.load(args.data)
    if args.n and args.n < len(ds):
        ds = ds.subset(np.sort(np.random.default_rng(7).choice(len(ds), args.n, replace=False)))
    t = time.perf_counter()
    res = corrupt_dataset(ds, seed=args.seed)
    print(
        f"{len(ds)} images, corrupted in {time.perf_counter() - t:.1f}s: "
        f"{res.is_superposed.sum()} superposed, {res.is_color_filtered.sum()} colour-filtered"
    )
    import ast

    params = {k: ast.literal_eval(v) for k, v in (s.split("=", 1) for s in args.set)}
    det = SuperpositionDetector(random_state=args.random_state, **params)
    det.fit(res.dataset)
    print(
        f"fit {det.fit_time_:.1f}s; suspects {det.n_suspects_} (true {int(det.suspects_[res.is_superposed].sum())}), "
        f"shared-component {det.n_shared_component_}, pseudo-positives {det.n_pseudo_positives_}, "
        f"contamination_ {det.contamination_:.4f}, n_iter {det.n_iter_}"
    )
    imgs = res.dataset.images
    det.score_samples(imgs[:512])
    t = time.perf_counter()
    score = det.score_samples(imgs)
    dt = time.perf_counter() - t
    print(f"scoring: {len(imgs) / dt:.0f} images/s ({dt:.2f}s)")
    sup = res.is_superposed
    if args.save:
        np.savez(
            args.save,
            score=score,
            sup=sup,
            kind=res.overlay_kind,
            alpha=res.alpha,
            oid=res.overlay_id,
            col=res.is_color_filtered,
            suspects=det.suspects_,
            threshold=det.threshold_,
        )
    pred = score < det.threshold_
    tp = int((pred & sup).sum())
    fp = int((pred & ~sup).sum())
    fn = int((~pred & sup).sum())
    f1 = 2 * tp / max(2 * tp + fp + fn, 1)
    print(
        f"overall AUROC {auroc(sup, -score):.5f}  F1 {f1:.4f}  (TP {tp}, FP {fp}, FN {fn}; "
        f"FP among colour-filtered {int((pred & res.is_color_filtered).sum())})"
    )
    for kind in ("natural", "drawn", "cells"):
        m = res.overlay_kind == kind
        sel = m | ~sup
        rec = (pred & m).sum() / max(m.sum(), 1)
        print(f"  {kind:8s} n={m.sum():5d} AUROC {auroc(sup[sel], -score[sel]):.5f} recall {rec:.4f}")
    for lo, hi in ((0.25, 0.3), (0.3, 0.4), (0.4, 0.6)):
        m = sup & (res.alpha >= lo) & (res.alpha < hi)
        print(f"  alpha [{lo},{hi}) recall {(pred & m).sum() / max(m.sum(), 1):.4f}")
    ids = res.overlay_id
    for o in range(res.metadata["n_repeated_overlays"]):
        m = ids == o
        if m.any():
            print(
                f"  repeated overlay {o} ({res.overlay_kind[m][0]}): n={m.sum()} recall {(pred & m).sum() / m.sum():.3f}"
            )
    if ds.labels is not None:
        print(
            "  false positives by class:",
            np.bincount(ds.labels[pred & ~sup], minlength=ds.num_classes).tolist(),
        )
    print(
        f"  repeated overlays recall {(pred & (ids >= 0) & (ids < 8)).sum() / max(((ids >= 0) & (ids < 8)).sum(), 1):.4f}"
        f"  unique {(pred & (ids >= 8)).sum() / max((ids >= 8).sum(), 1):.4f}"
    )


if __name__ == "__main__":
    main()
