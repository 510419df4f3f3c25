"""Fill the ImageNet-C cache of ``test_bench_robustness.py`` ahead of the benchmark.

The external-yardstick tests of ``benchmarks/test_bench_robustness.py`` corrupt the same
1,000 test images of pbc96 for every recipe (``imagecorruptions``, image by image: about half
an hour on 2 cores, ``glass_blur`` most of it). They pass ``cache_dir`` to
:mod:`cellkit.evaluate.external`, so this script computes those batches once, beforehand,
into the same folder (default ``benchmarks/.runs/external-cache``) and with the same keys:

* the grid of ``test_recipe_on_external_corruptions``: all 19 corruptions x severities 1-5
  of the 1,000-image subset, seed 0;
* the shifts of ``test_adaptation_to_one_shift_at_a_time``: each half of that subset (it
  corrupts them separately: other images, other keys), every corruption but ``glass_blur``,
  at its adaptation severity.

The subset is the benchmark's ``_trained()`` one, rebuilt without training: the report split
of pbc96 (stratified 72/8/20, seed 0), then a stratified subset of its test part (seed 0).
Where a kept run (``benchmarks/.runs/<recipe>/split.json``) exists, its test split is checked
against it. Cells already cached are read back, not recomputed, so the script can be stopped
and rerun. Results never depend on the cache; only the time does.

Usage:
    python benchmarks/probes/precompute_external.py [PBC96] [--cache DIR] [--pause-file FILE]

``--pause-file FILE``: before each cell, wait while FILE does not exist (to yield the machine
to a timed run without losing the work done).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

import cellkit
from cellkit.data import Dataset
from cellkit.data.split import Split, stratified_split
from cellkit.evaluate.external import EXTERNAL_CORRUPTIONS, external_corrupt

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
import test_bench_robustness as bench  # noqa: E402  (the benchmark's constants: one source of truth)

SEED = 0
SEVERITIES = (1, 2, 3, 4, 5)


def benchmark_subsets(pbc96: Path) -> tuple[Dataset, Dataset, Dataset]:
    """The 1,000-image subset of ``_trained()`` and the two halves of the adaptation test."""
    data = cellkit.load(pbc96)
    split = stratified_split(data.labels, val=0.08, test=0.2, seed=0)
    for name in bench.RECIPES:
        kept = REPO / "benchmarks" / ".runs" / name / "split.json"
        if kept.is_file() and not np.array_equal(Split.load(kept).test, split.test):
            raise SystemExit(f"the kept run {kept.parent} has another test split: the cache would not match it")
    test = data.subset(split.test)
    subset = test.subset(stratified_split(test.labels, val=0, test=bench.CORRUPTED_IMAGES, seed=0).test)
    halves = stratified_split(subset.labels, val=0, test=0.5, seed=0)
    return subset, subset.subset(halves.train), subset.subset(halves.test)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = os.environ.get("CELLKIT_PBC96", REPO.parent / "shared" / "data" / "pbc96")
    parser.add_argument("pbc96", nargs="?", default=default_data, type=Path)
    parser.add_argument("--cache", type=Path, default=REPO / "benchmarks" / ".runs" / bench.EXTERNAL_CACHE)
    parser.add_argument("--pause-file", type=Path, default=None,
                        help="before each cell, wait while this file does not exist")
    args = parser.parse_args()

    start = time.perf_counter()
    subset, adapt_part, score_part = benchmark_subsets(args.pbc96)
    print(f"subset: {len(subset)} images {subset.images.shape[1:]}, halves {len(adapt_part)} + {len(score_part)}; "
          f"loaded in {time.perf_counter() - start:.0f} s; cache: {args.cache}", flush=True)

    # the grid of the evaluation (glass_blur, the slow one, last), then the adaptation halves
    order = sorted(EXTERNAL_CORRUPTIONS, key=lambda c: c == "glass_blur")
    cells = [("subset", subset, c, s) for c in order for s in SEVERITIES]
    cells += [(part, ds, c, bench.ADAPT_SEVERITY) for c in EXTERNAL_CORRUPTIONS if c != "glass_blur"
              for part, ds in (("adapt half", adapt_part), ("score half", score_part))]
    computed = 0.0
    for i, (part, ds, name, severity) in enumerate(cells, 1):
        if args.pause_file is not None and not args.pause_file.exists():
            print(f"waiting for {args.pause_file} ...", flush=True)
            while not args.pause_file.exists():
                time.sleep(20)
        before = set(args.cache.glob("*.npy")) if args.cache.is_dir() else set()
        t = time.perf_counter()
        external_corrupt(ds.images, name, severity, seed=SEED, cache_dir=args.cache)
        seconds = time.perf_counter() - t
        new = set(args.cache.glob("*.npy")) - before
        computed += seconds if new else 0.0
        print(f"[{i:3d}/{len(cells)}] {part:10s} {name:17s} severity {severity}: "
              f"{'computed' if new else 'cached  '} {seconds:6.1f} s", flush=True)
    size = sum(p.stat().st_size for p in args.cache.glob("*.npy"))
    print(f"done: {len(cells)} cells, {computed / 60:.1f} min computing, {(time.perf_counter() - start) / 60:.1f} min "
          f"in all; cache {len(list(args.cache.glob('*.npy')))} files, {size / 2**20:.0f} MiB", flush=True)


if __name__ == "__main__":
    main()
