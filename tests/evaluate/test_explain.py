"""Saliency montages of a dataset (``cellkit.evaluate.explain``): which images, which maps, which files.

The model is a classifier whose weights are set, not fitted (red on the left half of the
image means class "red"), so which predictions are right, wrong and confident is known.
"""

from __future__ import annotations

import csv

import cv2
import keras
import numpy as np
import pytest

import cellkit
from cellkit.data import Dataset
from cellkit.evaluate.explain import EXPLAIN_FILES, Explanations, explain_dataset, overlay, select_examples
from cellkit.inference.saliency import METHODS
from saliency_toys import left_half_red_model

SIZE = 32
CLASSES = ("grey", "red")


def _model() -> keras.Model:
    return left_half_red_model(SIZE)


def _dataset(seed: int = 0) -> Dataset:
    """Grey images (label 0) and images with a red blob of growing size on the left (label 1); two mislabelled."""
    rng = np.random.default_rng(seed)
    images = np.repeat(rng.integers(60, 200, (12, SIZE, SIZE, 1)), 3, axis=3).astype(np.uint8)
    labels = np.array([0] * 6 + [1] * 6)
    for i, side in zip(range(6, 12), (6, 7, 8, 9, 10, 11), strict=True):
        images[i, 10 : 10 + side, 2 : 2 + side] = [220, 40, 40]
    images[0, 10:18, 2:10] = [220, 40, 40]  # labelled grey, red to the model: a confident error
    labels[11] = 0  # the reddest image labelled grey: the most confident error
    return Dataset(images, labels, CLASSES, ids=tuple(f"img{i:02d}" for i in range(12)), source="synthetic")


@pytest.fixture(scope="module")
def model() -> keras.Model:
    return _model()


def test_select_examples_takes_the_most_confident_correct_per_class_and_errors():
    predicted = np.array([0, 0, 1, 1, 1, 0, 1])
    confidence = np.array([0.6, 0.9, 0.7, 0.99, 0.8, 0.95, 0.5])
    labels = np.array([0, 0, 1, 0, 1, 1, 1])
    chosen, wrong = select_examples(predicted, confidence, labels, 2, per_class=2, errors=5)
    assert chosen.tolist() == [1, 0, 4, 2] and wrong.tolist() == [3, 5]
    chosen, wrong = select_examples(predicted, confidence, None, 3, per_class=1, errors=5)
    assert chosen.tolist() == [5, 3] and wrong.size == 0  # no labels: by predicted class, no errors
    chosen, wrong = select_examples(predicted, confidence, labels, 2, per_class=0, errors=1)
    assert chosen.size == 0 and wrong.tolist() == [3]


def test_overlay_blends_the_image_with_the_colour_map():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    maps = rng.random((3, 8, 8)).astype(np.float32)
    assert np.array_equal(overlay(images, maps, alpha=0.0), images)
    hot = overlay(np.zeros((1, 2, 2, 3), np.uint8), np.ones((1, 2, 2)), alpha=1.0)[0, 0, 0]
    cold = overlay(np.zeros((1, 2, 2, 3), np.uint8), np.zeros((1, 2, 2)), alpha=1.0)[0, 0, 0]
    assert hot[0] > hot[2] and cold[2] > cold[0]  # red for 1, blue for 0
    with pytest.raises(ValueError, match=r"maps \(n, h, w\)"):
        overlay(images, maps[:2])


def test_explain_dataset_picks_the_right_images_and_explains_each(model):
    ex = explain_dataset(model, _dataset(), per_class=2, errors=3)
    assert isinstance(ex, Explanations) and ex.class_names == CLASSES and ex.source == "synthetic"
    per_class = ex.montage == "per_class"
    assert (ex.labels[per_class] == ex.predicted[per_class]).all()
    assert (ex.labels[~per_class] != ex.predicted[~per_class]).all()
    assert ex.ids[~per_class].tolist() == ["img11", "img00"]  # the two errors, most confident first
    assert ex.ids[per_class & (ex.predicted == "red")].tolist() == ["img10", "img09"]  # biggest blobs first
    assert list(ex.maps) == list(METHODS)
    for maps in ex.maps.values():
        assert maps.shape == (len(ex), SIZE, SIZE) and 0 <= maps.min() and maps.max() <= 1
        red = ex.predicted == "red"
        assert (maps[red][:, :, : SIZE // 2].mean(axis=(1, 2)) > maps[red][:, :, SIZE // 2 :].mean(axis=(1, 2))).all()
    assert np.array_equal(ex.images, _dataset().images[[int(i[3:]) for i in ex.ids]])


def test_montages_and_the_csv_are_written(model, tmp_path):
    ex = explain_dataset(model, _dataset(), methods=("occlusion",), per_class=3, errors=8)
    files = ex.save(tmp_path / "out")
    assert sorted(p.name for p in files) == ["explained.csv", "occlusion_errors.png", "occlusion_per_class.png"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".cellkit-output.json", *sorted(ex.files())]
    rows = list(csv.DictReader((tmp_path / "out" / "explained.csv").read_text(encoding="utf-8").splitlines()))
    assert [r["id"] for r in rows] == ex.ids.tolist()
    assert [(r["montage"], r["position"]) for r in rows[-2:]] == [("errors", "0"), ("errors", "1")]
    assert rows[-1]["label"] == "grey" and rows[-1]["predicted"] == "red" and 0.5 < float(rows[-1]["confidence"]) <= 1
    grid = cv2.imread(str(tmp_path / "out" / "occlusion_per_class.png"))
    scale = 96 // SIZE
    assert grid.shape[1] >= 3 * 2 * SIZE * scale  # three cells of image + map in a row
    assert grid.shape[0] >= 2 * SIZE * scale  # one row per class
    with pytest.raises(cellkit.DataError, match="exists and is not empty"):
        ex.save(tmp_path / "out")
    assert sorted(p.name for p in ex.save(tmp_path / "out", overwrite=True)) == sorted(ex.files())
    assert all(any(__import__("fnmatch").fnmatch(name, pat) for pat in EXPLAIN_FILES) for name in ex.files())


def test_unlabelled_images_get_a_montage_per_predicted_class_and_no_errors(model):
    ds = _dataset()
    ex = explain_dataset(model, ds.images, methods=("gradcam",), per_class=4)
    assert ex.labels is None and set(ex.montage) == {"per_class"}
    assert ex.files() == ["explained.csv", "gradcam_per_class.png"]
    assert ex.class_names == ("class_0", "class_1")  # an array has no class names


def test_bad_arguments_are_refused(model):
    ds = _dataset()
    with pytest.raises(ValueError, match="methods must be distinct names"):
        explain_dataset(model, ds, methods=("gradcam", "gradcam"))
    with pytest.raises(ValueError, match="nothing to explain"):
        explain_dataset(model, ds, per_class=0, errors=0)
    with pytest.raises(ValueError, match="per_class must be an int >= 0"):
        explain_dataset(model, ds, per_class=-1)
    with pytest.raises(cellkit.DataError, match="expects 32x32"):
        explain_dataset(model, Dataset(np.zeros((2, 40, 40, 3), np.uint8)))
