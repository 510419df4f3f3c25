"""cellkit's superposition detector beside CleanVision and perceptual hashes, same images, same run.

The data: pbc96 (all 14,528 images with ``--full``; 2,000 in quick mode) corrupted with
``corrupt_dataset(seed=EVAL_SEED)`` defaults (13% superposed, 2% blue-filtered, JPEG q90).
Each method scores every image with no labels; we report

* the AUROC of each score for "superposed" (for CleanVision, of each of its issue scores,
  lower = issue, and the best of them: an upper bound that needs labels to pick),
* precision / recall / F1 of each method's own default flags,
* images/s of the scoring (CleanVision: its ``find_issues`` on the image files written once
  beforehand; cellkit: ``score_samples`` on the in-memory array, fit timed separately),
* end to end on the same PNG files: ``cellkit inspect FOLDER --report DIR`` (load, fit the
  three detectors, score, write the report and montages) against CleanVision's
  ``find_issues`` (load, its checks); the issue's target is a ratio of 3 or more.

Perceptual hashes: imagededup's PHash needs torchvision, which has no wheel that works beside
this machine's CPU torch, so the ImageHash package (the pHash that CleanVision itself uses,
same algorithm as imagededup's) stands in: score = Hamming distance to the nearest other
image's hash (a superposition with a reused overlay moves images together or apart).

Optional dependency: ``pip install cleanvision`` (pulls pandas, scikit-learn, ImageHash);
skipped without it. Writes ``results_dir / "quality_baselines.md"``.

    python -m pytest benchmarks/test_bench_quality_baselines.py --full
"""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

import cellkit
from cellkit._io import atomic_write_text
from cellkit.cli import main as cli_main
from cellkit.corrupt import corrupt_dataset
from cellkit.evaluate.metrics import roc_auc
from cellkit.quality import SuperpositionDetector, perceptual_hash
from cellkit.quality.duplicates import hamming_distance

EVAL_SEED = 2024
QUICK_N = 2000
#: End to end, ``cellkit inspect`` must stay this many times faster than CleanVision's
#: ``find_issues`` on all 14,528 images (measured 3.2x and 3.8x in two runs of stop 27, 2.4x and 2.9x
#: before; the issue's target is 3x: this floor guards against a regression without failing on a noisy run).
#: Not checked in quick mode: on 2,000 images the fits' fixed cost makes cellkit the slower.
INSPECT_SPEEDUP_FLOOR = 2.5


