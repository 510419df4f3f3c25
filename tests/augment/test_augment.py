"""Augmentation policies, custom random layers, CutMix/MixUp, label smoothing, the robust preset.

Runs on whatever ``KERAS_BACKEND`` is set (TensorFlow by default; also checked with
``KERAS_BACKEND=jax python -m pytest tests/augment``).
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cellkit.augment import (
    MIX_METHODS,
    POLICIES,
    POLICY_FAMILIES,
    Augmentation,
    RandomAffine,
    RandomApply,
    RandomBlur,
    RandomChannelGain,
    RandomChromaBlur,
    RandomErasing,
    RandomGaussianNoise,
    RandomHueSaturation,
    RandomRot90,
    augmentation_layer,
    describe_policy,
    mix_batch,
    smooth_labels,
)
from cellkit.corrupt.suite import AUGMENTATION_FAMILIES, EVALUATION_FAMILIES, FAMILIES
from cellkit.train.presets import ROBUST_PHASE_KEYS, ROBUST_PRESET
from strategies import seeds


@pytest.fixture(scope="module")
def batch(sample) -> np.ndarray:  # noqa: ANN001
    """8 sample cells (one per class) as float32 0-255."""
    idx = [int(np.flatnonzero(sample.labels == c)[0]) for c in range(8)]
    return sample.images[idx].astype("float32")


def _np(x) -> np.ndarray:  # noqa: ANN001
    return np.asarray(keras.ops.convert_to_numpy(x))


# --- policies --------------------------------------------------------------------------


def test_policies_only_simulate_augmentation_families() -> None:
    assert set(POLICIES) == {"none", "light", "strong", "severe", "extreme"}
    for policy, families in POLICY_FAMILIES.items():
        for fam in families:
            assert fam in FAMILIES, fam
            names = FAMILIES[fam]
            assert set(names) <= set(AUGMENTATION_FAMILIES), (policy, fam)
            assert not set(names) & set(EVALUATION_FAMILIES), (policy, fam)
    assert set(POLICY_FAMILIES["light"]) == {"geometric", "contrast", "brightness", "colour"}
    assert {"gaussian_blur", "noise", "colour", "occlusion"} <= set(POLICY_FAMILIES["strong"])
    assert set(POLICY_FAMILIES["severe"]) == set(POLICY_FAMILIES["strong"])  # wider, not other kinds
    assert set(POLICY_FAMILIES["extreme"]) == set(POLICY_FAMILIES["severe"])


def test_describe_policy_lists_every_op_with_its_magnitudes(monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from cellkit.augment import policies

    strong = describe_policy("strong")
    assert [op["family"] for op in strong] == [fam for fam, _ in POLICIES["strong"]]
    assert json.loads(json.dumps(strong)) == strong  # JSON-ready: run.json records it
    erasing = next(op for op in strong if op["op"] == "RandomErasing")
    assert erasing == {"family": "occlusion", "op": "RandomErasing", "min_area": 0.02, "max_area": 0.25,
                       "max_aspect": 3.0, "rate": 0.5}
    assert describe_policy("none") == [] and describe_policy("strong") == strong  # no names or seeds in it
    changed = [*POLICIES["light"][:-1], ("colour", lambda s: keras.layers.RandomHue(0.05, value_range=(0, 255), seed=s))]
    before = describe_policy("light")
    monkeypatch.setitem(policies.POLICIES, "light", changed)
    after = describe_policy("light")
    assert after != before and after[:-1] == before[:-1]  # same name, other magnitude: told apart
    with pytest.raises(ValueError, match="policy"):
        describe_policy("medium")


@pytest.mark.parametrize("policy", list(POLICIES))
def test_identity_at_inference(policy: str, batch: np.ndarray) -> None:
    aug = augmentation_layer(policy, seed=0)
    np.testing.assert_array_equal(_np(aug(batch)), batch)  # default: inference
    np.testing.assert_array_equal(_np(aug(batch, training=False)), batch)
    inputs = keras.Input((96, 96, 3))
    model = keras.Model(inputs, aug(inputs))
    np.testing.assert_array_equal(model.predict(batch, verbose=0), batch)


@pytest.mark.parametrize("policy", ["light", "strong", "severe"])
def test_random_in_training(policy: str, batch: np.ndarray) -> None:
    aug = augmentation_layer(policy, seed=1)
    first, second = _np(aug(batch, training=True)), _np(aug(batch, training=True))
    assert first.shape == batch.shape
    assert first.min() >= 0.0 and first.max() <= 255.0
    assert np.abs(first - batch).mean() > 5.0  # augmented
    assert np.abs(first - second).mean() > 5.0  # a fresh draw each call
    per_image = np.abs(first - batch).mean(axis=(1, 2, 3))
    assert np.ptp(per_image) > 0.5  # not one transform for the whole batch


def test_seed_makes_training_draws_reproducible(batch: np.ndarray) -> None:
    a = _np(augmentation_layer("strong", seed=7)(batch, training=True))
    b = _np(augmentation_layer("strong", seed=7)(batch, training=True))
    np.testing.assert_allclose(a, b, atol=1e-3)


def test_none_policy_is_identity_even_in_training(batch: np.ndarray) -> None:
    np.testing.assert_array_equal(_np(augmentation_layer("none")(batch, training=True)), batch)


def test_serializable_keras_file_reloads_in_safe_mode(tmp_path: Path, batch: np.ndarray) -> None:
    inputs = keras.Input((96, 96, 3))
    x = augmentation_layer("strong", seed=3)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(8, activation="softmax")(x))
    path = tmp_path / "tiny.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    layer = next(lyr for lyr in loaded.layers if isinstance(lyr, Augmentation))
    assert layer.get_config()["policy"] == "strong" and layer.get_config()["seed"] == 3
    np.testing.assert_allclose(loaded.predict(batch, verbose=0), model.predict(batch, verbose=0), atol=1e-6)
    assert _np(layer(batch, training=True)).shape == batch.shape


def test_training_step_runs(batch: np.ndarray) -> None:
    inputs = keras.Input((96, 96, 3))
    x = augmentation_layer("strong", seed=0)(inputs)
    x = keras.layers.Rescaling(1 / 255)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(8, activation="softmax")(x))
    model.compile("adam", "categorical_crossentropy", jit_compile=False)
    history = model.fit(batch, np.eye(8, dtype="float32"), epochs=1, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_bad_policy_and_shape() -> None:
    with pytest.raises(ValueError, match="policy='heavy'"):
        augmentation_layer("heavy")
    with pytest.raises(ValueError, match="RGB batches"):
        augmentation_layer("light")(np.zeros((2, 8, 8, 1), "float32"), training=True)


# --- custom layers ---------------------------------------------------------------------


def test_rot90_gives_one_of_four_rotations(batch: np.ndarray) -> None:
    out = _np(RandomRot90(seed=2)(batch, training=True))
    seen = set()
    for x, y in zip(batch, out, strict=True):
        k = [k for k in range(4) if np.array_equal(np.rot90(x, k, axes=(0, 1)), y)]
        assert len(k) == 1
        seen.add(k[0])
    assert len(seen) >= 2
    with pytest.raises(ValueError, match="square"):
        RandomRot90()(np.zeros((1, 4, 6, 3), "float32"), training=True)


def test_blur_keeps_flat_images_flat_and_smooths(batch: np.ndarray) -> None:
    flat = np.full((3, 20, 20, 3), 200.0, "float32")
    np.testing.assert_allclose(_np(RandomBlur(1.0, 2.0, seed=0)(flat, training=True)), flat, rtol=1e-5)
    blurred = _np(RandomBlur(1.0, 1.5, seed=0)(batch, training=True))
    lap = lambda a: np.abs(np.diff(a, axis=1)).mean()  # noqa: E731
    assert lap(blurred) < 0.8 * lap(batch)
    with pytest.raises(ValueError, match="min_sigma"):
        RandomBlur(2.0, 1.0)


def _reference_blur(images: np.ndarray, sigma: np.ndarray, radius: int) -> np.ndarray:
    """Separable Gaussian blur with numpy: reflect padding (repeated where wider than the image), 2r + 1 taps."""
    out = []
    for im, s in zip(images.astype("float64"), sigma[:, 0], strict=True):
        k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / s) ** 2)
        k /= k.sum()
        p = np.pad(im, ((radius, radius), (radius, radius), (0, 0)), mode="reflect")
        h, w = im.shape[:2]
        rows = sum(k[j] * p[j : j + h] for j in range(2 * radius + 1))
        out.append(sum(k[j] * rows[:, j : j + w] for j in range(2 * radius + 1)))
    return np.stack(out)


@pytest.mark.parametrize("method", ["matmul", "shifted"])
@pytest.mark.parametrize(("shape", "radius"), [((3, 12, 12, 2), 3), ((2, 9, 14, 3), 4), ((2, 5, 5, 1), 7)])
def test_gaussian_blur_matches_a_numpy_reference(shape: tuple, radius: int, method: str) -> None:
    from cellkit.augment.layers import _gaussian_blur

    if method == "shifted" and radius >= min(shape[1:3]):
        pytest.skip("shifted sums pad by reflection once: radius < image size")
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, shape).astype("float32")
    sigma = rng.uniform(0.4, radius / 2, (shape[0], 1)).astype("float32")
    x, s = keras.ops.convert_to_tensor(images), keras.ops.convert_to_tensor(sigma)
    got = _np(_gaussian_blur(x, s, radius, method=method))
    np.testing.assert_allclose(got, _reference_blur(images, sigma, radius), atol=1e-3)


def test_gaussian_blur_refuses_an_unknown_method() -> None:
    from cellkit.augment.layers import _gaussian_blur

    x = keras.ops.zeros((1, 8, 8, 3))
    with pytest.raises(ValueError, match="method must be 'auto', 'matmul' or 'shifted'.*'fft'"):
        _gaussian_blur(x, keras.ops.ones((1, 1)), 2, method="fft")


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="unknown static shapes are a TensorFlow graph case")
def test_gaussian_blur_of_images_of_unknown_size_matches_the_reference() -> None:
    import tensorflow as tf

    from cellkit.augment.layers import _gaussian_blur

    rng = np.random.default_rng(1)
    images = rng.uniform(0, 255, (2, 10, 13, 3)).astype("float32")
    sigma = np.array([[0.7], [1.9]], "float32")
    blur = tf.function(
        lambda x, s: _gaussian_blur(x, s, 4),
        input_signature=[tf.TensorSpec((None, None, None, 3)), tf.TensorSpec((None, 1))],
    )
    np.testing.assert_allclose(blur(images, sigma).numpy(), _reference_blur(images, sigma, 4), atol=1e-3)


def _luma_and_chroma(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """BT.601 Y and (Cb, Cr), computed here independently of the layer (OpenCV's YCrCb, reordered)."""
    import cv2

    ycrcb = np.stack([cv2.cvtColor(np.asarray(im, "float32") / 255.0, cv2.COLOR_RGB2YCrCb) for im in rgb]) * 255.0
    return ycrcb[..., 0], ycrcb[..., [2, 1]]


def test_chroma_blur_smooths_colour_and_keeps_luma(batch: np.ndarray) -> None:
    out = _np(RandomChromaBlur(1.5, 3.0, seed=0)(batch, training=True))
    y_in, c_in = _luma_and_chroma(batch)
    y_out, c_out = _luma_and_chroma(out)
    np.testing.assert_allclose(y_out, y_in, atol=0.05)  # the brightness of every pixel is kept
    grad = lambda a: np.abs(np.diff(a, axis=1)).mean(axis=(1, 2, 3))  # noqa: E731
    assert np.all(grad(c_out) < 0.7 * grad(c_in))  # colour detail smoothed in every image
    assert np.abs(c_out - c_in).max() > 5  # and it moved
    grey = np.repeat(batch[..., :1], 3, axis=-1)  # no colour: nothing to blur
    np.testing.assert_allclose(_np(RandomChromaBlur(seed=0)(grey, training=True)), grey, atol=1e-3)
    np.testing.assert_array_equal(_np(RandomChromaBlur(seed=0)(batch, training=False)), batch)
    a = _np(RandomChromaBlur(seed=4)(batch, training=True))
    np.testing.assert_array_equal(a, _np(RandomChromaBlur(seed=4)(batch, training=True)))
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(RandomChromaBlur(0.7, 2.5)))
    assert isinstance(again, RandomChromaBlur) and (again.min_sigma, again.max_sigma) == (0.7, 2.5)
    with pytest.raises(ValueError, match="3 channels"):
        RandomChromaBlur()(np.zeros((1, 8, 8, 1), "float32"), training=True)
    with pytest.raises(ValueError, match="min_sigma"):
        RandomChromaBlur(2.0, 1.0)


