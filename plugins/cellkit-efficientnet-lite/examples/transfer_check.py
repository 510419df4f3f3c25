"""Does ImageNet pretraining help on blood cells? A short, CPU-sized sanity run.

Draws a stratified subset of a PBC-style folder (``--train`` training and ``--test`` test
images), then compares, with the same ``--epochs`` and optimiser (Adam 1e-3, batch 32):

* ``imagenet-frozen@224``: the zoo default (96 px cells upsampled to 224 inside the model),
  ImageNet Lite0 frozen, a new softmax head on globally average-pooled features;
* ``imagenet-frozen@96``: the same at the native 96 px (``resize_to=None``);
* ``scratch@96``: the same network, randomly initialised and fully trained, at 96 px.

The frozen backbones' features are computed once and the head is trained on them, which is
the same computation as ``fit`` on a frozen backbone without augmentation, only faster. With
``--probe-epochs N`` the frozen features are also scored by a converged linear probe (features
standardised, the same softmax head trained for N epochs), which measures the features
rather than the length of training.

Usage::

    python plugins/cellkit-efficientnet-lite/examples/transfer_check.py ../shared/data/pbc96 \\
        --train 3000 --test 1000 --epochs 2
"""

from __future__ import annotations

import argparse
import time

import cellkit
import keras
import numpy as np
from cellkit.data.split import stratified_split

from cellkit_efficientnet_lite import build_efficientnet_lite


def _head(n_features: int, n_classes: int) -> keras.Model:
    inputs = keras.Input((n_features,))
    return keras.Model(inputs, keras.layers.Dense(n_classes, activation="softmax")(inputs))


def _compile(model: keras.Model) -> keras.Model:
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data")
    parser.add_argument("--train", type=int, default=3000)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument(
        "--probe-epochs", type=int, default=0, help="also score frozen features by a linear probe"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", help="run only these experiments")
    args = parser.parse_args()

    ds = cellkit.load(args.data)
    split = stratified_split(ds.labels, val=0, test=args.test, seed=args.seed)
    rng = np.random.default_rng(args.seed)
    train = rng.permutation(split.train)[: args.train]  # a random subset of the stratified training part
    xtr, ytr = ds.images[train].astype("float32"), ds.labels[train]
    xte, yte = ds.images[split.test].astype("float32"), ds.labels[split.test]
    print(
        f"{len(xtr)} training / {len(xte)} test images, {ds.num_classes} classes, {args.epochs} epochs",
        flush=True,
    )

    runs = {
        "imagenet-frozen@224": ("imagenet", 224),
        "imagenet-frozen@96": ("imagenet", None),
        "scratch@96": (None, None),
    }
    for name, (weights, size) in runs.items():
        if args.only and name not in args.only:
            continue
        keras.utils.set_random_seed(args.seed)
        start = time.perf_counter()
        base = build_efficientnet_lite("efficientnet_lite0", (96, 96, 3), weights, resize_to=size)
        pooled = keras.Model(base.input, keras.layers.GlobalAveragePooling2D()(base.output))
        if weights == "imagenet":
            ftr = pooled.predict(xtr, batch_size=64, verbose=0)
            fte = pooled.predict(xte, batch_size=64, verbose=0)
            model = _compile(_head(ftr.shape[1], ds.num_classes))
            model.fit(ftr, ytr, epochs=args.epochs, batch_size=32, verbose=0)
            acc = model.evaluate(fte, yte, verbose=0)[1]
            if args.probe_epochs:
                mean, std = ftr.mean(axis=0), ftr.std(axis=0) + 1e-6
                keras.utils.set_random_seed(args.seed)
                probe = _compile(_head(ftr.shape[1], ds.num_classes))
                probe.fit((ftr - mean) / std, ytr, epochs=args.probe_epochs, batch_size=128, verbose=0)
                probe_acc = probe.evaluate((fte - mean) / std, yte, verbose=0)[1]
                print(f"{name:22s} linear probe ({args.probe_epochs} epochs) test accuracy {probe_acc:.3f}")
        else:
            out = keras.layers.Dense(ds.num_classes, activation="softmax")(pooled.output)
            model = _compile(keras.Model(pooled.input, out))
            model.fit(xtr, ytr, epochs=args.epochs, batch_size=32, verbose=0)
            acc = model.evaluate(xte, yte, verbose=0)[1]
        print(f"{name:22s} test accuracy {acc:.3f}   ({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
