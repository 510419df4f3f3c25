"""Which part of JPEG compression costs a model accuracy: the luma or the chroma channels?

For each run folder, loads its saved ``model.keras`` (with the test-time augmentation it
saves) and scores a random subset of the test split (``--images``, seed 0; the split of the
first run): clean, with the chroma channels only downsampled (``/2``, ``/4``: area down,
bilinear up in YCrCb, no quantisation), and for each JPEG quality of ``--qualities``: the
JPEG round trip with OpenCV's default 4:2:0 chroma subsampling, with 4:4:4 (no
subsampling), and the two halves of the 4:2:0 round trip apart -- JPEG luma with the clean
chroma, clean luma with the JPEG chroma. Nothing is modified.

Usage:
    python benchmarks/probes/jpeg_chroma_effect.py DATA RUN_DIR [RUN_DIR ...] [--images 1000] [--qualities 40,15,6]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

import cellkit
from cellkit.corrupt.superpose import jpeg_roundtrip
from cellkit.data.split import Split
from cellkit.train import load_model, predict_proba


def _ycrcb(images: np.ndarray) -> np.ndarray:
    return np.stack([cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb) for image in images])


def _rgb(ycrcb: np.ndarray) -> np.ndarray:
    return np.stack([cv2.cvtColor(image, cv2.COLOR_YCrCb2RGB) for image in ycrcb])


def luma_from(luma: np.ndarray, chroma: np.ndarray) -> np.ndarray:
    """The luma (Y) of ``luma`` with the chroma (Cr, Cb) of ``chroma``."""
    out = _ycrcb(luma)
    out[..., 1:] = _ycrcb(chroma)[..., 1:]
    return _rgb(out)


def chroma_downsampled(images: np.ndarray, factor: int) -> np.ndarray:
    """Cr and Cb at ``1/factor`` resolution (area), brought back bilinearly; luma untouched."""
    out = _ycrcb(images)
    h, w = images.shape[1:3]
    for image in out:
        small = cv2.resize(image[..., 1:], (w // factor, h // factor), interpolation=cv2.INTER_AREA)
        image[..., 1:] = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    return _rgb(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="the runs' data: folder, .npz or 'sample'")
    parser.add_argument("runs", nargs="+", help="cellkit run folders trained on DATA with the same split")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--qualities", default="40,15,6")
    args = parser.parse_args()

    data = cellkit.load(args.data)
    test = Split.load(Path(args.runs[0]) / "split.json").test
    chosen = np.sort(np.random.default_rng(0).permutation(test)[: args.images])
    x, y = data.images[chosen], np.asarray(data.labels)[chosen]
    variants = {"clean": x, "chroma /2 only": chroma_downsampled(x, 2), "chroma /4 only": chroma_downsampled(x, 4)}
    for q in (int(v) for v in args.qualities.split(",")):
        j420 = jpeg_roundtrip(x, q)
        variants[f"JPEG q{q} (4:2:0)"] = j420
        variants[f"JPEG q{q} 4:4:4"] = jpeg_roundtrip(x, q, subsample_chroma=False)
        variants[f"q{q}: JPEG luma, clean chroma"] = luma_from(j420, x)
        variants[f"q{q}: clean luma, JPEG chroma"] = luma_from(x, j420)
    print("variant | " + " | ".join(Path(r).name for r in args.runs))
    models = [load_model(Path(r) / "model.keras") for r in args.runs]
    for name, images in variants.items():
        accs = [float(np.mean(predict_proba(m, images).argmax(axis=1) == y)) for m in models]
        print(f"{name} | " + " | ".join(f"{a:.3f}" for a in accs), flush=True)


if __name__ == "__main__":
    main()
