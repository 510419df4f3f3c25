"""FusedBatchNormalization behaves as keras.layers.BatchNormalization: outputs, statistics, gradients, saving.

On TensorFlow its training step runs the fused kernel; elsewhere it is Keras' layer (also
checked with ``KERAS_BACKEND=jax``).
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from cellkit.layers import FusedBatchNormalization


def _pair(**options) -> tuple[keras.layers.Layer, keras.layers.Layer]:
    return keras.layers.BatchNormalization(**options), FusedBatchNormalization(**options)


def _x(shape: tuple = (8, 6, 6, 5), seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(3.0, 2.0, shape) * rng.uniform(0.5, 2.0, shape[-1])).astype("float32")


@pytest.mark.parametrize("options", [{}, {"momentum": 0.9}, {"center": False, "scale": False}, {"epsilon": 1e-5}])
def test_training_outputs_and_moving_statistics_match_keras(options: dict) -> None:
    keras_bn, fused = _pair(**options)
    for step in range(3):
        x = _x(seed=step)
        expected, got = keras_bn(x, training=True), fused(x, training=True)
        np.testing.assert_allclose(np.asarray(got), np.asarray(expected), atol=2e-4)
    np.testing.assert_allclose(np.asarray(fused.moving_mean), np.asarray(keras_bn.moving_mean), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(fused.moving_variance), np.asarray(keras_bn.moving_variance), rtol=1e-4)
    x = _x(seed=9)
    np.testing.assert_allclose(np.asarray(fused(x)), np.asarray(keras_bn(x)), atol=1e-5)  # inference: moving stats


def _model(layer: keras.layers.Layer) -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = layer(x)
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(keras.layers.ReLU()(x)))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss=keras.losses.MeanSquaredError())
    return model


def test_one_training_step_moves_the_weights_as_keras_does() -> None:
    reference, candidate = _model(keras.layers.BatchNormalization()), _model(FusedBatchNormalization())
    candidate.set_weights(reference.get_weights())
    x, y = _x((16, 6, 6, 3), seed=1), np.random.default_rng(2).normal(size=(16, 2)).astype("float32")
    for _ in range(2):
        loss_ref, loss_cand = reference.train_on_batch(x, y), candidate.train_on_batch(x, y)
        assert loss_cand == pytest.approx(loss_ref, rel=1e-4)
    for ref, cand in zip(reference.get_weights(), candidate.get_weights(), strict=True):
        np.testing.assert_allclose(cand, ref, rtol=1e-3, atol=1e-4)  # gradients of conv, gamma, beta agree


def test_mixed_bfloat16_and_other_ranks_fall_back_or_match() -> None:
    from cellkit.train.devices import precision_policy

    with precision_policy("float32"):
        dense_ref, dense = _pair()
        flat = _x((8, 5))
        np.testing.assert_allclose(np.asarray(dense(flat, training=True)), np.asarray(dense_ref(flat, training=True)),
                                   atol=1e-5)  # rank 2: Keras' own path
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        keras_bn, fused = _pair()
        x = _x()
        got = np.asarray(keras.ops.cast(fused(x, training=True), "float32"))
        expected = np.asarray(keras.ops.cast(keras_bn(x, training=True), "float32"))
    finally:
        keras.config.set_dtype_policy(previous)
    assert fused.compute_dtype == "bfloat16" and str(fused.moving_mean.dtype) == "float32"
    np.testing.assert_allclose(got, expected, atol=0.05)  # bfloat16 rounding of unit-scale outputs


def test_saved_model_reloads_in_safe_mode_with_keras_weights(tmp_path: Path) -> None:
    model = _model(FusedBatchNormalization(momentum=0.8))
    model.train_on_batch(_x((16, 6, 6, 3)), np.zeros((16, 2), "float32"))
    path = tmp_path / "m.keras"
    model.save(path)
    again = keras.saving.load_model(path, safe_mode=True)
    layer = next(la for la in again.layers if isinstance(la, FusedBatchNormalization))
    assert layer.momentum == 0.8
    x = _x((4, 6, 6, 3), seed=5)
    np.testing.assert_allclose(np.asarray(again.predict(x, verbose=0)), np.asarray(model.predict(x, verbose=0)),
                               atol=1e-6)
    plain = _model(keras.layers.BatchNormalization())
    plain.set_weights(model.get_weights())  # the same variables, in the same order
    np.testing.assert_allclose(np.asarray(plain.predict(x, verbose=0)), np.asarray(model.predict(x, verbose=0)),
                               atol=1e-6)