def _warp(images: np.ndarray, angle: float = 0.0, shift: tuple = (0.0, 0.0), scale: float = 1.0) -> np.ndarray:
    from cellkit.augment.layers import affine_matrix

    n, h, w = images.shape[:3]
    full = lambda v: np.full((n,), v, "float32")  # noqa: E731
    matrix = affine_matrix(full(angle), full(shift[0]), full(shift[1]), full(scale), h, w)
    return _np(keras.ops.image.affine_transform(images, matrix, interpolation="bilinear", fill_mode="reflect"))


def test_affine_matrix_rotates_shifts_and_zooms_as_documented(batch: np.ndarray) -> None:
    np.testing.assert_allclose(_warp(batch), batch, atol=1e-3)
    np.testing.assert_allclose(_warp(batch, angle=np.pi / 2), np.rot90(batch, -1, axes=(1, 2)), atol=1e-2)  # clockwise
    moved = _warp(batch, shift=(3.0, -2.0))  # content 3 pixels right, 2 up
    np.testing.assert_allclose(moved[:, 10:-10, 10:-10], batch[:, 12:-8, 7:-13], atol=1e-3)
    square = np.zeros((1, 33, 33, 3), "float32")
    square[:, 12:21, 12:21] = 255.0  # 9 x 9 bright square in the centre
    area = lambda a: float((a[..., 0] > 127).sum())  # noqa: E731
    assert area(_warp(square, scale=0.5)) == pytest.approx(4 * 81, rel=0.15)  # zoom in: twice the side
    assert area(_warp(square, scale=1.5)) == pytest.approx(81 / 2.25, rel=0.25)  # zoom out


