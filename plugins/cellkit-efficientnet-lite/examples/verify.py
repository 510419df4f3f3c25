"""Print the verification figures of the port: logits vs torch, ImageNet predictions, backends.

For each variant at its ImageNet resolution (and Lite0 at an odd 97x130 size): the largest
absolute difference between the Keras logits and the independent ``torch.nn.functional``
forward of ``tests/torch_reference.py`` (needs torch), and the top-3 ImageNet classes of
scikit-image's ``chelsea`` and ``coffee``. With ``--backend jax`` (or ``torch``) it also runs
Lite0 (96 px upsampled to 224 inside the model) under that Keras backend in a subprocess and
prints the largest difference to TensorFlow's logits.

Usage::

    python plugins/cellkit-efficientnet-lite/examples/verify.py --backend jax --backend torch
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import skimage.data
from skimage.transform import resize

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent / "src"))

from cellkit_efficientnet_lite import VARIANTS, build_efficientnet_lite, checkpoint_path, read_state_dict  # noqa: E402

_BACKEND_SCRIPT = """
import json, sys, numpy as np, keras
from cellkit_efficientnet_lite import build_efficientnet_lite
m = build_efficientnet_lite("efficientnet_lite0", (96, 96, 3), "imagenet", include_top=True, resize_to=224)
print(json.dumps(m.predict(np.load(sys.argv[1]), verbose=0).tolist()))
"""


def _images(size: tuple[int, int]) -> np.ndarray:
    photos = [
        resize(getattr(skimage.data, n)(), size, preserve_range=True, anti_aliasing=True)
        for n in ("chelsea", "coffee")
    ]
    return np.stack([*photos, np.random.default_rng(0).uniform(0, 255, (*size, 3))]).astype("float32")


def _top3(logits: np.ndarray) -> str:
    p = np.exp(logits - logits.max())
    p /= p.sum()
    return ", ".join(f"{i} ({p[i]:.3f})" for i in np.argsort(-p)[:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", action="append", default=[], choices=["jax", "torch"])
    args = parser.parse_args()
    try:
        from torch_reference import reference_logits
    except ImportError:
        reference_logits = None
    cases = [(v, (VARIANTS[v].resolution,) * 2) for v in VARIANTS] + [("efficientnet_lite0", (97, 130))]
    for variant, size in cases:
        if checkpoint_path(variant) is None:
            print(f"{variant}: checkpoint package not installed")
            continue
        model = build_efficientnet_lite(variant, (*size, 3), "imagenet", include_top=True)
        images = _images(size)
        logits = model.predict(images, verbose=0)
        line = f"{variant} {size[0]}x{size[1]}: chelsea -> {_top3(logits[0])}; coffee -> {_top3(logits[1])}"
        if reference_logits is not None:
            diff = np.abs(logits - reference_logits(read_state_dict(checkpoint_path(variant)), images)).max()
            line += f"; max |keras - torch.nn.functional| = {diff:.2e}"
        print(line, flush=True)
    if args.backend:
        images = _images((96, 96))
        tf_logits = build_efficientnet_lite(
            "efficientnet_lite0", (96, 96, 3), "imagenet", include_top=True, resize_to=224
        ).predict(images, verbose=0)
        with tempfile.TemporaryDirectory() as tmp:
            np.save(Path(tmp) / "x.npy", images)
            for backend in args.backend:
                env = {
                    **os.environ,
                    "KERAS_BACKEND": backend,
                    "JAX_PLATFORMS": "cpu",
                    "PYTHONPATH": str(HERE.parent / "src"),
                }
                out = subprocess.run(
                    [sys.executable, "-c", _BACKEND_SCRIPT, str(Path(tmp) / "x.npy")],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                other = np.asarray(json.loads(out.stdout.strip().splitlines()[-1]))
                print(
                    f"lite0 96->224, {backend} vs tensorflow: max |logit difference| = {np.abs(other - tf_logits).max():.2e}"
                )


if __name__ == "__main__":
    main()
