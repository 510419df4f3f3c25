"""Accuracy of a run's checkpoint with its moving batch-norm statistics, then re-estimated.

Loads ``best.keras`` of a cellkit run folder (the inference model), measures validation and
test accuracy on the run's split, re-estimates the statistics of its trainable batch-norm
layers on ``--batches`` batches of clean training images
(:func:`cellkit.train.precise_bn.recalibrate_batch_norm`) and measures again. The weights
are the same; only the statistics change. The run folder is not modified.

Usage:
    python benchmarks/probes/precise_bn_effect.py RUN_DIR DATA [--batches 60] [--batch-size 64] [--seed 0]
"""

from __future__ import annotations

import argparse

import numpy as np

import cellkit
from cellkit.data.split import Split
from cellkit.train import load_model, predict_proba
from cellkit.train.precise_bn import recalibrate_batch_norm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("data", help="the run's data: folder, .npz or 'sample'")
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    data = cellkit.load(args.data)
    split = Split.load(f"{args.run_dir}/split.json")
    model = load_model(f"{args.run_dir}/best.keras")

    def accuracy(idx: np.ndarray) -> float:
        return float(np.mean(predict_proba(model, data.images[idx]).argmax(axis=1) == data.labels[idx]))

    print(f"moving statistics:  val {accuracy(split.val):.4f}  test {accuracy(split.test):.4f}")
    chosen = np.random.default_rng(args.seed).permutation(split.train)[: args.batches * args.batch_size]
    layers = recalibrate_batch_norm(model, data.images[chosen], batch_size=args.batch_size)
    print(f"re-estimated ({layers} layers, {chosen.size} clean training images): "
          f"val {accuracy(split.val):.4f}  test {accuracy(split.test):.4f}")


if __name__ == "__main__":
    main()
