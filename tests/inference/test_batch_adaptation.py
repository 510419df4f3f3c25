"""Adapting to each predicted batch: AdaptiveBatchNormalization and with_batch_adaptation."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from cellkit.inference.batch_adaptation import with_batch_adaptation
from cellkit.layers import AdaptiveBatchNormalization


def _bn_classifier(name: str = "clf") -> keras.Model:
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 3))
    x = keras.layers.BatchNormalization()(inp)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.BatchNormalization()(x)
    out = keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inp, out, name=name)
    # training statistics of images around 100 +- 20
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization) and layer.moving_mean.shape[0] == 3:
            layer.moving_mean.assign(np.full(3, 100.0, "float32"))
            layer.moving_variance.assign(np.full(3, 400.0, "float32"))
    del rng
    return model


@pytest.fixture
def images() -> np.ndarray:
    return np.random.default_rng(1).normal(100.0, 20.0, (32, 8, 8, 3)).astype("float32")


def test_prior_zero_uses_the_batch_alone_so_a_global_shift_is_undone(images: np.ndarray) -> None:
    adaptive = with_batch_adaptation(_bn_classifier(), prior=0)
    shifted = images * 0.5 + 60.0  # another lamp and camera: every channel scaled and offset
    np.testing.assert_allclose(adaptive.predict(shifted, verbose=0), adaptive.predict(images, verbose=0), atol=1e-4)


def test_a_large_prior_is_the_model_itself_and_the_model_is_unchanged(images: np.ndarray) -> None:
    model = _bn_classifier()
    before = model.predict(images, verbose=0)
    adaptive = with_batch_adaptation(model, prior=1e9)
    np.testing.assert_allclose(adaptive.predict(images, verbose=0), before, atol=1e-5)
    np.testing.assert_array_equal(model.predict(images, verbose=0), before)
    assert not any(isinstance(layer, AdaptiveBatchNormalization) for layer in model.layers)
    shared = [layer for layer in adaptive.layers if isinstance(layer, keras.layers.Conv2D)]
    assert shared and shared[0] in model.layers  # other layers are shared, not copied


def test_the_blend_weighs_the_training_statistics_as_prior_images() -> None:
    bn = AdaptiveBatchNormalization(prior=8.0, center=False, scale=False, epsilon=0.0)
    bn.build((None, 1, 1, 1))
    bn.moving_mean.assign(np.zeros(1, "float32"))
    bn.moving_variance.assign(np.ones(1, "float32"))
    x = np.full((8, 1, 1, 1), 4.0, "float32")  # batch mean 4, variance 0
    # mean = (8 * 0 + 8 * 4) / 16 = 2, variance = (8 * 1 + 8 * 0) / 16 = 0.5
    np.testing.assert_allclose(np.asarray(bn(x)), (4.0 - 2.0) / np.sqrt(0.5), rtol=1e-5)
    varied = np.arange(8, dtype="float32").reshape(8, 1, 1, 1)
    trained = np.asarray(bn(varied, training=True))  # training: Keras' batch norm, the batch alone
    np.testing.assert_allclose(trained, (varied - 3.5) / varied.std(), rtol=1e-4)
    with pytest.raises(ValueError, match="prior"):
        AdaptiveBatchNormalization(prior=-1)


def test_nested_tta_and_ensemble_models_are_adapted_and_reload_in_safe_mode(images: np.ndarray, tmp_path) -> None:
    import cellkit  # noqa: F401  registers the layers for plain keras loading
    from cellkit.inference.ensemble import build_ensemble
    from cellkit.inference.tta import with_tta

    ensemble = build_ensemble([with_tta(_bn_classifier("a"), "flips"), _bn_classifier("b")])
    adaptive = with_batch_adaptation(ensemble, prior=4)

    def count(layer) -> int:  # noqa: ANN001
        return sum(count(sub) for sub in getattr(layer, "layers", [])) + isinstance(layer, AdaptiveBatchNormalization)

    assert count(adaptive) == 4
    path = tmp_path / "adaptive.keras"
    adaptive.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), adaptive.predict(images, verbose=0), atol=1e-5)


def test_a_model_without_batch_norm_is_refused() -> None:
    inp = keras.Input((4,))
    with pytest.raises(ValueError, match="no batch-norm"):
        with_batch_adaptation(keras.Model(inp, keras.layers.Dense(2)(inp)))
    with pytest.raises(ValueError, match="prior"):
        with_batch_adaptation(_bn_classifier(), prior="16")
