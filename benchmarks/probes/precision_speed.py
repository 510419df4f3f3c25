"""Training-step throughput of the compact ResNet under a Keras dtype policy (development check).

Trains 2 epochs of 1,024 random 96x96 images (batch 64) after one warm-up epoch and prints
images per second and the implied time of one epoch of pbc96's 10,460 training images.

Usage:
    python benchmarks/probes/precision_speed.py mixed_bfloat16
    python benchmarks/probes/precision_speed.py float32
"""

from __future__ import annotations

import sys
import time

import keras
import numpy as np

from cellkit.zoo import build_classifier

TRAIN_IMAGES = 10_460


def main(policy: str) -> None:
    keras.config.set_dtype_policy(policy)
    keras.utils.set_random_seed(0)
    model = build_classifier("compact_resnet", num_classes=8, input_shape=(96, 96, 3))
    model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss="categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (1024, 96, 96, 3), dtype=np.uint8)
    y = np.eye(8)[rng.integers(0, 8, 1024)]
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)  # warm-up: tracing
    start = time.perf_counter()
    model.fit(x, y, batch_size=64, epochs=2, verbose=0)
    rate = 2 * len(x) / (time.perf_counter() - start)
    print(f"{policy}: {rate:.1f} images/s, {TRAIN_IMAGES / rate:.1f} s per pbc96 training epoch")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "float32")
