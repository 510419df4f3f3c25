"""How much EfficientNet-Lite training fits a time budget? Training speed by input side and depth.

Transfer learning on a CPU is a budget question: the input side the backbone sees (96 px
cells upsampled inside the model) and how much of the backbone is fine-tuned set the cost of
an epoch. For every ``--sides`` x ``--fractions`` pair this builds the zoo's classifier
(``weights=None``: speed does not depend on the weights), freezes the backbone
(``fraction 0``: the report's first phase, head only) or unfreezes the top ``fraction`` of
its parameters (:func:`cellkit.zoo.fine_tune`; ``1``: every layer), compiles it with Lion
under the precision policy cellkit's recipes use, and times ``--steps`` training steps of
``--batch`` images after two warm-up steps. It prints training images/s, seconds per epoch of
``--train-images`` images and how many such epochs ``--minutes`` hold -- the numbers a recipe
for a fixed budget is sized from.

Usage::

    python plugins/cellkit-efficientnet-lite/examples/budget_probe.py --variant efficientnet_lite0 \\
        --sides 96,128,160,224 --fractions 0,0.3,1 --minutes 45
"""

from __future__ import annotations

import argparse
import time

import keras
import numpy as np
from cellkit.train.devices import precision_policy
from cellkit.zoo import build_classifier, fine_tune, freeze_backbone


def _numbers(text: str, kind: type) -> list:
    return [kind(v) for v in text.split(",") if v.strip()]


def images_per_second(variant: str, side: int, fraction: float, batch: int, steps: int, precision: str) -> tuple[float, float]:
    """(training images/s, achieved trainable fraction of the backbone) for one configuration."""
    with precision_policy(precision):
        keras.utils.clear_session()
        model = build_classifier(variant, 8, (96, 96, 3), backbone_options={"resize_to": side})
        report = freeze_backbone(model) if fraction == 0 else fine_tune(model, fraction)
        model.compile(optimizer=keras.optimizers.Lion(1e-4), loss="sparse_categorical_crossentropy")
        rng = np.random.default_rng(0)
        x = rng.integers(0, 256, (batch, 96, 96, 3)).astype("float32")
        y = rng.integers(0, 8, batch)
        for _ in range(2):
            model.train_on_batch(x, y)
        start = time.perf_counter()
        for _ in range(steps):
            model.train_on_batch(x, y)
        seconds = time.perf_counter() - start
    return steps * batch / seconds, report.achieved_fraction


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", default="efficientnet_lite0")
    parser.add_argument("--sides", default="96,128,160,224", help="input sides the backbone sees (comma-separated)")
    parser.add_argument("--fractions", default="0,0.3,1", help="fine-tuned fractions; 0 = frozen backbone")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--precision", default="bfloat16", help="as a recipe's `precision`")
    parser.add_argument("--train-images", type=int, default=10_460, help="training images per epoch (pbc96: 10,460)")
    parser.add_argument("--minutes", type=float, default=45.0)
    args = parser.parse_args(argv)
    print(f"{args.variant}, batch {args.batch}, precision {args.precision}, backend {keras.backend.backend()}")
    print("side | fraction asked | fraction achieved | train img/s | s/epoch | epochs in budget")
    for side in _numbers(args.sides, int):
        for fraction in _numbers(args.fractions, float):
            rate, achieved = images_per_second(args.variant, side, fraction, args.batch, args.steps, args.precision)
            per_epoch = args.train_images / rate
            print(f"{side} | {fraction:g} | {achieved:.3f} | {rate:.1f} | {per_epoch:.0f} "
                  f"| {60 * args.minutes / per_epoch:.1f}", flush=True)


if __name__ == "__main__":
    main()