def test_random_affine_applies_each_transform_with_its_rate(batch: np.ndarray) -> None:
    np.testing.assert_array_equal(_np(RandomAffine(seed=0)(batch, training=False)), batch)
    np.testing.assert_allclose(_np(RandomAffine(rate=0.0, seed=0)(batch, training=True)), batch, atol=1e-3)
    moved = _np(RandomAffine(rate=1.0, seed=0)(batch, training=True))
    assert np.all(np.abs(moved - batch).mean(axis=(1, 2, 3)) > 1.0)  # every image moved
    many = np.repeat(batch[:1], 64, axis=0)
    half = _np(RandomAffine(rotation=0.0, shift=0.0, zoom=0.2, rate=0.5, seed=1)(many, training=True))
    unchanged = np.abs(half - many).max(axis=(1, 2, 3)) < 1e-2
    assert 16 <= unchanged.sum() <= 48  # about half the images zoomed
    a = _np(RandomAffine(seed=3)(batch, training=True))
    np.testing.assert_array_equal(a, _np(RandomAffine(seed=3)(batch, training=True)))
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(RandomAffine(10.0, 0.05, 0.1, 0.3)))
    assert (again.rotation, again.shift, again.zoom, again.rate) == (10.0, 0.05, 0.1, 0.3)
    with pytest.raises(ValueError, match="zoom"):
        RandomAffine(zoom=1.5)


