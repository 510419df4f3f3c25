"""Would mixed bfloat16 or another backend make ``cellkit predict`` faster? Model throughput, measured.

Times ``model.predict`` (batch 256, median of 3 rounds after a warm-up, alternating) on every
image of a dataset for the compact ResNet built in float32 and for a trained run's
``best.keras`` (the compact preset trains and saves it in mixed bfloat16), on the backend
``KERAS_BACKEND`` selects, and prints the trained model's accuracy through ``cellkit.predict``.

    python benchmarks/probes/predict_levers.py ../shared/data/pbc96 benchmarks/.runs/compact/best.keras
    KERAS_BACKEND=jax python benchmarks/probes/predict_levers.py ../shared/data/pbc96 benchmarks/.runs/compact/best.keras
"""

from __future__ import annotations

import argparse
import time

import keras
import numpy as np

import cellkit
from cellkit.inference.saving import load_model
from cellkit.zoo import build_classifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("model", help="a trained compact run's best.keras")
    args = parser.parse_args()
    ds = cellkit.load(args.data)
    x = ds.images
    models = {"compact_resnet built in float32": build_classifier("compact_resnet", num_classes=ds.num_classes),
              "trained best.keras (mixed bfloat16)": load_model(args.model)}
    times: dict[str, list[float]] = {name: [] for name in models}
    for m in models.values():
        m.predict(x[:512], batch_size=256, verbose=0)
    for _ in range(3):
        for name, m in models.items():
            start = time.perf_counter()
            m.predict(x, batch_size=256, verbose=0)
            times[name].append(time.perf_counter() - start)
    print(f"{len(x):,} images, Keras {keras.__version__}, {keras.backend.backend()} backend")
    for name, t in times.items():
        print(f"{name}: {len(x) / np.median(t):,.0f} images/s")
    preds = cellkit.predict(models["trained best.keras (mixed bfloat16)"], ds, quality=False, batch_size=256)
    print(f"accuracy of the trained model: {np.mean(np.asarray(preds['predicted']) == np.asarray(ds.class_names)[ds.labels]):.4f}")


if __name__ == "__main__":
    main()
