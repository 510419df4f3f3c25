"""Precise batch norm: statistics re-estimated on clean images, frozen layers left alone."""

from __future__ import annotations

import cv2
import keras
import numpy as np
import pytest

import cellkit
from cellkit.data import Dataset
from cellkit.train import Phase, Recipe, RecipeError, load_model, train
from cellkit.train.precise_bn import PreciseBatchNorm, batch_norm_layers, recalibrate_batch_norm


def _bn_model(frozen: bool = False) -> keras.Model:
    inp = keras.Input((4, 4, 2))
    first = keras.layers.BatchNormalization(momentum=0.9, name="first")
    second = keras.layers.BatchNormalization(momentum=0.9, name="second")
    if frozen:
        second.trainable = False
    out = second(keras.layers.Activation("relu")(first(inp)))
    return keras.Model(inp, out)


def _stats(layer) -> tuple[np.ndarray, np.ndarray]:
    return keras.ops.convert_to_numpy(layer.moving_mean), keras.ops.convert_to_numpy(layer.moving_variance)


def test_statistics_become_the_average_of_the_batch_statistics():
    model = _bn_model()
    x = np.random.default_rng(0).normal([3.0, -1.0], [2.0, 0.5], (48, 4, 4, 2)).astype("float32")
    assert recalibrate_batch_norm(model, x, batch_size=16) == 2
    batches = x.reshape(3, 16 * 4 * 4, 2)
    mean, var = _stats(model.get_layer("first"))
    np.testing.assert_allclose(mean, batches.mean(axis=1).mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(var, batches.var(axis=1).mean(axis=0), rtol=1e-4)
    assert all(layer.momentum == 0.9 for layer in batch_norm_layers(model))  # restored
    before = [_stats(layer) for layer in batch_norm_layers(model)]
    recalibrate_batch_norm(model, x, batch_size=16)  # same images, same weights: same statistics
    for (m0, v0), layer in zip(before, batch_norm_layers(model), strict=True):
        np.testing.assert_allclose(_stats(layer)[0], m0, rtol=1e-6)
        np.testing.assert_allclose(_stats(layer)[1], v0, rtol=1e-6)


def test_frozen_batch_norm_keeps_its_statistics():
    model = _bn_model(frozen=True)
    frozen = model.get_layer("second")
    before = _stats(frozen)
    x = np.random.default_rng(1).normal(5.0, 3.0, (32, 4, 4, 2)).astype("float32")
    assert recalibrate_batch_norm(model, x, batch_size=8) == 1
    np.testing.assert_array_equal(_stats(frozen)[0], before[0])
    np.testing.assert_array_equal(_stats(frozen)[1], before[1])
    assert [layer.name for layer in batch_norm_layers(model, trainable_only=False)] == ["first", "second"]
    assert recalibrate_batch_norm(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]), x) == 0


@pytest.mark.parametrize("dropout", [keras.layers.Dropout(0.5, seed=0), keras.layers.SpatialDropout2D(0.5, seed=0),
                                     keras.layers.GaussianDropout(0.5, seed=0)])
def test_dropout_is_off_while_statistics_are_gathered(dropout):
    """Dropout before batch norm inflates the batch variance in training mode (variance shift)."""
    inp = keras.Input((4, 4, 2))
    out = keras.layers.BatchNormalization(momentum=0.9, name="bn")(dropout(inp))
    model = keras.Model(inp, out)
    x = np.random.default_rng(3).normal([3.0, -1.0], [2.0, 0.5], (48, 4, 4, 2)).astype("float32")
    assert recalibrate_batch_norm(model, x, batch_size=16) == 1
    batches = x.reshape(3, 16 * 4 * 4, 2)
    mean, var = _stats(model.get_layer("bn"))
    np.testing.assert_allclose(mean, batches.mean(axis=1).mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(var, batches.var(axis=1).mean(axis=0), rtol=1e-4)  # not the inflated variance
    assert dropout.rate == 0.5  # restored
    noisy = keras.ops.convert_to_numpy(model(x[:16], training=True))
    assert not np.allclose(noisy, keras.ops.convert_to_numpy(model(x[:16], training=False)))  # dropout acts again


def test_callback_recalibrates_before_validation_on_a_shuffled_fixed_choice():
    model = _bn_model()
    images = np.concatenate([np.zeros((40, 4, 4, 2)), np.full((40, 4, 4, 2), 10.0)]).astype("float32")
    cb = PreciseBatchNorm(model, images, np.arange(80), batches=4, batch_size=16, seed=3)
    assert cb.indices.size == 64 and len(set(cb.indices.tolist())) == 64
    assert not np.array_equal(cb.indices, np.sort(cb.indices))  # not class-sorted batches
    cb.on_test_begin()
    mean = _stats(model.get_layer("first"))[0]
    assert 3.0 < float(mean[0]) < 7.0  # both "classes" seen in the batches
    with pytest.raises(ValueError, match="batches must be an int >= 1"):
        PreciseBatchNorm(model, images, np.arange(80), batches=0)


def test_recipe_precise_bn_is_validated_and_used_by_train(tmp_path):
    with pytest.raises(RecipeError, match="precise_bn"):
        Recipe(precise_bn=-1)
    ds = cellkit.load("sample")
    idx = np.concatenate([np.flatnonzero(ds.labels == c)[:8] for c in range(ds.num_classes)])
    small = np.stack([cv2.resize(im, (32, 32), interpolation=cv2.INTER_AREA) for im in ds.images[idx]])
    data = Dataset(small, ds.labels[idx], ds.class_names, tuple(ds.ids[i] for i in idx), source="tiny")
    recipe = Recipe(backbone="compact_resnet", augmentation="light", batch_size=16, seed=2, precise_bn=2,
                    phases=(Phase("scratch", epochs=1, optimizer="adamw", learning_rate=1e-3),))
    result = train(data, recipe, tmp_path / "run", quiet=True)
    saved = load_model(tmp_path / "run" / "model.keras")
    cb = PreciseBatchNorm(saved, data.images, result.split.train, 2, batch_size=16, seed=2)
    layer = batch_norm_layers(saved)[0]
    before = _stats(layer)
    cb.recalibrate()  # the saved statistics are already those of this recalibration
    np.testing.assert_allclose(_stats(layer)[0], before[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_stats(layer)[1], before[1], rtol=1e-5, atol=1e-6)
