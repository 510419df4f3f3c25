"""Stain/illumination normalisation layers: Lab conversion, Reinhard statistics, invariance, saving.

Backend-agnostic (``keras.ops`` and NumPy only): CI also runs this file with ``KERAS_BACKEND=jax``.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import cellkit
from cellkit.cli import build_parser
from cellkit.cli.train_cmd import build_recipe
from cellkit.layers import (
    NORMALIZATION_LAYERS,
    GrayWorldNormalization,
    MacenkoNormalization,
    ReinhardNormalization,
    normalization_layer,
)
from cellkit.layers.stain_norm import (
    DEFAULT_TARGET_MEAN,
    DEFAULT_TARGET_STAINS,
    DEFAULT_TARGET_STD,
    lab_to_rgb,
    macenko_stains,
    rgb_to_lab,
)
from cellkit.train import Recipe, RecipeError, load_recipe
from cellkit.zoo import build_classifier


def _np(x) -> np.ndarray:
    return keras.ops.convert_to_numpy(keras.ops.cast(x, "float32"))


@pytest.fixture(scope="module")
def cells() -> np.ndarray:
    """Two sample images per class, float32 0-255."""
    ds = cellkit.load("sample")
    idx = np.concatenate([np.flatnonzero(ds.labels == c)[:2] for c in range(ds.num_classes)])
    return ds.images[idx].astype("float32")


def _filtered(images: np.ndarray) -> np.ndarray:
    """A colour-filtered, darkened copy (a yellowish cast at 80 % brightness)."""
    return np.clip(images * np.array([1.0, 0.9, 0.7]) * 0.8, 0, 255).astype("float32")


# -- Lab conversion ----------------------------------------------------------------------------


def test_lab_round_trip_is_identity_within_one_grey_level():
    images = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3)).astype("float32")
    back = _np(lab_to_rgb(rgb_to_lab(images)))
    assert np.abs(back - images).max() < 1.0


def test_lab_matches_skimage():
    color = pytest.importorskip("skimage.color")
    pixels = np.random.default_rng(1).integers(0, 256, (500, 3)).astype("float32")
    pixels[:3] = [[0, 0, 0], [255, 255, 255], [1, 2, 3]]  # the extremes and the linear parts of both curves
    expected = color.rgb2lab(pixels[None] / 255.0)[0]
    np.testing.assert_allclose(_np(rgb_to_lab(pixels)), expected, atol=0.5)


def test_out_of_range_values_are_clipped():
    out = _np(rgb_to_lab(np.array([[300.0, -20.0, 128.0]])))
    np.testing.assert_allclose(out, _np(rgb_to_lab(np.array([[255.0, 0.0, 128.0]]))), atol=1e-5)


# -- Reinhard ----------------------------------------------------------------------------------


def test_reinhard_output_has_the_target_statistics(cells):
    target_mean, target_std = (75.0, 12.0, 5.0), (14.0, 8.0, 11.0)  # near the sample: little clipping
    out = _np(ReinhardNormalization(target_mean=target_mean, target_std=target_std)(cells))
    assert out.shape == cells.shape and out.min() >= 0 and out.max() <= 255
    lab = _np(rgb_to_lab(out))
    np.testing.assert_allclose(lab.mean(axis=(1, 2)), np.broadcast_to(target_mean, (len(cells), 3)), atol=1.5)
    error = np.abs(lab.std(axis=(1, 2)) / np.array(target_std) - 1)
    assert np.median(error) < 0.01  # exact but for the few colours clipped to the sRGB gamut
    assert error.max() < 0.25, error.max()


def test_default_targets_are_the_sample_statistics(cells):
    lab = _np(rgb_to_lab(cells))
    assert np.abs(lab.mean(axis=(1, 2)).mean(axis=0) - DEFAULT_TARGET_MEAN).max() < 5.0
    assert np.abs(lab.std(axis=(1, 2)).mean(axis=0) / DEFAULT_TARGET_STD - 1).max() < 0.3


@pytest.mark.parametrize("layer_cls", [ReinhardNormalization, GrayWorldNormalization])
def test_colour_cast_and_brightness_are_mostly_removed(cells, layer_cls):
    layer = layer_cls()
    shifted = _filtered(cells)
    before = np.abs(shifted - cells).mean()
    after = np.abs(_np(layer(shifted)) - _np(layer(cells))).mean()
    assert before > 15.0
    assert after < 0.1 * before, (before, after)  # measured: 1.4 (Reinhard), 0.002 (grey world) of 60


def test_gray_world_undoes_a_channel_scaling_exactly(cells):
    layer = GrayWorldNormalization(target_rgb=(180.0, 150.0, 170.0))
    scaled = cells * np.array([0.9, 0.6, 0.75], "float32")  # no clipping: exact invariance
    np.testing.assert_allclose(_np(layer(scaled)), _np(layer(cells)), atol=0.05)
    means = _np(GrayWorldNormalization(target_rgb=(60.0, 50.0, 40.0))(cells)).mean(axis=(1, 2))
    np.testing.assert_allclose(means, np.broadcast_to([60.0, 50.0, 40.0], means.shape), atol=0.05)


@pytest.mark.parametrize("shape", [(1, 7, 5, 3), (3, 40, 24, 3), (2, 1, 1, 3)])
def test_any_batch_and_image_size(shape):
    x = np.random.default_rng(2).uniform(0, 255, shape).astype("float32")
    for cls in NORMALIZATION_LAYERS.values():
        y = _np(cls()(x))
        assert y.shape == shape and np.isfinite(y).all()
    inputs = keras.Input((None, None, 3))
    assert ReinhardNormalization()(inputs).shape == (None, None, None, 3)


@pytest.mark.parametrize("name", sorted(NORMALIZATION_LAYERS))
def test_compiled_prediction_with_unknown_sizes_matches_eager(name):
    inputs = keras.Input((None, None, 3))
    layer = normalization_layer(name)
    model = keras.Model(inputs, layer(inputs))
    x = np.random.default_rng(4).uniform(0, 255, (5, 24, 20, 3)).astype("float32")
    np.testing.assert_allclose(model.predict(x, batch_size=3, verbose=0), _np(layer(x)), atol=0.05)


def test_uint8_input_and_determinism(cells):
    layer = ReinhardNormalization()
    as_uint8 = cells.astype(np.uint8)
    first = _np(layer(as_uint8))
    np.testing.assert_array_equal(first, _np(layer(as_uint8)))
    np.testing.assert_array_equal(first, _np(layer(as_uint8, training=True)))  # no training-time behaviour
    np.testing.assert_allclose(first, _np(layer(cells)), atol=1e-4)
    assert layer.weights == []


def test_a_uniform_image_gives_the_target_mean_colour():
    out = _np(ReinhardNormalization()(np.full((1, 8, 8, 3), 200.0, "float32")))
    expected = _np(lab_to_rgb(np.array(DEFAULT_TARGET_MEAN, "float32")))
    np.testing.assert_allclose(out[0, 0, 0], expected, atol=0.01)
    assert np.isfinite(_np(ReinhardNormalization()(np.zeros((1, 4, 4, 3), "float32")))).all()


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_runs_in_float32_inside(cells, policy):
    previous = keras.config.dtype_policy()
    try:
        keras.mixed_precision.set_global_policy(policy)
        for cls in NORMALIZATION_LAYERS.values():
            layer = cls()
            y = layer(cells)
            assert keras.backend.standardize_dtype(y.dtype) == policy.split("_")[1]
            out = _np(y)
            assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 255
            reference = _np(cls(dtype="float32")(cells))
            assert np.abs(out - reference).max() <= 2.0  # the output's rounding only
    finally:
        keras.mixed_precision.set_global_policy(previous)


def test_config_round_trip():
    layer = ReinhardNormalization(target_mean=(50, 5, -5), target_std=(10, 5, 5), epsilon=0.5, name="rn")
    clone = ReinhardNormalization.from_config(layer.get_config())
    assert (clone.target_mean, clone.target_std, clone.epsilon, clone.name) == (
        (50.0, 5.0, -5.0), (10.0, 5.0, 5.0), 0.5, "rn")
    gw = GrayWorldNormalization.from_config(GrayWorldNormalization(target_rgb=(1, 2, 3)).get_config())
    assert gw.target_rgb == (1.0, 2.0, 3.0)
    mac = MacenkoNormalization(target_stains=((2, 0, 0), (0, 3, 4)), target_max_concentration=(1.5, 0.5), alpha=2,
                               min_tissue=4)
    clone = MacenkoNormalization.from_config(mac.get_config())
    assert clone.target_stains == ((1.0, 0.0, 0.0), (0.0, 0.6, 0.8))  # unit vectors
    assert (clone.target_max_concentration, clone.alpha, clone.beta, clone.min_tissue) == ((1.5, 0.5), 2.0, 0.15, 4)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: ReinhardNormalization(target_std=(1, 0, 1)), "target_std must be three positive numbers"),
        (lambda: ReinhardNormalization(target_mean=(1, 2)), "Received: target_mean=\\(1, 2\\)"),
        (lambda: ReinhardNormalization(epsilon=0), "Received: epsilon=0"),
        (lambda: GrayWorldNormalization(target_rgb=(300, 1, 1)), "in \\(0, 255\\]"),
        (lambda: MacenkoNormalization(alpha=50), "alpha must be in \\(0, 50\\)"),
        (lambda: MacenkoNormalization(target_stains=((1, 0, 0),)), "two non-zero \\(r, g, b\\) vectors"),
        (lambda: MacenkoNormalization(target_stains=((1, 0, 0), (0, 0, 0))), "Received: target_stains="),
        (lambda: MacenkoNormalization(target_max_concentration=(1.0,)), "two positive numbers"),
        (lambda: MacenkoNormalization(min_tissue=1), "Received: min_tissue=1"),
        (lambda: MacenkoNormalization(beta=-1), "Received: beta=-1"),
        (lambda: normalization_layer("vahadane"), "Received: normalize='vahadane'"),
        (lambda: ReinhardNormalization()(np.zeros((1, 4, 4, 1), "float32")), "RGB images"),
    ],
)
def test_bad_arguments_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


# -- in a classifier, in a recipe, on the command line -------------------------------------------


@pytest.mark.parametrize("name", sorted(NORMALIZATION_LAYERS))
def test_classifier_with_normalisation_saves_and_loads(name, cells, tmp_path):
    import cv2

    small = np.stack([cv2.resize(im, (32, 32), interpolation=cv2.INTER_AREA) for im in cells.astype(np.uint8)])
    model = build_classifier("baseline", num_classes=8, input_shape=(32, 32, 3), normalize=name,
                             high_pass="laplacian")
    assert isinstance(model.layers[1], NORMALIZATION_LAYERS[name])  # first, before the high-pass layer
    assert type(model.layers[2]).__name__ == "LaplacianFilter"
    expected = _np(model(small, training=False))
    path = tmp_path / "m.keras"
    model.save(path)
    for loaded in (keras.models.load_model(path, safe_mode=True), cellkit.load_model(path)):
        assert isinstance(loaded.layers[1], NORMALIZATION_LAYERS[name])
        np.testing.assert_allclose(_np(loaded(small, training=False)), expected, rtol=1e-5, atol=1e-6)


def test_classifier_refuses_an_unknown_normalisation():
    with pytest.raises(ValueError, match="normalize must be None or one of 'reinhard', 'grayworld'.*"
                                         "Received: normalize='vahadane'"):
        build_classifier("baseline", normalize="vahadane")


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_recipe_round_trip_keeps_normalize(tmp_path, suffix):
    recipe = Recipe(normalize="reinhard")
    assert load_recipe(recipe.save(tmp_path / f"r{suffix}")).normalize == "reinhard"
    assert Recipe().normalize is None and "normalize" not in Recipe().to_toml()
    assert Recipe().replace(normalize="GrayWorld").normalize == "grayworld"
    with pytest.raises(RecipeError, match="normalize must be one of.*did you mean 'reinhard'.*"
                                          "Received: normalize='reinhardt'"):
        Recipe(normalize="reinhardt")


def test_train_command_sets_normalize():
    parse = build_parser().parse_args
    base = ["train", "sample", "--out", "runs/x"]
    assert build_recipe(parse([*base, "--normalize", "reinhard"])).normalize == "reinhard"
    assert build_recipe(parse([*base, "--normalize", "none"])).normalize is None
    assert build_recipe(parse(base)).normalize is None
    with pytest.raises(RecipeError, match="Received: normalize='bogus'"):
        build_recipe(parse([*base, "--normalize", "bogus"]))


def test_train_command_builds_the_normalisation_into_the_run(tmp_path):
    import json

    import cv2

    from cellkit.cli import main

    ds = cellkit.load("sample")
    idx = np.concatenate([np.flatnonzero(ds.labels == c)[:8] for c in range(ds.num_classes)])
    small = np.stack([cv2.resize(im, (32, 32), interpolation=cv2.INTER_AREA) for im in ds.images[idx]])
    data = tmp_path / "tiny.npz"
    np.savez(data, images=small, labels=ds.labels[idx])
    out = tmp_path / "run"
    argv = ["train", str(data), "--out", str(out), "--backbone", "baseline", "--epochs", "1", "--batch-size", "16",
            "--augmentation", "none", "--normalize", "reinhard", "--quiet"]
    assert main(argv) == 0
    assert json.loads((out / "recipe.json").read_text())["normalize"] == "reinhard"
    model = cellkit.load_model(out)
    assert isinstance(model.layers[1], ReinhardNormalization)


# -- Macenko -------------------------------------------------------------------------------------

#: Two made-up stains (unit optical-density vectors, columns): a purple and a pink one.
STAINS = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11]]).T / np.linalg.norm([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11]],
                                                                               axis=1)


def _stained(stains: np.ndarray, amount: float = 1.0, n: int = 4, side: int = 32) -> np.ndarray:
    """Synthetic smears: half the pixels white background, the rest two stains in random amounts."""
    rng = np.random.default_rng(7)
    c = np.stack([rng.uniform(0.2, 1.6, (n, side * side)), rng.uniform(0.05, 0.9, (n, side * side))], axis=-1)
    c[:, : side * side // 2] = 0.0
    od = (c * amount) @ stains.T
    return np.clip(256 * np.exp(-od) - 1, 0, 255).reshape(n, side, side, 3).astype("float32")


def test_macenko_finds_the_stains_of_a_synthetic_image():
    stains, max_c, tissue = (_np(v) for v in macenko_stains(_stained(STAINS)))
    assert stains.shape == (4, 3, 2) and max_c.shape == (4, 2)
    assert (tissue <= 512).all() and (tissue > 300).all()  # background (and faint pixels, OD < beta) left out
    cosine = np.einsum("nik,ik->nk", stains, STAINS)  # the stain with the larger red OD first
    assert cosine[:, 0].min() > 0.99 and cosine[:, 1].min() > 0.97, cosine  # 1st-percentile angles: ~10 degrees


def test_macenko_output_has_the_target_stains(cells):
    out = _np(MacenkoNormalization()(cells))
    assert out.shape == cells.shape and np.isfinite(out).all() and out.min() >= 0 and out.max() <= 255
    stains = _np(macenko_stains(out)[0])
    cosine = np.einsum("nik,ik->nk", stains, np.array(DEFAULT_TARGET_STAINS).T)
    assert np.median(cosine) > 0.99 and cosine.min() > 0.9, cosine


def test_macenko_removes_a_change_of_stains():
    other = np.array([[0.55, 0.78, 0.30], [0.20, 0.72, 0.66]]).T
    other /= np.linalg.norm(other, axis=0)
    reference, changed = _stained(STAINS), _stained(other, amount=1.3)
    layer = MacenkoNormalization()
    before = np.abs(changed - reference).mean()
    after = np.abs(_np(layer(changed)) - _np(layer(reference))).mean()
    assert before > 10.0 and after < 0.2 * before, (before, after)


def test_macenko_leaves_blank_and_uniform_images_unchanged():
    images = np.stack([np.full((8, 8, 3), v, "float32") for v in ([255, 255, 255], [0, 0, 0], [120, 60, 150])])
    np.testing.assert_array_equal(_np(MacenkoNormalization()(images)), images)
    tiny = np.random.default_rng(3).uniform(0, 200, (2, 3, 3, 3)).astype("float32")  # 9 pixels < min_tissue
    np.testing.assert_array_equal(_np(MacenkoNormalization()(tiny)), tiny)
