"""A cheap signal before a 45-minute run: does chroma blur in training help against JPEG?

Loads a kept run's ``best.keras`` (the robust preset's by default), fine-tunes it for
``--epochs`` epochs with the ``strong`` policy as the preset trains it (CutMix on half of
each batch, label smoothing 0.1, balanced class weights, AdamW cosine 2e-4 -> 1e-5), once
without and once with :class:`cellkit.augment.RandomChromaBlur` after the policy (sigma
``U(0.5, --max-sigma)`` on ``--rate`` of the images), re-estimates batch-norm statistics on
1,920 clean training images, and scores 1,000 random test images (seed 0), without TTA,
clean and after a JPEG round trip at qualities 40, 15 and 6 (the suite's severities 1, 3
and 5). The run folder is not modified. It is a probe, not the benchmark: a model that
already converged without the op, nudged for two epochs, shows the direction and rough size
of the effect; the robustness benchmark measures it properly.

Usage:
    python benchmarks/probes/chroma_blur_probe.py DATA [--run benchmarks/.runs/robust] [--epochs 2] \\
        [--max-sigma 3.0] [--rate 0.5] [--skip-control]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import keras
import numpy as np

import cellkit
from cellkit.augment import RandomApply, RandomChromaBlur, augmentation_layer
from cellkit.corrupt.superpose import jpeg_roundtrip
from cellkit.data.split import Split
from cellkit.train import load_model, predict_proba
from cellkit.train.devices import precision_policy
from cellkit.train.optim import class_weight_vector
from cellkit.train.phases import compile_phase
from cellkit.train.pipeline import ArrayBatches
from cellkit.train.precise_bn import recalibrate_batch_norm
from cellkit.train.recipe import Phase


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="the run's data: folder, .npz or 'sample'")
    parser.add_argument("--run", default="benchmarks/.runs/robust")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--max-sigma", type=float, default=3.0)
    parser.add_argument("--rate", type=float, default=0.5)
    parser.add_argument("--skip-control", action="store_true", help="only the run with chroma blur")
    args = parser.parse_args()

    data = cellkit.load(args.data)
    split = Split.load(Path(args.run) / "split.json")
    labels = np.asarray(data.labels)
    chosen = np.sort(np.random.default_rng(0).permutation(split.test)[:1000])
    x, y = data.images[chosen], labels[chosen]
    tests = {"clean": x, **{f"JPEG q{q}": jpeg_roundtrip(x, q) for q in (40, 15, 6)}}
    weights = class_weight_vector("balanced", labels[split.train], len(data.class_names))
    for chroma in (True,) if args.skip_control else (False, True):
        with precision_policy("bfloat16"):
            keras.utils.set_random_seed(0)
            classifier = load_model(Path(args.run) / "best.keras")
            inputs = keras.Input(data.images.shape[1:])
            h = augmentation_layer("strong", seed=0)(inputs)
            if chroma:
                h = RandomApply(RandomChromaBlur(0.5, args.max_sigma, seed=7), rate=args.rate, seed=8)(h)
            model = keras.Model(inputs, classifier(h))
            batches = ArrayBatches(data.images, labels, indices=split.train, batch_size=64,
                                   num_classes=len(data.class_names), shuffle=True, seed=0, class_weight=weights,
                                   mix="cutmix", mix_probability=0.5)
            phase = Phase("probe", "all", args.epochs, "adamw", 2e-4, 1e-5, "cosine", weight_decay=1e-4)
            compile_phase(model, phase, len(batches) * args.epochs, label_smoothing=0.1)
            start = time.time()
            model.fit(batches, epochs=args.epochs, verbose=0)
            clean_train = np.random.default_rng(0).permutation(split.train)[:1920]
            recalibrate_batch_norm(classifier, data.images[clean_train], batch_size=64)
            accs = {k: float(np.mean(predict_proba(classifier, v).argmax(axis=1) == y)) for k, v in tests.items()}
            what = f"chroma blur sigma 0.5-{args.max_sigma:g} on {args.rate:.0%}" if chroma else "control"
            print(f"{what}, {args.epochs} epochs in {time.time() - start:.0f} s: "
                  + ", ".join(f"{k} {a:.3f}" for k, a in accs.items()), flush=True)


if __name__ == "__main__":
    main()