def test_hue_saturation_turns_hue_and_scales_saturation() -> None:
    from cellkit.augment.layers import hue_saturation

    colours = np.array([[[[255.0, 0.0, 0.0], [200.0, 100.0, 100.0], [90.0, 90.0, 90.0]]]], "float32")  # (1, 1, 3, 3)
    one = lambda v: np.array([v], "float32")  # noqa: E731
    np.testing.assert_allclose(_np(hue_saturation(colours, one(0.0), one(1.0))), colours, atol=1e-3)
    turned = _np(hue_saturation(colours, one(1 / 3), one(1.0)))
    np.testing.assert_allclose(turned[0, 0, 0], [0, 255, 0], atol=1e-3)  # red -> green
    np.testing.assert_allclose(turned[0, 0, 2], colours[0, 0, 2], atol=1e-3)  # grey stays grey
    grey = _np(hue_saturation(colours, one(0.0), one(0.0)))
    np.testing.assert_allclose(grey[0, 0, :, 0], grey[0, 0, :, 2], atol=1e-3)  # no saturation: grey at the max value
    np.testing.assert_allclose(grey[0, 0, :, 0], [255, 200, 90], atol=1e-3)
    vivid = _np(hue_saturation(colours, one(0.0), one(5.0)))
    np.testing.assert_allclose(vivid[0, 0, 1], [200, 0, 0], atol=1e-3)  # saturation clipped at 1


