"""The external yardstick: ImageNet-C corruptions of ``imagecorruptions``, evaluation only.

Most tests need the optional package (``pip install imagecorruptions``) and are skipped
without it; the install hint and the argument checks are tested either way.
"""

from __future__ import annotations

import importlib.util
import sys

import cv2
import keras
import numpy as np
import pytest

from cellkit.data import Dataset
from cellkit.evaluate import external as external_corruptions
from cellkit.evaluate.external import (
    EXTERNAL_CORRUPTIONS,
    evaluate_external_robustness,
    external_corrupt,
)
from cellkit.evaluate.robustness import RobustnessReport

# frost blends in a photo of frost: on the bright blood-cell background its severity-1
# setting (image + 0.4 frost, saturating) moves pixels about as far as severity 5's.
NOT_MONOTONE = {"frost"}


needs_package = pytest.mark.skipif(
    importlib.util.find_spec("imagecorruptions") is None, reason="pip install imagecorruptions (evaluation only)"
)


@pytest.fixture(scope="module")
def small(sample: Dataset) -> Dataset:
    """16 sample images, 2 per class, resized to 32x32 (the smallest size imagecorruptions takes)."""
    idx = np.concatenate([np.flatnonzero(sample.labels == c)[:2] for c in range(8)])
    images = np.stack([cv2.resize(im, (32, 32), interpolation=cv2.INTER_AREA) for im in sample.images[idx]])
    return Dataset(images, labels=sample.labels[idx], class_names=sample.class_names, source="sample-32")


def test_names_are_the_imagenet_c_nineteen() -> None:
    assert len(EXTERNAL_CORRUPTIONS) == len(set(EXTERNAL_CORRUPTIONS)) == 19
    assert EXTERNAL_CORRUPTIONS[:3] == ("gaussian_noise", "shot_noise", "impulse_noise")


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "imagecorruptions", None)
    monkeypatch.setitem(sys.modules, "imagecorruptions.corruptions", None)
    x = np.zeros((1, 32, 32, 3), np.uint8)
    with pytest.raises(ImportError, match=r"pip install imagecorruptions \(evaluation only\)"):
        external_corrupt(x, "contrast", 1)
    with pytest.raises(ImportError, match="evaluation only"):
        evaluate_external_robustness(lambda b: np.zeros(len(b), np.int64), (x, np.zeros(1, np.int64)))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "brightness_down"}, "Received: name='brightness_down'"),
        ({"severity": 6}, "Received: severity=6"),
        ({"seed": -1}, "Received: seed=-1"),
        ({"images": np.zeros((1, 16, 32, 3), np.uint8)}, "at least 32 pixels"),
        ({"images": np.zeros((1, 32, 32, 3), np.float32)}, "uint8"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    args = {"images": np.zeros((1, 32, 32, 3), np.uint8), "name": "contrast", "severity": 1, "seed": 0} | kwargs
    with pytest.raises(ValueError, match=match):
        external_corrupt(**args)


def test_bad_evaluation_arguments(small: Dataset) -> None:
    labels_fn = lambda b: np.zeros(len(b), np.int64)  # noqa: E731
    with pytest.raises(ValueError, match="Received: name='fog2'"):
        evaluate_external_robustness(labels_fn, small, corruptions="fog2")
    with pytest.raises(ValueError, match="Received: max_images=0"):
        evaluate_external_robustness(labels_fn, small, corruptions="fog", max_images=0)
    with pytest.raises(ValueError, match=r"Received: severities=\(\)"):
        evaluate_external_robustness(labels_fn, small, corruptions="fog", severities=())


@needs_package
def test_deterministic_uint8_and_isolated(small: Dataset) -> None:
    ic = external_corruptions._load_corruptions()
    np.random.seed(123)
    expected_next = np.random.random_sample()
    np.random.seed(123)
    a = external_corrupt(small.images, "snow", 3, seed=4)
    assert np.random.random_sample() == expected_next  # the caller's global state is untouched
    assert a.dtype == np.uint8 and a.shape == small.images.shape
    np.testing.assert_array_equal(a, external_corrupt(small.images, "snow", 3, seed=4))
    assert not np.array_equal(a, external_corrupt(small.images, "snow", 3, seed=5))
    # image i depends on (seed, name, i) only, not on the batch around it
    np.testing.assert_array_equal(a[:1], external_corrupt(small.images[:1], "snow", 3, seed=4))
    import skimage
    import skimage.filters

    assert ic.np is np and ic.sk is skimage and ic.gaussian is skimage.filters.gaussian  # the shims are gone


@needs_package
@pytest.mark.parametrize("name", EXTERNAL_CORRUPTIONS)
def test_each_corruption_changes_the_images(small: Dataset, name: str) -> None:
    x = small.images[::4]  # 4 images, one per other class
    diff = {s: np.abs(external_corrupt(x, name, s, seed=0).astype(np.int16) - x).mean() for s in (1, 5)}
    assert diff[1] > 0
    if name not in NOT_MONOTONE:
        assert diff[5] > diff[1]
    np.testing.assert_array_equal(external_corrupt(x, name, 2, seed=1), external_corrupt(x, name, 2, seed=1))


def tiny_model() -> keras.Model:
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(8, kernel_initializer=keras.initializers.GlorotUniform(0))(x))


@needs_package
def test_evaluation_report(small: Dataset, tmp_path) -> None:  # noqa: ANN001
    names = ("gaussian_noise", "contrast", "pixelate")
    rep = evaluate_external_robustness(tiny_model(), small, corruptions=names, severities=(1, 5), batch_size=8)
    assert isinstance(rep, RobustnessReport) and rep.n_images == 16 and rep.source == "sample-32"
    assert rep.corruptions == names and rep.severities == (1, 5) and rep.held_out == names
    cells = [a for by_sev in rep.accuracy.values() for a in by_sev.values()]
    assert len(cells) == 6 and all(0.0 <= a <= 1.0 for a in [*cells, rep.clean_accuracy])
    d = rep.to_dict()
    assert set(d["corruptions"]) == set(names) and all(e["held_out"] for e in d["corruptions"].values())
    assert RobustnessReport.from_json(rep.to_json(tmp_path / "r.json")).accuracy == rep.accuracy
    assert "pixelate" in str(rep)


@needs_package
def test_seeded_and_stratified_subset(small: Dataset) -> None:
    seen: list[np.ndarray] = []

    def recording(images: np.ndarray) -> np.ndarray:
        seen.append(images.copy())
        return np.zeros(len(images), np.int64)

    rep = evaluate_external_robustness(recording, small, corruptions="shot_noise", severities=[2], max_images=8, seed=3)
    assert rep.n_images == 8 and rep.clean_accuracy == rep.accuracy["shot_noise"][2] == 0.125  # one per class
    first = [s.copy() for s in seen]
    seen.clear()
    evaluate_external_robustness(recording, small, corruptions=["shot_noise"], severities=[2], max_images=8, seed=3)
    for a, b in zip(first, seen, strict=True):
        np.testing.assert_array_equal(a, b)
