"""Does ``SuperpositionDetector(blend_modes=...)`` rank better, or only flag more? Recall at a matched false-alarm rate.

The blends table (``benchmarks/test_bench_external_overlays.py --full -k blends``) scores each
detector at its own default threshold. Here the same Twemoji benches (plain transparency,
and Pillow's hard light and overlay modes, which neither detector trains on) are scored by the
default detector and by two ``blend_modes`` settings, and recall is also read at the score
that flags 0.5% of the clean images, the same false-alarm rate for every detector; the
estimated contamination is printed beside the truth (0.10). Needs the third-party pictures
(``bash benchmarks/fetch_external_overlays.sh``).

    python benchmarks/probes/blend_modes_matched.py ../shared/data/pbc96   # about 3 min on 2 cores
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

import cellkit
from cellkit.quality.superposition import SuperpositionDetector

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import test_bench_external_overlays as bench  # noqa: E402

DETECTORS = {"default": (), "4 modes": bench.OWN_MODES, "multiply+screen": ("multiply", "screen")}
BENCHES = {"transparency": "alpha", "hard light": "hard light", "overlay": "overlay"}
FALSE_ALARMS = 0.005


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pbc96", type=Path)
    parser.add_argument("--n", type=int, default=bench.FULL_N)
    args = parser.parse_args()
    ds = cellkit.load(args.pbc96)
    ds = ds.subset(np.sort(np.random.default_rng(bench.SEED).choice(len(ds), args.n, replace=False)))
    corpus = bench.Corpus("twemoji", bench.OVERLAYS, ds.images.shape[1])
    print(f"| bench | detector | recall (default threshold) | clean flagged | contamination estimate | "
          f"recall at {FALSE_ALARMS:.1%} clean flagged |\n|---|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, blend in BENCHES.items():
            pictures, truth = bench.make_external_bench(ds.images, corpus, np.random.default_rng([bench.SEED, 0]),
                                                        blend=blend)
            images = bench.save_and_load(pictures, ds.labels, list(ds.class_names), "jpeg90", Path(tmp) / name)
            y = truth.superposed
            for detector, modes in DETECTORS.items():
                det = SuperpositionDetector(random_state=bench.SEED, blend_modes=modes).fit(images)
                scores = det.score_samples(images)
                flag = scores < det.threshold_
                matched = scores[y] < np.quantile(scores[~y], FALSE_ALARMS)
                print(f"| {name} | {detector} | {flag[y].mean():.3f} | {flag[~y].mean():.4f} | "
                      f"{det.contamination_:.3f} | {matched.mean():.3f} |", flush=True)


if __name__ == "__main__":
    main()