def test_random_hue_saturation_keeps_value_and_grey(batch: np.ndarray) -> None:
    out = _np(RandomHueSaturation(0.1, 2.0, rate=1.0, seed=0)(batch, training=True))
    np.testing.assert_allclose(out.max(axis=-1), batch.max(axis=-1), atol=0.05)  # HSV value kept
    assert np.all(np.abs(out - batch).mean(axis=(1, 2, 3)) > 0.5)
    grey = np.repeat(batch[..., :1], 3, axis=-1)
    np.testing.assert_allclose(_np(RandomHueSaturation(rate=1.0, seed=0)(grey, training=True)), grey, atol=1e-3)
    np.testing.assert_allclose(_np(RandomHueSaturation(rate=0.0, seed=0)(batch, training=True)), batch, atol=0.05)
    again = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(RandomHueSaturation(0.02, 1.5, rate=0.2))
    )
    assert (again.max_hue_shift, again.max_saturation_gain, again.rate) == (0.02, 1.5, 0.2)
    with pytest.raises(ValueError, match="max_saturation_gain"):
        RandomHueSaturation(max_saturation_gain=0.5)


def test_channel_gain_and_noise_magnitudes(batch: np.ndarray) -> None:
    ratio = _np(RandomChannelGain(0.1, seed=0)(batch + 1, training=True)) / (batch + 1)
    per = ratio.reshape(8, -1, 3)
    assert np.allclose(per.min(axis=1), per.max(axis=1), rtol=1e-4)  # one gain per image and channel
    assert np.all(np.abs(per - 1) <= 0.1 + 1e-5) and np.ptp(per[:, 0]) > 0
    noisy = _np(RandomGaussianNoise(10.0, seed=0)(batch, training=True)) - batch
    std = noisy.reshape(8, -1).std(axis=1)
    assert np.all(std <= 10.5) and np.ptp(std) > 0.5  # per-image standard deviation in [0, 10]


def test_random_erasing_replaces_one_rectangle_by_noise(batch: np.ndarray) -> None:
    flat = np.full((64, 40, 40, 3), 128.0, "float32")
    out = _np(RandomErasing(0.05, 0.2, max_aspect=3.0, seed=0)(flat, training=True))
    changed = np.any(out != flat, axis=-1)  # (n, h, w)
    for mask in changed:
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        box = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        assert box.mean() > 0.95  # one axis-aligned rectangle (a noise value may equal 128)
        assert mask.mean() <= 0.2 + 0.05  # at most max_area (plus rounding to whole pixels)
    share = changed.mean(axis=(1, 2))
    assert share.max() > 0.08 and np.ptp(share) > 0.03  # the area is drawn per image
    noise = out[np.broadcast_to(changed[..., None], out.shape)]
    assert noise.min() >= 0 and noise.max() <= 255 and 110 < noise.mean() < 146 and noise.std() > 60
    np.testing.assert_array_equal(_np(RandomErasing(seed=0)(batch, training=False)), batch)
    a = _np(RandomErasing(seed=3)(batch, training=True))
    np.testing.assert_array_equal(a, _np(RandomErasing(seed=3)(batch, training=True)))
    with pytest.raises(ValueError, match="min_area"):
        RandomErasing(0.3, 0.2)
    with pytest.raises(ValueError, match="max_aspect"):
        RandomErasing(max_aspect=0.5)


def test_random_apply_picks_images(batch: np.ndarray) -> None:
    halve = keras.layers.Rescaling(0.5)
    x = np.concatenate([batch] * 8)
    assert np.array_equal(_np(RandomApply(halve, rate=0.0, seed=0)(x, training=True)), x)
    np.testing.assert_allclose(_np(RandomApply(halve, rate=1.0, seed=0)(x, training=True)), x * 0.5)
    out = _np(RandomApply(halve, rate=0.5, seed=0)(x, training=True))
    halved = np.all(np.isclose(out, x * 0.5), axis=(1, 2, 3))
    kept = np.all(out == x, axis=(1, 2, 3))
    assert np.all(halved ^ kept) and 0 < halved.sum() < len(x)
    np.testing.assert_array_equal(_np(RandomApply(halve, rate=1.0)(x, training=False)), x)
    with pytest.raises(ValueError, match="rate"):
        RandomApply(halve, rate=1.5)


# --- mixing ----------------------------------------------------------------------------


def test_cutmix_labels_follow_the_pasted_area() -> None:
    n = 6
    x = (np.arange(n, dtype=np.uint8) * 40)[:, None, None, None] * np.ones((1, 16, 16, 3), np.uint8)
    before = x.copy()
    xm, ym = mix_batch(x, np.eye(n), "cutmix", alpha=1.0, rng=0)
    np.testing.assert_array_equal(x, before)
    for i in range(n):
        own = np.mean(xm[i, ..., 0] == i * 40)
        assert ym[i, i] == pytest.approx(own, abs=1e-6)  # own label weight = own area
        assert set(np.unique(xm[i, ..., 0])) <= {i * 40.0, *(40.0 * np.flatnonzero(ym[i] > 0))}