def _prf(flag: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    tp = float((flag & truth).sum())
    precision = tp / max(1.0, float(flag.sum()))
    recall = tp / max(1.0, float(truth.sum()))
    f1 = 0.0 if tp == 0 else 2 * precision * recall / (precision + recall)
    return precision, recall, f1


def _nearest_hamming(hashes: np.ndarray) -> np.ndarray:
    out = np.full(len(hashes), 64, np.int64)
    for start in range(0, len(hashes), 1024):
        d = hamming_distance(hashes[start : start + 1024, None], hashes[None, :]).astype(np.int64)
        d[np.arange(d.shape[0]), np.arange(start, start + d.shape[0])] = 64
        out[start : start + 1024] = d.min(axis=1)
    return out


def test_cellkit_beats_cleanvision_and_hashes(pbc96_path: Path, full_mode: bool, results_dir: Path,
                                              hardware: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    cleanvision = pytest.importorskip("cleanvision", reason="optional: pip install cleanvision")
    imagehash = pytest.importorskip("imagehash", reason="optional: comes with cleanvision")
    from PIL import Image

    ds = cellkit.load(pbc96_path)
    if not full_mode:
        ds = ds.subset(np.sort(np.random.default_rng(0).choice(len(ds), QUICK_N, replace=False)))
    corrupted = corrupt_dataset(ds, seed=EVAL_SEED)
    images, truth = corrupted.dataset.images, corrupted.is_superposed
    rows: list[tuple[str, float, str, float, float, float, float]] = []

    t = time.perf_counter()
    detector = SuperpositionDetector(random_state=0).fit(images)
    fit_s = time.perf_counter() - t
    t = time.perf_counter()
    scores = detector.score_samples(images)
    speed = len(images) / (time.perf_counter() - t)
    ours_auc = roc_auc(truth, -scores)
    rows.append(("cellkit SuperpositionDetector", ours_auc, "", *_prf(scores < detector.threshold_, truth), speed))

    folder = tmp_path_factory.mktemp("cleanvision-images")
    for i, img in enumerate(images):
        cv2.imwrite(str(folder / f"{i:06d}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    logging.getLogger("cleanvision").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lab = cleanvision.Imagelab(data_path=str(folder))
        t = time.perf_counter()
        lab.find_issues(verbose=False)
        cv_speed = len(images) / (time.perf_counter() - t)
    cv_seconds = len(images) / cv_speed
    report_dir = tmp_path_factory.mktemp("inspect") / "report"
    t = time.perf_counter()
    assert cli_main(["inspect", str(folder), "--report", str(report_dir), "--quiet"]) == 0
    inspect_seconds = time.perf_counter() - t
    table = lab.issues.sort_index()  # index: file paths, sorted = image order
    score_cols = [c for c in table.columns if c.endswith("_score")]
    aucs = {c: roc_auc(truth, -table[c].to_numpy(np.float64)) for c in score_cols}
    best = max(aucs, key=aucs.get)
    flags = np.zeros(len(images), bool)
    for c in table.columns:
        if c.startswith("is_") and c.endswith("_issue"):
            flags |= table[c].to_numpy(bool)
    rows.append(("CleanVision (default flags; best score)", aucs[best], best, *_prf(flags, truth), cv_speed))

    t = time.perf_counter()
    ih = np.array(
        [int(str(imagehash.phash(Image.fromarray(im))), 16) for im in images], dtype=np.uint64
    )
    ih_speed = len(images) / (time.perf_counter() - t)
    ih_auc = roc_auc(truth, _nearest_hamming(ih).astype(float))
    rows.append(("ImageHash pHash, nearest-neighbour distance", max(ih_auc, 1 - ih_auc), "", float("nan"),
                 float("nan"), float("nan"), ih_speed))
    ours_hash = perceptual_hash(images)
    ck_auc = roc_auc(truth, _nearest_hamming(ours_hash).astype(float))
    rows.append(("cellkit pHash, nearest-neighbour distance", max(ck_auc, 1 - ck_auc), "", float("nan"),
                 float("nan"), float("nan"), float("nan")))

    lines = [
        "# Superposition: cellkit beside CleanVision and perceptual hashes (same images, same run)",
        "",
        f"Data: pbc96, {len(images)} images{'' if full_mode else ' (random subset)'}, "
        f"`corrupt_dataset(seed={EVAL_SEED})` defaults: {int(truth.sum())} superposed, "
        f"{int(corrupted.is_color_filtered.sum())} blue-filtered, all JPEG q90. No labels given to any method.",
        f"cellkit fit (one-off, self-supervised): {fit_s:.1f} s. CleanVision {cleanvision.__version__}, "
        f"ImageHash {getattr(imagehash, '__version__', '?')}.",
        f"Hardware: {hardware}.",
        f"Command: `python -m pytest benchmarks/test_bench_quality_baselines.py{' --full' if full_mode else ''}`.",
        "",
        "| method | AUROC | score used | precision | recall | F1 | images/s |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for name, auc, col, p, r, f, s in rows:
        fmt = lambda v, spec: "" if np.isnan(v) else format(v, spec)  # noqa: E731
        lines.append(f"| {name} | {auc:.4f} | {col} | {fmt(p, '.3f')} | {fmt(r, '.3f')} | {fmt(f, '.3f')} | "
                     f"{fmt(s, ',.0f')} |")
    lines += ["", "CleanVision AUROC of each of its scores: "
              + ", ".join(f"{c} {a:.3f}" for c, a in sorted(aucs.items(), key=lambda kv: -kv[1])) + "."]
    lines += ["Hash rows: AUROC of the nearest-neighbour Hamming distance, taken in whichever direction is better."]
    lines += ["", "End to end on the same PNG files (load, fit, score, report):", "",
              "| command | seconds | images/s |", "|---|---:|---:|",
              f"| `cellkit inspect FOLDER --report DIR` (superposition, colour filter, duplicates; montages) | "
              f"{inspect_seconds:.1f} | {len(images) / inspect_seconds:,.0f} |",
              f"| CleanVision `Imagelab(FOLDER).find_issues()` (its default checks) | {cv_seconds:.1f} | "
              f"{cv_speed:,.0f} |",
              "", f"cellkit is {cv_seconds / inspect_seconds:.1f}x faster end to end (the issue's target: 3x). "
              "Where cellkit's time goes: `python -m pytest benchmarks/test_bench_quality.py --full`, "
              "and `find_issues(n_jobs=...)` in `cellkit.quality.report`."]
    atomic_write_text(results_dir / "quality_baselines.md", "\n".join(lines) + "\n")

    assert ours_auc > aucs[best] and ours_auc > max(ih_auc, 1 - ih_auc)
    assert _prf(scores < detector.threshold_, truth)[2] > _prf(flags, truth)[2]
    assert speed > cv_speed
    if full_mode:  # on 2,000 images the fits' fixed cost (drawing ~2,000 overlays) dominates
        assert cv_seconds / inspect_seconds >= INSPECT_SPEEDUP_FLOOR
