"""Overlay families cropped from bundled photographs: ``"microscopy"`` and ``"faces"``.

Crops of the pictures that ship with scikit-image and matplotlib (see
:mod:`cellkit.corrupt.overlay_families`, which lists every family and re-exports these);
:func:`crop` is also how the ``"graphics"`` family crops its charts and logos.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Sequence

import cv2
import numpy as np

from cellkit.corrupt._bank import draw_bank

__all__ = ["MICROSCOPY_PICTURES", "crop", "faces_overlays", "microscopy_overlays"]

#: scikit-image pictures of the ``"microscopy"`` family.
MICROSCOPY_PICTURES: tuple[str, ...] = ("immunohistochemistry", "cell", "retina", "microaneurysms")

@functools.cache
def _pictures(names: tuple[str, ...]) -> tuple[np.ndarray, ...]:
    import skimage.data

    out = []
    for name in names:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pic = np.asarray(getattr(skimage.data, name)())
        out.append(_as_rgb(pic))
    return tuple(out)


def _as_rgb(pic: np.ndarray) -> np.ndarray:
    if pic.dtype != np.uint8:
        pic = np.clip(pic * (255.0 if pic.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    if pic.ndim == 2:
        pic = np.repeat(pic[:, :, None], 3, axis=2)
    return np.ascontiguousarray(pic[:, :, :3])


def microscopy_overlays(n: int, size: Sequence[int] = (96, 96), rng: int | np.random.Generator | None = None) -> np.ndarray:
    """``n`` crops of :data:`MICROSCOPY_PICTURES`, ``(n, h, w, 3)`` ``uint8``."""
    pics = _pictures(MICROSCOPY_PICTURES)
    return draw_bank(lambda s, g: crop(pics, s, g, min_side=48), n, size, rng)


@functools.cache
def _face_pictures() -> tuple[np.ndarray, ...]:
    import matplotlib
    import skimage.data

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lfw = np.asarray(skimage.data.lfw_subset())[:100]  # the first 100 are faces
        cat = np.asarray(skimage.data.cat())
    out = [_as_rgb(face) for face in lfw] + [_as_rgb(cat)]
    hopper = os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")
    if os.path.isfile(hopper):
        pic = cv2.imread(hopper, cv2.IMREAD_COLOR)
        if pic is not None:
            out.append(cv2.cvtColor(pic, cv2.COLOR_BGR2RGB))
    return tuple(out)


def faces_overlays(n: int, size: Sequence[int] = (96, 96), rng: int | np.random.Generator | None = None) -> np.ndarray:
    """``n`` photographs of faces and people, ``(n, h, w, 3)`` ``uint8``."""
    pics = _face_pictures()
    return draw_bank(lambda s, g: crop(pics, s, g, min_side=20), n, size, rng)


def crop(pics: Sequence[np.ndarray], size: tuple[int, int], rng: np.random.Generator, min_side: int) -> np.ndarray:
    pic = pics[int(rng.integers(0, len(pics)))]
    ph, pw = pic.shape[:2]
    side = min(ph, pw)
    lo = min(min_side, side)
    crop = int(np.exp(rng.uniform(np.log(lo), np.log(side))))
    y, x = int(rng.integers(0, ph - crop + 1)), int(rng.integers(0, pw - crop + 1))
    patch = pic[y : y + crop, x : x + crop]
    h, w = size
    return cv2.resize(patch, (w, h), interpolation=cv2.INTER_AREA if crop >= max(h, w) else cv2.INTER_LINEAR)