def test_mixup_is_a_convex_combination() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (5, 4, 4, 3)).astype("float32")
    xm, ym = mix_batch(x, np.eye(5), "mixup", alpha=0.4, rng=1)
    for i in range(5):
        (j,) = [j for j in np.flatnonzero(ym[i] > 0) if j != i] or [i]
        lam = ym[i, i]
        np.testing.assert_allclose(xm[i], lam * x[i] + (1 - lam) * x[j], rtol=1e-5, atol=1e-3)


@given(
    n=st.integers(1, 12),
    k=st.integers(2, 9),
    method=st.sampled_from(MIX_METHODS),
    alpha=st.floats(0.05, 5.0),
    eps=st.sampled_from([0.0, 0.05, 0.1, 0.3]),
    p=st.sampled_from([0.0, 0.5, 1.0]),
    seed=seeds(2**31),
)
def test_mixed_labels_sum_to_one(n: int, k: int, method: str, alpha: float, eps: float, p: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = np.eye(k)[rng.integers(0, k, n)]
    x = rng.integers(0, 256, (n, 6, 5, 3), dtype=np.uint8)
    xm, ym = mix_batch(x, y, method, alpha=alpha, rng=seed, probability=p, label_smoothing=eps)
    assert xm.shape == x.shape and xm.dtype == np.float32 and ym.shape == (n, k)
    np.testing.assert_allclose(ym.sum(axis=1), 1.0, atol=1e-5)
    assert ym.min() >= eps / k - 1e-6
    if p == 0.0 or method == "none":
        np.testing.assert_array_equal(xm, x)
        np.testing.assert_allclose(ym, smooth_labels(y, eps), atol=1e-6)


def test_label_smoothing_values() -> None:
    out = smooth_labels(np.eye(4)[[2]], 0.1)
    np.testing.assert_allclose(out, [[0.025, 0.025, 0.925, 0.025]])
    with pytest.raises(ValueError, match="label_smoothing=1"):
        smooth_labels(np.eye(3), 1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "cutout"}, "method='cutout'"),
        ({"alpha": 0}, "alpha=0"),
        ({"probability": 2}, "probability=2"),
        ({"labels_onehot": np.eye(3)}, r"shape \(4, k\)"),
        ({"labels_onehot": np.full((4, 2), 0.7)}, "sum"),
    ],
)
def test_mix_batch_bad_arguments(kwargs: dict, match: str) -> None:
    args = {"images": np.zeros((4, 8, 8, 3), np.uint8), "labels_onehot": np.eye(4), **kwargs}
    with pytest.raises(ValueError, match=match):
        mix_batch(**args)


def test_robust_preset_is_usable() -> None:
    assert ROBUST_PRESET["augmentation"] in POLICIES
    assert ROBUST_PRESET["mix"] in MIX_METHODS
    assert 0 < ROBUST_PRESET["label_smoothing"] < 1 and ROBUST_PRESET["epochs"] > 0
    assert isinstance(augmentation_layer(ROBUST_PRESET["augmentation"]), Augmentation)
    xm, ym = mix_batch(
        np.zeros((4, 8, 8, 3), np.uint8), np.eye(4), ROBUST_PRESET["mix"], alpha=ROBUST_PRESET["mix_alpha"],
        rng=0, probability=ROBUST_PRESET["mix_probability"], label_smoothing=ROBUST_PRESET["label_smoothing"],
    )  # fmt: skip
    assert ym.shape == (4, 4)


def test_robust_preset_keys_are_recipe_and_phase_settings() -> None:
    import dataclasses

    from cellkit.train.recipe import Phase, Recipe

    recipe_keys = {f.name for f in dataclasses.fields(Recipe)}
    phase_keys = {f.name for f in dataclasses.fields(Phase)}
    assert set(ROBUST_PHASE_KEYS) <= phase_keys
    assert set(ROBUST_PRESET) - set(ROBUST_PHASE_KEYS) <= recipe_keys
    recipe = Recipe(**{k: v for k, v in ROBUST_PRESET.items() if k not in ROBUST_PHASE_KEYS})
    assert recipe.augmentation == "strong" and recipe.label_smoothing == 0.1
