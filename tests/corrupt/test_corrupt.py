"""Tests of cellkit.corrupt: superpose, overlay banks, JPEG round trips, corrupt_dataset."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cellkit.corrupt import (
    OVERLAY_KINDS,
    color_filter,
    corrupt_dataset,
    jpeg_roundtrip,
    overlay_bank,
    random_superpositions,
    superpose,
)
from cellkit.corrupt.overlays import MIN_OVERLAY_STD, cell_overlays, dihedral
from cellkit.corrupt.superpose import BLEND_MODES, blend_layer
from cellkit.data import Dataset
from strategies import seeds


@pytest.fixture(scope="module")
def small(sample: Dataset) -> Dataset:
    """80 images of the bundled sample, 10 per class."""
    idx = np.concatenate([np.flatnonzero(sample.labels == c)[:10] for c in range(sample.num_classes)])
    return sample.subset(idx)


def _random_images(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


# -- superpose ------------------------------------------------------------------------------


def test_superpose_formula_scalar_and_per_image_alpha() -> None:
    cells = np.full((2, 8, 8, 3), 200, np.uint8)
    over = np.full((2, 8, 8, 3), 100, np.uint8)
    assert np.all(superpose(cells, over, 0.25) == 175)
    out = superpose(cells, over, np.array([0.0, 1.0]))
    assert np.array_equal(out[0], cells[0]) and np.array_equal(out[1], over[1])
    assert out.dtype == np.uint8


@given(
    alpha=st.floats(0.0, 1.0),
    seed=seeds(2**16),
)
def test_superpose_is_a_rounded_convex_combination(alpha: float, seed: int) -> None:
    a, b = _random_images(2, 8, seed), _random_images(2, 8, seed + 1)
    a0, b0 = a.copy(), b.copy()
    out = superpose(a, b, alpha).astype(np.float64)
    expected = (1 - alpha) * a + alpha * b
    assert np.abs(out - expected).max() <= 0.5 + 1e-3
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    assert np.all(out >= lo) and np.all(out <= hi)
    assert np.array_equal(a, a0) and np.array_equal(b, b0)  # inputs untouched


@given(seed=seeds(2**16))
def test_blend_layers_follow_the_editor_formulas(seed: int) -> None:
    a, b = _random_images(2, 8, seed), _random_images(2, 8, seed + 1)
    a0, b0 = a.copy(), b.copy()
    x, y = a.astype(np.float64) / 255, b.astype(np.float64) / 255
    expected = {"multiply": x * y, "screen": 1 - (1 - x) * (1 - y), "darken": np.minimum(x, y),
                "lighten": np.maximum(x, y)}
    assert set(expected) == set(BLEND_MODES)
    for mode, want in expected.items():
        got = blend_layer(a, b, mode)
        assert got.dtype == np.uint8 and np.abs(got - want * 255).max() <= 0.5 + 1e-3, mode
    assert np.array_equal(blend_layer(a, b, "multiply"), blend_layer(b, a, "multiply"))  # symmetric
    assert np.array_equal(a, a0) and np.array_equal(b, b0)


def test_blend_layer_rejects_an_unknown_mode() -> None:
    with pytest.raises(ValueError, match="`mode` must be one of"):
        blend_layer(np.zeros((1, 4, 4, 3), np.uint8), np.zeros((1, 4, 4, 3), np.uint8), "dodge")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"images": np.zeros((2, 8, 8, 3), np.float32)}, "images"),
        ({"overlays": np.zeros((3, 8, 8, 3), np.uint8)}, "overlays"),
        ({"alpha": 1.5}, "alpha"),
        ({"alpha": np.array([0.1, 0.2, 0.3])}, "alpha"),
    ],
)
def test_superpose_rejects_bad_input(kwargs: dict, match: str) -> None:
    args = {
        "images": np.zeros((2, 8, 8, 3), np.uint8),
        "overlays": np.zeros((2, 8, 8, 3), np.uint8),
        "alpha": 0.3,
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        superpose(**args)


# -- JPEG -----------------------------------------------------------------------------------


def test_jpeg_roundtrip_changes_little_and_keeps_colour_order() -> None:
    x = np.zeros((3, 32, 32, 3), np.uint8)
    x[..., 0] = 220  # pure red: a channel swap would turn it blue
    x[1, 8:24, 8:24] = (20, 200, 60)
    out = jpeg_roundtrip(x, 90)
    assert out.shape == x.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - x).mean() < 3
    assert out[0, 16, 16, 0] > 200 and out[0, 16, 16, 2] < 30
    assert np.array_equal(jpeg_roundtrip(x, None), x)
    assert not np.array_equal(jpeg_roundtrip(_random_images(2), 50), _random_images(2))


def test_jpeg_roundtrip_without_chroma_subsampling_keeps_fine_colour() -> None:
    x = np.full((1, 32, 32, 3), 128, np.uint8)
    x[0, :, ::2] = (200, 60, 60)  # one-pixel red/grey stripes: colour detail 4:2:0 halves
    err = lambda out: np.abs(out.astype(int) - x).mean()  # noqa: E731
    full, subsampled = jpeg_roundtrip(x, 95, subsample_chroma=False), jpeg_roundtrip(x, 95)
    assert err(full) < 0.5 * err(subsampled)
    assert np.array_equal(jpeg_roundtrip(x, 95, subsample_chroma=True), subsampled)


@pytest.mark.parametrize("quality", [0, 101, 90.0, True])
def test_jpeg_roundtrip_rejects_bad_quality(quality: object) -> None:
    with pytest.raises(ValueError, match="quality"):
        jpeg_roundtrip(_random_images(1), quality)  # type: ignore[arg-type]


# -- overlays -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["natural", "drawn"])
def test_overlay_bank_is_seeded_and_not_flat(kind: str) -> None:
    a = overlay_bank(kind, 6, size=(96, 96), rng=3)
    b = overlay_bank(kind, 6, size=(96, 96), rng=3)
    c = overlay_bank(kind, 6, size=(96, 96), rng=4)
    assert a.shape == (6, 96, 96, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    grey = np.stack([cv2.cvtColor(o, cv2.COLOR_RGB2GRAY) for o in a]).reshape(6, -1).astype(np.float32)
    assert np.all(grey.std(axis=1) >= MIN_OVERLAY_STD)


def test_overlay_bank_non_square_size() -> None:
    assert overlay_bank("natural", 2, size=(48, 64), rng=0).shape == (2, 48, 64, 3)
    assert overlay_bank("drawn", 2, size=(48, 64), rng=0).shape == (2, 48, 64, 3)


def test_overlay_bank_cells_are_transformed_pool_images() -> None:
    pool = _random_images(5)
    out = overlay_bank("cells", 20, size=(32, 32), rng=0, cells=pool)
    variants = [dihedral(pool, np.full(5, k)) for k in range(8)]
    for o in out:
        assert any(np.array_equal(o, v[i]) for v in variants for i in range(5))


def test_cell_overlays_never_pick_the_excluded_image() -> None:
    pool = _random_images(3)
    exclude = np.array([0, 1, 2] * 20)
    _, src = cell_overlays(pool, 60, rng=0, exclude=exclude)
    assert not np.any(src == exclude)


def test_dihedral_gives_the_eight_symmetries() -> None:
    x = np.arange(9, dtype=np.uint8).reshape(1, 3, 3, 1)
    outs = [dihedral(x, np.array([k]))[0, :, :, 0] for k in range(8)]
    assert np.array_equal(outs[0], x[0, :, :, 0])
    assert np.array_equal(outs[1], np.rot90(x[0, :, :, 0]))
    assert np.array_equal(outs[4], x[0, :, ::-1, 0])
    assert len({o.tobytes() for o in outs}) == 8


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "photos"}, "kind"),
        ({"kind": "cells"}, "cells"),
        ({"kind": "cells", "cells": np.zeros((2, 16, 16, 3), np.uint8)}, "size"),
        ({"kind": "natural", "n": -1}, "n"),
        ({"kind": "natural", "size": (4, 4)}, "size"),
    ],
)
def test_overlay_bank_rejects_bad_input(kwargs: dict, match: str) -> None:
    args = {"kind": "natural", "n": 2, "size": (32, 32), "rng": 0}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        overlay_bank(**args)


def test_random_superpositions_records_what_it_did() -> None:
    x = _random_images(10)
    base = np.arange(10)[::-1].copy()
    s = random_superpositions(x, 10, rng=0, alpha=(0.2, 0.3), kinds=("drawn", "cells"), base=base)
    assert np.array_equal(s.base, base)
    assert np.all((s.alpha >= 0.2) & (s.alpha <= 0.3))
    assert set(s.kind) <= {"drawn", "cells"}
    assert np.array_equal(s.images, superpose(x[base], s.overlays, s.alpha))


# -- corrupt_dataset ------------------------------------------------------------------------


def test_corrupt_dataset_is_seeded(small: Dataset) -> None:
    a = corrupt_dataset(small, superposed=0.25, seed=5)
    b = corrupt_dataset(small, superposed=0.25, seed=5)
    c = corrupt_dataset(small, superposed=0.25, seed=6)
    assert np.array_equal(a.dataset.images, b.dataset.images)
    for field in ("is_superposed", "is_color_filtered", "alpha", "overlay_kind", "overlay_id"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
    assert not np.array_equal(a.is_superposed, c.is_superposed)


def test_corrupt_dataset_does_not_modify_its_input(small: Dataset) -> None:
    before = small.images.copy()
    corrupt_dataset(small, superposed=0.5, color_filtered=0.2, seed=0)
    assert np.array_equal(small.images, before)


@pytest.mark.parametrize("mode", ["mixed", "repeated", "unique"])
def test_corrupt_dataset_masks_are_consistent(small: Dataset, mode: str) -> None:
    n = len(small)
    res = corrupt_dataset(
        small,
        superposed=0.3,
        color_filtered=0.1,
        alpha=(0.3, 0.4),
        overlay_mode=mode,
        n_repeated_overlays=4,
        seed=1,
    )
    sup, col = res.is_superposed, res.is_color_filtered
    assert sup.sum() == round(0.3 * n) and col.sum() == round(0.1 * n)
    assert not np.any(sup & col)
    assert np.all((res.alpha[sup] >= 0.3) & (res.alpha[sup] <= 0.4)) and np.all(res.alpha[~sup] == 0)
    assert set(res.overlay_kind[sup]) <= set(OVERLAY_KINDS) and np.all(res.overlay_kind[~sup] == "")
    assert np.all(res.overlay_id[~sup] == -1) and np.all(res.overlay_id[sup] >= 0)
    repeated = res.overlay_id[sup] < 4
    if mode == "repeated":
        assert repeated.all()
    elif mode == "unique":
        assert not repeated.any() and len(set(res.overlay_id[sup])) == sup.sum()
    else:
        assert repeated.sum() == sup.sum() // 2
    # Same repeated id -> same kind.
    for i in np.unique(res.overlay_id[sup][repeated]):
        assert len(set(res.overlay_kind[res.overlay_id == i])) == 1
    assert res.dataset.ids == small.ids and np.array_equal(res.dataset.labels, small.labels)
    assert res.dataset.class_names == small.class_names
    meta = res.metadata
    assert meta["seed"] == 1 and meta["overlay_mode"] == mode and meta["alpha"] == [0.3, 0.4]
    assert len(meta["color_filter_gains"]) == col.sum()
    assert np.array_equal(res.is_clean, ~(sup | col))


def test_corrupt_dataset_reencodes_every_image(small: Dataset) -> None:
    res = corrupt_dataset(small, superposed=0.2, color_filtered=0.1, seed=2, jpeg_quality=90)
    clean = res.is_clean
    assert np.array_equal(res.dataset.images[clean], jpeg_roundtrip(small.images[clean], 90))
    col = np.flatnonzero(res.is_color_filtered)
    gains = np.array(res.metadata["color_filter_gains"])
    expected = jpeg_roundtrip(color_filter(small.images[col], gains), 90)
    assert np.abs(res.dataset.images[col].astype(int) - expected).max() <= 1  # gains stored rounded
    raw = corrupt_dataset(small, superposed=0.2, color_filtered=0.1, seed=2, jpeg_quality=None)
    assert np.array_equal(raw.dataset.images[raw.is_clean], small.images[raw.is_clean])
    sup = raw.is_superposed
    assert np.all(
        np.abs(raw.dataset.images[sup].astype(int) - small.images[sup]).reshape(sup.sum(), -1).max(axis=1) > 0
    )


def test_corrupt_dataset_accepts_an_array() -> None:
    res = corrupt_dataset(_random_images(20), superposed=0.5, color_filtered=0.0, seed=0)
    assert len(res.dataset) == 20 and res.is_superposed.sum() == 10


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"superposed": 1.2}, "superposed"),
        ({"superposed": 0.6, "color_filtered": 0.6}, "superposed \\+ color_filtered"),
        ({"alpha": (0.7, 0.2)}, "alpha"),
        ({"overlay_kinds": ("photos",)}, "overlay kinds"),
        ({"overlay_mode": "some"}, "overlay_mode"),
        ({"n_repeated_overlays": 0}, "n_repeated_overlays"),
        ({"seed": "x"}, "seed"),
        ({"jpeg_quality": 0}, "quality"),
    ],
)
def test_corrupt_dataset_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        corrupt_dataset(_random_images(10), **kwargs)
