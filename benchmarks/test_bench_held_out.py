"""Superposition detection on overlay families the detector did not train on, stored every way.

The protocol of :mod:`cellkit.quality.held_out`: for each overlay family, a bench of clean
real cells with a fraction superposed with that family only (alpha 0.25-0.6; half of them
carrying a meme reused on 25 images), stored as PNG, JPEG q95/q90/q75/q50 or JPEG q90 then
resized; the detector is fitted on the bench without labels and **with that family removed
from its synthetic overlays**; scores at its default threshold.

Also: data with **no** superposed image (what fraction is flagged), data with 30%
superposed of which a third carry one reused overlay, and the seeded superpositions of
``corrupt_dataset`` (Table 1's data).

Quick mode: the bundled sample (480 images), three families, PNG and JPEG q90; reports
only, with loose bounds (a fit on 480 images learns less). ``--full``: ``FULL_N`` random
pbc96 images, every family and storage; writes ``docs/results/quality.md`` (this table heads
it; the families the detector trains on are in ``quality_trained_families.md``) and
``quality_held_out.json``
and asserts the bounds in ``FULL_BOUNDS`` (what the detector meets; the issue's targets
are printed beside them).

    python -m pytest benchmarks/test_bench_held_out.py          # quick
    python -m pytest benchmarks/test_bench_held_out.py --full   # docs/results/quality.md
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

import cellkit
from cellkit._io import atomic_write_text
from cellkit.corrupt import corrupt_dataset
from cellkit.corrupt.overlays import OVERLAY_FAMILIES
from cellkit.evaluate.metrics import roc_auc
from cellkit.quality.held_out import STORAGES, Bench, held_out_family_protocol, make_bench, score_bench, store
from cellkit.quality.superposition import SuperpositionDetector

FULL_N = 4000
SEED = 0
QUICK_FAMILIES = ("cartoon", "text", "cells")
QUICK_STORAGES = ("png", "jpeg90")
#: What --full asserts, every row: (AUROC, recall, precision) lower bounds, a guard just
#: under the figures measured on 2026-12-07 (0.980, 0.71, 0.913), not the issue's targets.
FULL_BOUNDS = (0.975, 0.68, 0.90)
#: The issue's targets, printed beside the measured figures.
TARGETS = "every family AUROC >= 0.995, recall >= 0.95 at precision >= 0.95; 0% data <= 1% flagged"


def _images(full_mode: bool, pbc96_path: Path) -> tuple[np.ndarray, str]:
    if full_mode and pbc96_path.is_dir():
        ds = cellkit.load(pbc96_path, quiet=True)
        pick = np.sort(np.random.default_rng(SEED).choice(len(ds), FULL_N, replace=False))
        return ds.images[pick], f"pbc96, {FULL_N} random images of {len(ds)} (seed {SEED})"
    return cellkit.load("sample").images, "bundled sample (480 images)"


@pytest.fixture(scope="module")
def images(full_mode: bool, pbc96_path: Path) -> tuple[np.ndarray, str]:
    return _images(full_mode, pbc96_path)


def test_held_out_families(images, full_mode: bool, results_dir: Path, hardware: str) -> None:
    x, data = images
    families = OVERLAY_FAMILIES if full_mode else QUICK_FAMILIES
    storages = STORAGES if full_mode else QUICK_STORAGES
    start = time.perf_counter()
    report = held_out_family_protocol(x, families, storages, seed=SEED, quiet=False)
    seconds = time.perf_counter() - start

    extra = _contamination_rows(x)
    rows = report.rows
    mode = "--full" if full_mode else "(quick mode)"
    text = [
        "# Superposition: overlay families held out of training, every storage",
        "",
        f"Data: {data}. Protocol: `cellkit.quality.held_out.held_out_family_protocol` (seed {SEED}): per family,",
        f"{int(report.settings['fraction'] * 100)}% of the images superposed with that family only, alpha "
        f"{report.settings['alpha'][0]}-{report.settings['alpha'][1]}, half of them in groups of 25 sharing one "
        "overlay; the detector fitted on the stored bench without labels and **without that family** in its "
        "synthetic overlays; default threshold.",
        f"Hardware: {hardware}. Whole table: {seconds / 60:.1f} min. Command: "
        f"`python -m pytest benchmarks/test_bench_held_out.py {mode}`.",
        f"Targets of the issue: {TARGETS}.",
        "",
        report.to_markdown(),
        "Beyond the protocol (all families in training, PNG):",
        "",
        "| data | superposed | AUROC | precision | recall | flagged clean |",
        "|---|---:|---:|---:|---:|---:|",
        *extra,
        "",
    ]
    text += ["Figures on overlay families the detector trains on: [quality_trained_families.md](quality_trained_families.md).",
             "On third-party pictures (Twemoji, Noto emoji, Font Awesome icons) composited and saved by Pillow: "
             "[quality_external.md](quality_external.md).", ""]
    atomic_write_text(results_dir / "quality.md", "\n".join(text))
    atomic_write_text(results_dir / "quality_held_out.json", json.dumps(report.to_dict(), indent=1) + "\n")
    print("\n".join(text))
    if full_mode:
        auroc, recall, precision = FULL_BOUNDS
        for r in rows:
            assert r["auroc"] >= auroc and r["recall"] >= recall and r["precision"] >= precision, r
    else:
        for r in rows:
            assert r["auroc"] >= 0.9 and r["flagged_clean"] <= 0.05, r


def _contamination_rows(x: np.ndarray) -> list[str]:
    """0% superposed, 30% superposed (a third reused), and corrupt_dataset's seeded data."""
    out = []
    det = SuperpositionDetector(random_state=SEED).fit(x)
    flagged = float((det.score_samples(x) < det.threshold_).mean())
    out.append(f"| no superposed image | 0 | | | | {flagged:.4f} |")
    rng = np.random.default_rng([SEED, 99])
    bench = make_bench(x, "natural", rng, fraction=0.3, reused_share=1 / 3, reused_group=int(0.1 * len(x)))
    mixed = _mix_families(x, bench, rng)
    det = SuperpositionDetector(random_state=SEED).fit(mixed.images)
    r = score_bench(mixed, det.score_samples(mixed.images), det.threshold_)
    out.append(f"| 30% superposed, every family, one overlay on a third of them | {r['superposed']} | "
               f"{r['auroc']:.4f} | {r['precision']:.3f} | {r['recall']:.3f} | {r['flagged_clean']:.4f} |")
    ds = cellkit.data.Dataset(images=x)
    seeded = corrupt_dataset(ds, seed=2024)
    det = SuperpositionDetector(random_state=SEED).fit(seeded.dataset)
    sc = det.score_samples(seeded.dataset)
    y = seeded.is_superposed
    flag = sc < det.threshold_
    out.append(f"| `corrupt_dataset(seed=2024)` (Table 1's corruption: JPEG q90, 2% filtered) | {int(y.sum())} | "
               f"{roc_auc(y, -sc):.4f} | {(flag & y).sum() / max(flag.sum(), 1):.3f} | "
               f"{(flag & y).sum() / y.sum():.3f} | {(flag & ~y).mean() / max((~y).mean(), 1e-9):.4f} |")
    return out


def _mix_families(x: np.ndarray, bench: Bench, rng: np.random.Generator) -> Bench:
    """Replace the unique overlays of ``bench`` by overlays of every family (the reused one stays)."""
    from cellkit.corrupt import overlay_bank, superpose

    unique = np.flatnonzero(bench.superposed & ~bench.reused)
    images = bench.images.copy()
    fams = rng.choice(len(OVERLAY_FAMILIES), size=unique.size)
    for f, family in enumerate(OVERLAY_FAMILIES):
        sel = unique[fams == f]
        if sel.size:
            overlays = overlay_bank(family, sel.size, x.shape[1:3], rng, cells=x)
            images[sel] = superpose(x[sel], overlays, bench.alpha[sel])
    return Bench(store(images, "png"), bench.superposed, bench.reused, bench.alpha)
