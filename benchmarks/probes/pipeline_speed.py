"""Where a training step's time goes: the model alone, the data pipeline, augmentation, batch norm.

Builds the zoo classifier ``--backbone`` (``weights=None``: speed does not depend on the
weights) under the recipe precisions, makes every layer trainable, compiles it as
``cellkit train`` does (:func:`cellkit.train.phases.compile_phase`, Lion, cosine) and times
``--steps`` training steps of ``--batch`` random ``uint8`` images after warm-up steps (the
fastest of ``--repeats`` rounds), adding
one ingredient of the training pipeline at a time:

1. ``train_on_batch`` on array batches (what ``examples/budget_probe.py`` of the Lite plugin times);
2. ``fit`` on :class:`cellkit.train.pipeline.ArrayBatches`;
3. ... with balanced-class sample weights;
4. ... with the ``--augmentation`` policy layer in front (:func:`cellkit.train.phases.build_training_model`);
5. ... with the backbone's batch-norm layers trained too (``fine_tune_batch_norm``).

``--ops`` then times each op of the augmentation policy alone, in training mode inside a
compiled ``predict_on_batch`` (as the op runs in a training step; the first row, an
``Identity`` layer, is the cost of the call itself).
Prints images/s (and ms per batch for ``--ops``). Run it alone on the machine.

Usage:
    python benchmarks/probes/pipeline_speed.py --backbone efficientnet_lite0 --resize-to 128 --augmentation light --ops
"""

from __future__ import annotations

import argparse
import time

import keras
import numpy as np

from cellkit.train.devices import precision_policy
from cellkit.train.phases import build_training_model, compile_phase
from cellkit.train.pipeline import ArrayBatches
from cellkit.train.recipe import Phase
from cellkit.zoo import build_classifier, fine_tune


def _time_fit(args: argparse.Namespace, images: np.ndarray, labels: np.ndarray, *, use_fit: bool,
              class_weights: bool, augmentation: str, train_batch_norm: bool) -> float:
    options = {"resize_to": args.resize_to} if args.resize_to else {}
    phase = Phase("time", "fine_tune", 1, "lion", 3e-5, 1e-6, "cosine")
    with precision_policy(args.precision):
        keras.utils.clear_session()
        classifier = build_classifier(args.backbone, 8, images.shape[1:], backbone_options=options)
        fine_tune(classifier, 1.0, train_batch_norm=train_batch_norm)
        model = build_training_model(classifier, augmentation, seed=0)
        compile_phase(model, phase, args.steps)
        batches = ArrayBatches(images, labels, batch_size=args.batch, num_classes=8, shuffle=True,
                               class_weight=np.ones(8) if class_weights else None)
        if use_fit:
            model.fit(batches, epochs=1, steps_per_epoch=3, verbose=0)
        else:
            for i in range(3):
                model.train_on_batch(*batches[i][:2])
        best = float("inf")
        for _ in range(args.repeats):  # the best of a few rounds: a shared CPU is noisy
            start = time.perf_counter()
            if use_fit:
                model.fit(batches, epochs=1, steps_per_epoch=args.steps, verbose=0)
            else:
                for i in range(args.steps):
                    model.train_on_batch(*batches[i][:2])
            best = min(best, time.perf_counter() - start)
        return args.steps * args.batch / best


class _InTraining(keras.layers.Layer):
    """Runs ``inner`` in training mode inside a compiled ``predict`` (as in a training step)."""

    def __init__(self, inner: keras.layers.Layer) -> None:
        super().__init__()
        self.inner = inner

    def call(self, x):  # noqa: ANN001, ANN201
        return self.inner(x, training=True)


def _time_ops(args: argparse.Namespace, images: np.ndarray) -> None:
    from cellkit.augment.policies import POLICIES

    x = images[: args.batch].astype("float32")
    with precision_policy(args.precision):
        ops = [("-", keras.layers.Identity())] + [(fam, factory(0)) for fam, factory in POLICIES[args.augmentation]]
        for family, layer in ops:
            model = keras.Sequential([keras.Input(x.shape[1:]), _InTraining(layer)])
            model.predict_on_batch(x)  # compile
            best = float("inf")
            for _ in range(args.repeats):
                start = time.perf_counter()
                for _ in range(args.steps):
                    model.predict_on_batch(x)
                best = min(best, time.perf_counter() - start)
            ms = 1000 * best / args.steps
            inner = getattr(layer, "layer", None)
            name = type(layer).__name__ + (f"({type(inner).__name__})" if inner is not None else "")
            print(f"  {family:14s} {name:40s} {ms:7.1f} ms per batch of {args.batch}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--resize-to", type=int, default=0, help="backbone option resize_to (0: none)")
    parser.add_argument("--augmentation", default="light")
    parser.add_argument("--precision", default="bfloat16")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per stage; the fastest is kept")
    parser.add_argument("--ops", action="store_true", help="also time each augmentation op alone")
    parser.add_argument("--only-ops", action="store_true", help="time the augmentation ops, not the training steps")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, ((args.steps + 3) * args.batch, 96, 96, 3), dtype=np.uint8)
    labels = rng.integers(0, 8, len(images))
    print(f"{args.backbone}, side {args.resize_to or 96}, batch {args.batch}, {args.precision}, "
          f"backend {keras.backend.backend()}: training images/s")
    stages = [
        ("train_on_batch, no augmentation, batch norm frozen", False, False, "none", False),
        ("fit on ArrayBatches", True, False, "none", False),
        ("+ class sample weights", True, True, "none", False),
        (f"+ {args.augmentation} augmentation", True, True, args.augmentation, False),
        ("+ batch norm trained", True, True, args.augmentation, True),
    ]
    for name, use_fit, weights, augmentation, bn in [] if args.only_ops else stages:
        rate = _time_fit(args, images, labels, use_fit=use_fit, class_weights=weights,
                         augmentation=augmentation, train_batch_norm=bn)
        print(f"  {name:55s} {rate:7.1f}", flush=True)
    if (args.ops or args.only_ops) and args.augmentation != "none":
        print(f"{args.augmentation} policy, one op at a time (training mode):")
        _time_ops(args, images)


if __name__ == "__main__":
    main()
