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
from cellkit.evaluate import _corruption_cache
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


# -- the on-disk cache (cache_dir) -----------------------------------------------------------


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int, int, int]]:
    """Every call of the corruption itself, as ``(name, severity, seed, n images)``."""
    calls: list[tuple[str, int, int, int]] = []
    corrupt_range = external_corruptions._corrupt_range

    def counting(images: np.ndarray, name: str, severity: int, seed: int, first_index: int) -> np.ndarray:
        calls.append((name, severity, seed, len(images)))
        return corrupt_range(images, name, severity, seed, first_index)

    monkeypatch.setattr(external_corruptions, "_corrupt_range", counting)
    return calls


@needs_package
def test_cache_hit_returns_the_same_array_without_corrupting(small: Dataset, tmp_path, counted) -> None:  # noqa: ANN001
    x = small.images[::4]  # 4 images of 32x32
    plain = external_corrupt(x, "gaussian_noise", 3, seed=2)
    first = external_corrupt(x, "gaussian_noise", 3, seed=2, cache_dir=tmp_path / "cache")
    assert len(counted) == 2 and len(list((tmp_path / "cache").glob("*.npy"))) == 1  # the folder is created
    again = external_corrupt(x.copy(), "gaussian_noise", 3, seed=2, cache_dir=str(tmp_path / "cache"))
    assert len(counted) == 2  # read back: same content (another array object), str or Path folder
    for arr in (first, again):
        assert arr.dtype == np.uint8 and arr.shape == x.shape
        np.testing.assert_array_equal(arr, plain)


@needs_package
def test_cache_misses_when_any_input_changes(small: Dataset, tmp_path, counted, monkeypatch) -> None:  # noqa: ANN001
    x = small.images[::4]
    external_corrupt(x, "contrast", 2, seed=0, cache_dir=tmp_path)
    other_pixel = x.copy()
    other_pixel[0, 0, 0, 0] ^= 1
    variants = [
        (x, "contrast", 2, 1),  # seed
        (x, "contrast", 3, 0),  # severity
        (x, "pixelate", 2, 0),  # corruption
        (other_pixel, "contrast", 2, 0),  # one pixel
        (x[:3], "contrast", 2, 0),  # fewer images
        (np.ascontiguousarray(x.reshape(4, 32, 32, 3)[:, :, ::-1]), "contrast", 2, 0),  # flipped
    ]
    for images, name, severity, seed in variants:
        out = external_corrupt(images, name, severity, seed=seed, cache_dir=tmp_path)
        np.testing.assert_array_equal(out, external_corrupt(images, name, severity, seed=seed))
    assert len(counted) == 1 + 2 * len(variants)
    assert len(list(tmp_path.glob("*.npy"))) == 1 + len(variants)
    # another version of imagecorruptions (or of the libraries it uses) is another key
    monkeypatch.setattr(_corruption_cache, "_library_versions", lambda: "imagecorruptions=9.9")
    external_corrupt(x, "contrast", 2, seed=0, cache_dir=tmp_path)
    assert len(counted) == 2 + 2 * len(variants)


@needs_package
@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage", "wrong shape", "wrong dtype", "pickle"])
def test_damaged_cache_file_is_recomputed(small: Dataset, tmp_path, counted, damage: str) -> None:  # noqa: ANN001
    x = small.images[::4]
    expected = external_corrupt(x, "shot_noise", 4, seed=0, cache_dir=tmp_path)
    (path,) = tmp_path.glob("*.npy")
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "garbage":
        path.write_bytes(b"not an npy file" * 100)
    elif damage == "wrong shape":
        np.save(path, expected[:2])
    elif damage == "wrong dtype":
        np.save(path, expected.astype(np.int16))
    else:
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.testing.assert_array_equal(external_corrupt(x, "shot_noise", 4, seed=0, cache_dir=tmp_path), expected)
    assert len(counted) == 2  # recomputed, and the file rewritten whole
    loaded = np.load(path, allow_pickle=False)
    np.testing.assert_array_equal(loaded, expected)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind
    external_corrupt(x, "shot_noise", 4, seed=0, cache_dir=tmp_path)
    assert len(counted) == 2


@needs_package
def test_evaluation_with_cache_is_the_same_and_reuses_cells(
    small: Dataset, tmp_path, counted, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    from cellkit.evaluate import robustness

    monkeypatch.setattr(robustness, "CORRUPTION_CHUNK", 5)  # 16 images: chunks of 5, 5, 5, 1
    seen: list[np.ndarray] = []

    def recording(images: np.ndarray) -> np.ndarray:
        seen.append(images.copy())
        return (images.mean(axis=(1, 2, 3)) // 16).astype(np.int64) % 8

    names, sevs = ("gaussian_noise", "pixelate"), (1, 5)
    plain = evaluate_external_robustness(recording, small, corruptions=names, severities=sevs, seed=1)
    plain_seen, plain_calls = [s.copy() for s in seen], len(counted)
    assert plain_calls == 4 * 4  # chunk by chunk
    for _ in range(2):  # fills the cache, then reads it
        seen.clear()
        rep = evaluate_external_robustness(recording, small, corruptions=names, severities=sevs, seed=1,
                                           cache_dir=tmp_path)
        assert rep.accuracy == plain.accuracy and rep.clean_accuracy == plain.clean_accuracy
        assert len(seen) == len(plain_seen)
        for a, b in zip(plain_seen, seen, strict=True):
            np.testing.assert_array_equal(a, b)  # the same corrupted images, chunk by chunk
    assert len(counted) == plain_calls + 4  # one whole cell each, the first time only
    assert len(list(tmp_path.glob("*.npy"))) == 4
    # the same files as external_corrupt of the evaluated images
    np.testing.assert_array_equal(
        external_corrupt(small.images, "pixelate", 5, seed=1, cache_dir=tmp_path), np.concatenate(plain_seen[-4:])
    )
    assert len(counted) == plain_calls + 4
