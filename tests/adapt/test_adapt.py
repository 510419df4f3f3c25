"""Test-time adaptation: batch-norm statistics re-estimated on unlabelled target images.

Backend-agnostic (``keras.ops`` and NumPy only): also run with ``KERAS_BACKEND=jax``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest

import cellkit
from cellkit.adapt import adapt_batch_norm, adapt_model
from cellkit.cli import main
from cellkit.errors import DataError
from cellkit.inference.ensemble import build_ensemble
from cellkit.inference.tta import with_tta
from cellkit.train import save_model
from cellkit.train.precise_bn import batch_norm_layers

SIZE = 16


def _model(name: str = "small") -> keras.Model:
    """input BN -> conv -> frozen BN -> relu -> pool -> dropout -> dense: one trainable, one frozen BN."""
    inp = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.BatchNormalization(name="input_bn")(inp)
    x = keras.layers.Conv2D(4, 3, name="conv")(x)
    frozen = keras.layers.BatchNormalization(name="conv_bn")
    frozen.trainable = False
    x = keras.layers.Activation("relu")(frozen(x))
    x = keras.layers.Dropout(0.5, seed=0)(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inp, keras.layers.Dense(3, activation="softmax", name="dense")(x), name=name)


def _np(x) -> np.ndarray:
    return keras.ops.convert_to_numpy(x)


def _stats(model: keras.Model) -> list[np.ndarray]:
    return [_np(v) for layer in batch_norm_layers(model, trainable_only=False)
            for v in (layer.moving_mean, layer.moving_variance)]


def _other_weights(model: keras.Model) -> list[np.ndarray]:
    stats = {id(v) for layer in batch_norm_layers(model, trainable_only=False)
             for v in (layer.moving_mean, layer.moving_variance)}
    return [_np(v) for v in model.weights if id(v) not in stats]


@pytest.fixture(scope="module")
def target() -> np.ndarray:
    """64 sample images at 16x16, darkened by half (a dimmer microscope), uint8."""
    ds = cellkit.load("sample")
    idx = np.random.default_rng(0).permutation(len(ds))[:64]
    small = np.stack([cv2.resize(im, (SIZE, SIZE), interpolation=cv2.INTER_AREA) for im in ds.images[idx]])
    return (small * 0.5).astype(np.uint8)


def test_statistics_move_to_the_target_images_and_nothing_else_changes(target):
    model = _model()
    before, others = _stats(model), _other_weights(model)
    assert adapt_batch_norm(model, target, batch_size=16) == 2
    x = target.astype("float32")
    in_bn, conv_bn = model.get_layer("input_bn"), model.get_layer("conv_bn")
    np.testing.assert_allclose(_np(in_bn.moving_mean), x.mean(axis=(0, 1, 2)), rtol=1e-4)
    batches = x.reshape(4, 16, SIZE, SIZE, 3)
    np.testing.assert_allclose(_np(in_bn.moving_variance), batches.var(axis=(1, 2, 3)).mean(axis=0), rtol=1e-3)
    # the frozen layer too, on what it sees in training mode: conv of the batch-normalised input
    conv_out = []
    for b in batches:
        normed = (b - b.mean(axis=(0, 1, 2))) / np.sqrt(b.var(axis=(0, 1, 2)) + in_bn.epsilon)
        conv_out.append(_np(model.get_layer("conv")(normed)))
    np.testing.assert_allclose(_np(conv_bn.moving_mean), np.mean([c.mean(axis=(0, 1, 2)) for c in conv_out], axis=0),
                               rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(_np(conv_bn.moving_variance),
                               np.mean([c.var(axis=(0, 1, 2)) for c in conv_out], axis=0), rtol=1e-3)
    assert not conv_bn.trainable and in_bn.trainable  # frozen again afterwards
    assert not conv_bn.trainable_weights
    assert all(layer.momentum == 0.99 for layer in batch_norm_layers(model, trainable_only=False))
    assert model.layers[-2].rate == 0.5  # dropout restored
    assert np.abs(_stats(model)[0] - before[0]).min() > 10.0  # the input statistics moved to the images'
    for a, b in zip(_other_weights(model), others, strict=True):
        np.testing.assert_array_equal(a, b)


def test_adapting_twice_on_the_same_images_gives_the_same_statistics(target):
    model, info = adapt_model(_model(), target, batch_size=16)
    first = _stats(model)
    again, _ = adapt_model(model, target, batch_size=16)
    for a, b in zip(_stats(again), first, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert info == {"model": None, "batch_norm_layers": 2, "images": 64, "batch_size": 16, "batches": 4, "seed": 0}


def test_adapt_model_copies_and_limits_the_images(target):
    original = _model()
    before = _stats(original)
    adapted, info = adapt_model(original, target, batch_size=8, max_images=24, seed=3)
    assert (info["images"], info["batches"]) == (24, 3)
    for a, b in zip(_stats(original), before, strict=True):
        np.testing.assert_array_equal(a, b)  # the caller's model is untouched
    assert adapted is not original and np.abs(_stats(adapted)[0] - before[0]).max() > 1.0


def test_tta_and_ensemble_models_are_adapted_in_their_nested_members(target):
    tta, info = adapt_model(with_tta(_model(), "flips"), target, batch_size=16)
    assert info["batch_norm_layers"] == 2
    mean = _np(batch_norm_layers(tta)[0].moving_mean)
    np.testing.assert_allclose(mean, target.astype("float32").mean(axis=(0, 1, 2)), rtol=1e-4)  # flips: same mean
    ensemble, info = adapt_model(build_ensemble([_model("a"), _model("b")], tta="flips"), target, batch_size=16)
    assert info["batch_norm_layers"] == 4
    for layer in batch_norm_layers(ensemble):
        np.testing.assert_allclose(_np(layer.moving_mean), mean, rtol=1e-4)
    assert ensemble.predict(target[:4], verbose=0).shape == (4, 3)


def test_bad_inputs_are_refused(target):
    no_bn = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Flatten(), keras.layers.Dense(2)])
    with pytest.raises(DataError, match="has no batch-norm layer to adapt"):
        adapt_model(no_bn, target)
    with pytest.raises(DataError, match="it takes \\(16, 16, 3\\). Received: images of shape \\(8, 8, 3\\)"):
        adapt_model(_model(), target[:, :8, :8])
    with pytest.raises(DataError, match="Received: shape=\\(16, 16, 3\\)"):
        adapt_model(_model(), target[0])
    with pytest.raises(ValueError, match="Received: batch_size=0"):
        adapt_model(_model(), target, batch_size=0)
    with pytest.raises(ValueError, match="Received: max_images=0"):
        adapt_model(_model(), target, max_images=0)


# -- command line --------------------------------------------------------------------------------


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def files(target, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adapt")
    data = root / "target.npz"
    np.savez(data, images=target)  # unlabelled: adaptation needs no labels
    no_bn = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(2, activation="softmax")])
    return {"data": data, "model": save_model(_model(), root / "model.keras"),
            "no_bn": save_model(no_bn, root / "no_bn.keras")}


def test_cli_adapts_and_leaves_the_inputs_alone(files, tmp_path, capsys):
    digests = {k: _digest(p) for k, p in files.items()}
    out = tmp_path / "adapted.keras"
    argv = ["adapt", str(files["model"]), str(files["data"]), "--out", str(out), "--batch-size", "16"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "adapted 2 batch-norm layers" in printed and "on 64 images" in printed
    adapted = cellkit.load_model(out)
    np.testing.assert_allclose(_np(adapted.get_layer("input_bn").moving_mean),
                               np.load(files["data"])["images"].astype("float32").mean(axis=(0, 1, 2)), rtol=1e-4)
    assert {k: _digest(p) for k, p in files.items()} == digests
    assert main([*argv[:4], str(tmp_path / "q.keras"), "--max-images", "32", "--quiet"]) == 0
    assert capsys.readouterr().out == ""


def test_cli_prints_what_it_adapted(files, tmp_path, capsys):
    out = tmp_path / "adapted.keras"
    assert main(["adapt", str(files["model"]), str(files["data"]), "--out", str(out), "--max-images", "32"]) == 0
    printed = capsys.readouterr().out
    assert "adapted 2 batch-norm layers" in printed and "on 32 images" in printed


@pytest.mark.parametrize(
    ("case", "expect"),
    [
        ("suffix", "must end in .keras"),
        ("same", "would overwrite the input"),
        ("no_bn", "has no batch-norm layer to adapt"),
        ("missing", "no such model"),
        ("batch", "--batch-size must be >= 1"),
    ],
)
def test_cli_bad_input_is_exit_2(files, tmp_path, capsys, case, expect):
    model, out, extra = files["model"], tmp_path / "out.keras", []
    if case == "suffix":
        out = tmp_path / "out.h5"
    elif case == "same":
        out = files["model"]
    elif case == "no_bn":
        model = files["no_bn"]
    elif case == "missing":
        model = tmp_path / "nope.keras"
    elif case == "batch":
        extra = ["--batch-size", "0"]
    before = _digest(files["model"])
    assert main(["adapt", str(model), str(files["data"]), "--out", str(out), *extra]) == 2
    assert expect in capsys.readouterr().err
    assert _digest(files["model"]) == before
    assert not (tmp_path / "out.keras").exists()
