"""Reused-overlay z-scores against every flagged copy vs against the best copies of each overlay.

``ReusedOverlaySearch`` keeps, of each reused overlay it finds, the ``top + 1`` copies that
match the others best (``templates_``), and ``z_scores`` compares images with those alone
in their 8 orientations. This probe fits the search on all of ``corrupt_dataset(seed=2024)``
(Table 1's corruption) of a dataset and times ``z_scores`` on every image against the kept
copies and against every flagged copy (the memory before), median of 5 rounds; it also
prints how far the two z-scores differ.

    python benchmarks/probes/reused_overlay_memory.py ../shared/data/pbc96
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import cellkit
from cellkit.corrupt import corrupt_dataset
from cellkit.quality._reused_overlays import ReusedOverlaySearch, _unit_rows


def _median_seconds(f, rounds: int = 5) -> float:  # noqa: ANN001
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    args = parser.parse_args()
    images = corrupt_dataset(cellkit.load(args.data), seed=2024).dataset.images
    search = ReusedOverlaySearch().fit(images)
    kept = search.memory_
    bp = search._vectors(images)[2][search.flags_]
    views = [np.rot90(v, k, axes=(1, 2)) for v in (bp, bp[:, :, ::-1]) for k in range(4)]
    mask = search._masks(*bp.shape[1:])[0]
    every = np.concatenate([_unit_rows(v[:, mask]) for v in views])
    n = len(images)
    print(f"{n} images, {int(search.flags_.sum())} flagged copies, {search.templates_.size} kept")
    print(f"band-pass vectors alone: {n / _median_seconds(lambda: search._vectors(images)):,.0f} images/s")
    z = {}
    for name, memory in (("every flagged copy", every), ("the kept copies", kept)):
        search.memory_ = memory
        z[name] = search.z_scores(images)
        rate = n / _median_seconds(lambda: search.z_scores(images))
        print(f"z_scores against {name} ({memory.shape[0]} rows): {rate:,.0f} images/s")
    a, b = z["every flagged copy"], z["the kept copies"]
    same = np.mean((a > search.z_threshold) == (b > search.z_threshold))
    print(f"same side of the threshold: {same:.4%}; kept <= every: {np.mean(b <= a + 1e-4):.4%}")


if __name__ == "__main__":
    main()
