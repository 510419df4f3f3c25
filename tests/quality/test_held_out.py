"""The overlay families and the held-out-family protocol (cellkit.quality.held_out)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import cellkit
from cellkit.corrupt import overlay_bank
from cellkit.corrupt.overlays import MIN_OVERLAY_STD, OVERLAY_FAMILIES
from cellkit.quality.held_out import STORAGES, held_out_family_protocol, make_bench, store

NEW_FAMILIES = ("cartoon", "text", "graphics", "microscopy", "faces")


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return cellkit.load("sample").images


@pytest.mark.parametrize("family", NEW_FAMILIES)
def test_each_family_is_seeded_deterministic_and_never_flat(family: str) -> None:
    a = overlay_bank(family, 6, size=(96, 96), rng=4)
    b = overlay_bank(family, 6, size=(96, 96), rng=4)
    assert a.shape == (6, 96, 96, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, overlay_bank(family, 6, size=(96, 96), rng=5))
    grey = cv2.cvtColor(a.reshape(-1, 96, 3), cv2.COLOR_RGB2GRAY).reshape(6, -1).astype(np.float32)
    assert np.all(grey.std(axis=1) >= MIN_OVERLAY_STD)
    assert overlay_bank(family, 2, size=(40, 64), rng=0).shape == (2, 40, 64, 3)


def test_unknown_family_is_refused() -> None:
    with pytest.raises(ValueError, match="`kind` must be one of"):
        overlay_bank("memes", 1)


@pytest.mark.parametrize("storage", STORAGES)
def test_store_keeps_shape_and_png_is_lossless(images: np.ndarray, storage: str) -> None:
    x = images[:8]
    out = store(x, storage)
    assert out.shape == x.shape and out.dtype == np.uint8
    assert np.array_equal(out, x) == (storage == "png")
    with pytest.raises(ValueError, match="`storage` must be one of"):
        store(x, "webp")


def test_bench_truth_matches_what_was_done(images: np.ndarray) -> None:
    bench = make_bench(images, "cartoon", np.random.default_rng(0), fraction=0.2, reused_share=0.5, reused_group=10)
    y = bench.superposed
    assert y.sum() == round(0.2 * len(images)) and bench.reused.sum() == round(0.5 * y.sum())
    assert np.array_equal(bench.images[~y], images[~y]) and not np.any(np.all(bench.images[y] == images[y], axis=(1, 2, 3)))
    assert np.all((bench.alpha[y] >= 0.25) & (bench.alpha[y] <= 0.6)) and np.isnan(bench.alpha[~y]).all()


def test_protocol_holds_the_family_out_and_scores_it(images: np.ndarray, monkeypatch) -> None:
    from cellkit.quality import superposition

    seen = []
    real_fit = superposition.SuperpositionDetector.fit

    def spy(self, x, y=None):  # noqa: ANN001, ANN202
        seen.append(tuple(self.overlay_kinds))
        return real_fit(self, x, y)

    monkeypatch.setattr(superposition.SuperpositionDetector, "fit", spy)
    fits = []
    report = held_out_family_protocol(images, families=("text",), storages=("png", "jpeg75"), fraction=0.15, seed=0,
                                      on_fit=lambda *args: fits.append(args))
    assert seen == [tuple(k for k in OVERLAY_FAMILIES if k != "text")] * 2
    # on_fit sees each row's stored bench, fitted detector and scores: the row is computed from them
    assert [(f, s) for f, s, *_ in fits] == [("text", "png"), ("text", "jpeg75")]
    for (_, storage, bench, det, scores), row in zip(fits, report.rows, strict=True):
        assert np.array_equal(bench.images, store(make_bench(images, "text", np.random.default_rng(
            [0, OVERLAY_FAMILIES.index("text")]), fraction=0.15).images, storage))
        assert np.array_equal(scores, det.score_samples(bench.images))
        assert row["recall"] == (scores[bench.superposed] < det.threshold_).mean()
    assert [(r["family"], r["storage"]) for r in report.rows] == [("text", "png"), ("text", "jpeg75")]
    for row in report.rows:
        assert row["superposed"] == round(0.15 * len(images))
        assert row["auroc"] > 0.9  # 480 images: a loose bound; the benchmark holds the real targets
        assert 0 <= row["flagged_clean"] < 0.1
    table = report.to_markdown()
    assert table.count("\n") == 4 and "| text | jpeg75 |" in table
