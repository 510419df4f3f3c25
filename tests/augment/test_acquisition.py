"""The acquisition augmentation layers: sensor noise, exposure, blots (and their policy, ``severe``)."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from cellkit.augment import describe_policy
from cellkit.augment.acquisition import RandomBlots, RandomExposure, RandomFading, RandomSensorNoise


def _np(x) -> np.ndarray:  # noqa: ANN001
    return np.asarray(keras.ops.convert_to_numpy(x))


LAYERS = [RandomSensorNoise(seed=0), RandomExposure(seed=0), RandomBlots(seed=0), RandomFading(seed=0)]


@pytest.mark.parametrize("layer", LAYERS, ids=lambda layer: type(layer).__name__)
def test_identity_at_inference_and_random_in_training(layer) -> None:  # noqa: ANN001
    x = np.random.default_rng(0).uniform(0, 255, (6, 24, 24, 3)).astype("float32")
    np.testing.assert_array_equal(_np(layer(x)), x)
    first, second = _np(layer(x, training=True)), _np(layer(x, training=True))
    assert first.shape == x.shape and np.isfinite(first).all()
    assert np.abs(first - x).mean() > 0.5 and np.abs(first - second).mean() > 0.5
    assert np.ptp(np.abs(first - x).mean(axis=(1, 2, 3))) > 0.1  # per image, not one draw for the batch


@pytest.mark.parametrize("layer", LAYERS, ids=lambda layer: type(layer).__name__)
def test_config_round_trip(layer) -> None:  # noqa: ANN001
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


def test_sensor_noise_level_is_log_uniform_and_shot_noise_follows_the_signal() -> None:
    flat = np.full((400, 16, 16, 3), 128.0, "float32")
    y = _np(RandomSensorNoise(min_stddev=4.0, max_stddev=64.0, seed=1)(flat, training=True))
    levels = (y - flat).std(axis=(1, 2, 3))
    assert 3.0 < levels.min() and levels.max() < 70.0
    # log-uniform: as many images below the geometric middle (16) as above it
    assert 0.35 < np.mean(levels < 16.0) < 0.65
    dark_bright = np.concatenate([np.full((200, 16, 8, 3), 16.0), np.full((200, 16, 8, 3), 240.0)], axis=2)
    z = _np(RandomSensorNoise(min_stddev=30.0, max_stddev=30.0, seed=2)(dark_bright.astype("float32"), training=True))
    noise = z - dark_bright
    assert noise[:, :, :8].std() < noise[:, :, 8:].std()  # shot noise: brighter pixels are noisier


def test_exposure_darkens_and_saturates() -> None:
    x = np.linspace(0, 255, 96 * 3, dtype="float32").reshape(1, 1, 96, 3).repeat(8, axis=0)
    dark = _np(RandomExposure(min_gain=0.3, max_gain=0.3, max_gamma=1.0, seed=0)(x, training=True))
    np.testing.assert_allclose(dark, x * 0.3, atol=0.05)
    bright = _np(RandomExposure(min_gain=1.6, max_gain=1.6, max_gamma=1.0, seed=0)(x, training=True))
    assert bright.max() <= 255.0 + 1e-3 and np.mean(bright >= 254.9) > 0.3  # the bright end saturates
    with pytest.raises(ValueError, match="min_gain"):
        RandomExposure(min_gain=2.0, max_gain=1.0)


def test_blots_are_dark_opaque_and_cover_the_middle() -> None:
    x = np.full((64, 48, 48, 3), 220.0, "float32")
    y = _np(RandomBlots(min_area=0.05, max_area=0.35, seed=3)(x, training=True))
    covered = y.mean(axis=-1) < 110
    share = covered.mean(axis=(1, 2))
    assert share.min() > 0.01 and share.max() < 0.45 and share.mean() > 0.08
    centre, border = covered[:, 12:36, 12:36].mean(), np.concatenate([covered[:, :6], covered[:, -6:]], 1).mean()
    assert centre > 3 * border  # over the cell, not in the corners
    assert np.percentile(y.mean(axis=-1)[covered], 50) < 70  # dark and opaque


def test_severe_policy_is_wider_than_strong() -> None:
    severe = {op["op"]: op for op in describe_policy("severe")}
    strong = {op["op"]: op for op in describe_policy("strong")}
    assert severe["RandomBlur"]["max_sigma"] >= 2 * strong["RandomBlur"]["max_sigma"]
    assert severe["RandomSensorNoise"]["max_stddev"] > 4 * strong["RandomGaussianNoise"]["max_stddev"]
    assert severe["RandomHueSaturation"]["max_hue_shift"] > 2 * strong["RandomHueSaturation"]["max_hue_shift"]
    assert severe["RandomExposure"]["min_gain"] <= 0.3 and "RandomBlots" in severe


def test_severe_policy_saves_and_loads_in_safe_mode(tmp_path: Path) -> None:
    from cellkit.augment import Augmentation, augmentation_layer

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D()(augmentation_layer("severe", seed=3)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert next(lyr for lyr in loaded.layers if isinstance(lyr, Augmentation)).policy == "severe"


def test_fading_only_takes_contrast_and_colour_away() -> None:
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 255, (200, 16, 16, 3)).astype("float32")
    y = _np(RandomFading(min_contrast=0.05, min_saturation=0.0, seed=5)(x, training=True))
    np.testing.assert_allclose(y.mean(axis=(1, 2, 3)), x.mean(axis=(1, 2, 3)), atol=1e-2)  # brightness kept
    ratio = y.std(axis=(1, 2, 3)) / x.std(axis=(1, 2, 3))
    assert ratio.max() <= 1.0 + 1e-4 and ratio.min() < 0.08  # down to a faint shadow
    assert 0.35 < np.mean(ratio < np.sqrt(0.05)) < 0.65  # contrast log-uniform: half below the geometric middle
    grey = _np(RandomFading(min_contrast=1.0, min_saturation=0.0, seed=6)(x, training=True))
    spread = np.ptp(grey, axis=-1).mean(axis=(1, 2)) / np.ptp(x, axis=-1).mean(axis=(1, 2))
    assert spread.min() < 0.05 and spread.max() <= 1.0 + 1e-4  # saturation down to grey, never up
    with pytest.raises(ValueError, match="min_contrast"):
        RandomFading(min_contrast=0.0)


def test_extreme_policy_is_severe_plus_fading() -> None:
    severe = [op["op"] for op in describe_policy("severe")]
    extreme = {op["op"]: op for op in describe_policy("extreme")}
    assert set(extreme) == set(severe) | {"RandomFading"}
    assert extreme["RandomFading"]["min_contrast"] <= 0.05 and extreme["RandomFading"]["min_saturation"] == 0.0


def test_recipes_accept_every_policy() -> None:
    from cellkit.augment.policies import POLICIES
    from cellkit.train.recipe import AUGMENTATION_POLICIES

    assert tuple(POLICIES) == AUGMENTATION_POLICIES
