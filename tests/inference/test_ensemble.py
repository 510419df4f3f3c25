"""Tests for cellkit.inference.ensemble (run them under KERAS_BACKEND=tensorflow and jax)."""

from __future__ import annotations

import functools

import keras
import numpy as np
import pytest
from keras import layers

from cellkit.inference.ensemble import (
    METHODS,
    AveragePredictions,
    TestTimeAugmentation,
    ViewAverage,
    average_predictions,
    build_ensemble,
)

P1 = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
P2 = np.array([[0.5, 0.4, 0.1], [0.3, 0.6, 0.1]])
P3 = np.array([[0.1, 0.8, 0.1], [0.2, 0.2, 0.6]])


def _np(x):
    return keras.ops.convert_to_numpy(x)


@functools.cache
def _member(seed: int, shape=(16, 16, 3), classes: int = 4, name: str | None = None) -> keras.Model:
    """A tiny CNN on 0-255 images; position-dependent (Flatten), so not flip invariant.

    Cached: building is the slow part under JAX, and build_ensemble never changes a member.
    """
    keras.utils.set_random_seed(seed)
    inp = keras.Input(shape)
    x = layers.Rescaling(1 / 127.5, offset=-1)(inp)
    x = layers.Conv2D(4, 3, activation="relu")(x)
    x = layers.Flatten()(x)
    out = layers.Dense(classes, activation="softmax")(x)
    return keras.Model(inp, out, name=name)


@pytest.fixture(scope="module")
def members() -> list[keras.Model]:
    return [_member(s, name="net") for s in range(3)]  # same name on purpose


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (5, 16, 16, 3)).astype(np.uint8)


# --------------------------------------------------------------------------- NumPy


def test_average_predictions_by_hand():
    np.testing.assert_allclose(average_predictions([P1, P2]), [[0.6, 0.3, 0.1], [0.2, 0.45, 0.35]])
    np.testing.assert_allclose(
        average_predictions([P1, P2], "weighted", weights=[3, 1]), [[0.65, 0.25, 0.1], [0.15, 0.375, 0.475]]
    )
    # Geometric mean of row 0: sqrt(.35), sqrt(.08), sqrt(.01) renormalised.
    g = np.sqrt([0.35, 0.08, 0.01])
    np.testing.assert_allclose(average_predictions([P1, P2], "geometric")[0], g / g.sum())
    # Votes: argmaxes are (0, 0, 1) and (2, 1, 2).
    np.testing.assert_allclose(
        average_predictions([P1, P2, P3], "vote"), [[2 / 3, 1 / 3, 0], [0, 1 / 3, 2 / 3]]
    )
    np.testing.assert_allclose(
        average_predictions([P1, P2, P3], "vote", weights=[1, 1, 3]), [[0.4, 0.6, 0], [0, 0.2, 0.8]]
    )


def test_average_predictions_accepts_a_stacked_array_and_keeps_inputs():
    stacked = np.stack([P1, P2, P3])
    before = stacked.copy()
    for method in ("mean", "geometric", "vote"):
        out = average_predictions(stacked, method)
        np.testing.assert_allclose(out, average_predictions([P1, P2, P3], method))
        np.testing.assert_allclose(out.sum(axis=1), 1.0)
    assert np.array_equal(stacked, before)


def test_geometric_survives_a_zero_probability():
    out = average_predictions([np.array([[1.0, 0.0]]), np.array([[0.5, 0.5]])], "geometric")
    assert np.isfinite(out).all() and out[0, 0] > 0.99 and out[0, 1] > 0


def test_vote_ties_go_to_the_lower_class_index():
    out = average_predictions([np.array([[0.1, 0.9]]), np.array([[0.9, 0.1]])], "vote")
    assert out.tolist() == [[0.5, 0.5]] and out.argmax() == 0


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (([P1, P2[:1]],), {}, r"arrays of one shape \(n, k\). Received shapes: \[\(2, 3\), \(1, 3\)\]"),
        (([],), {}, "m >= 1 arrays"),
        (([P1[0], P2[0]],), {}, r"Received: stacked shape=\(2, 3\)"),
        (([P1, -P2],), {}, "finite and non-negative"),
        (([P1, P2],), {"method": "median"}, "method must be one of .* Received: method='median'"),
        (([P1, P2],), {"method": "weighted"}, "method='weighted' needs weights"),
        (([P1, P2],), {"weights": [1.0]}, r"one value per member \(2\). Received: weights=\[1.0\]"),
        (([P1, P2],), {"weights": [0, 0]}, "not all zero"),
        (([P1, P2],), {"weights": [1, -1]}, "non-negative"),
    ],
)
def test_average_predictions_errors(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        average_predictions(*args, **kwargs)


# --------------------------------------------------------------------------- layers


@pytest.mark.parametrize("method", METHODS)
def test_layer_matches_numpy(method):
    weights = [1.0, 2.0, 0.5] if method != "mean" else None
    layer = AveragePredictions(method, weights)
    out = _np(layer([P1.astype("float32"), P2.astype("float32"), P3.astype("float32")]))
    np.testing.assert_allclose(out, average_predictions([P1, P2, P3], method, weights), atol=1e-6)
    clone = AveragePredictions.from_config(layer.get_config())
    assert clone.method == method and clone.member_weights == layer.member_weights


def test_layer_validates_its_arguments():
    with pytest.raises(ValueError, match="method must be one of"):
        AveragePredictions("max")
    with pytest.raises(ValueError, match="got 2 inputs but 3 member_weights"):
        AveragePredictions("weighted", [1, 1, 1])([P1, P2])
    with pytest.raises(ValueError, match="mode must be one of .* Received: mode='rot45'"):
        TestTimeAugmentation("rot45")
    with pytest.raises(ValueError, match="num_views must be a positive int"):
        ViewAverage(0)


@pytest.mark.parametrize("mode", ["flips", "rot90", "d4"])
def test_tta_views_are_the_symmetries_of_the_square(mode):
    x = np.arange(2 * 3 * 3 * 1, dtype="float32").reshape(2, 3, 3, 1)
    out = _np(TestTimeAugmentation(mode)(x))
    views = out.reshape(-1, 2, 3, 3, 1)
    turns = [np.rot90(x, k, axes=(1, 2)) for k in range(4)]
    expected = {
        "flips": [x, x[:, :, ::-1], x[:, ::-1], x[:, ::-1, ::-1]],
        "rot90": turns,
        "d4": turns + [t[:, :, ::-1] for t in turns],
    }[mode]
    assert len(views) == len(expected)
    for got, want in zip(views, expected, strict=True):
        np.testing.assert_array_equal(got, want)
    assert len({v.tobytes() for v in views}) == len(expected)  # all views distinct
    back = _np(ViewAverage(len(expected))(out.reshape(out.shape[0], -1)))
    np.testing.assert_allclose(back, np.mean([v.reshape(2, -1) for v in expected], axis=0))


# --------------------------------------------------------------------------- ensembles


@pytest.mark.parametrize(
    ("method", "weights"), [("mean", None), ("weighted", [2.0, 1.0, 1.0]), ("vote", None)]
)
def test_ensemble_equals_numpy_average_of_members(members, images, method, weights):
    ens = build_ensemble(members, method=method, weights=weights)
    probs = [_np(m(images.astype("float32"))) for m in members]
    np.testing.assert_allclose(_np(ens(images)), average_predictions(probs, method, weights), atol=1e-6)
    assert ens.input_shape == (None, 16, 16, 3) and ens.output_shape == (None, 4)


def test_ensemble_leaves_members_untouched(members):
    names = [m.name for m in members]
    weights = [[w.copy() for w in m.get_weights()] for m in members]
    build_ensemble(members)
    assert [m.name for m in members] == names
    for m, ws in zip(members, weights, strict=True):
        for a, b in zip(m.get_weights(), ws, strict=True):
            np.testing.assert_array_equal(a, b)


def test_tta_ensemble_matches_manual_views(members, images):
    ens = build_ensemble(members[:2], tta=True)
    x = images.astype("float32")
    views = [x, x[:, :, ::-1], x[:, ::-1], x[:, ::-1, ::-1]]
    probs = [np.mean([_np(m(v)) for v in views], axis=0) for m in members[:2]]
    np.testing.assert_allclose(_np(ens(images)), average_predictions(probs), atol=1e-6)


def test_d4_tta_makes_predictions_rotation_invariant(members, images):
    ens = build_ensemble(members[:1], tta="d4")
    base = _np(ens(images))
    plain = _np(members[0](images.astype("float32")))
    rotated = np.ascontiguousarray(np.rot90(images, 1, axes=(1, 2)))
    flipped = np.ascontiguousarray(images[:, :, ::-1])
    assert not np.allclose(_np(members[0](rotated.astype("float32"))), plain, atol=1e-4)  # member is not
    np.testing.assert_allclose(_np(ens(rotated)), base, atol=1e-5)
    np.testing.assert_allclose(_np(ens(flipped)), base, atol=1e-5)


def test_save_and_load_with_safe_mode(members, images, tmp_path):
    ens = build_ensemble(members, method="geometric", weights=[1, 2, 3], tta="d4", name="cells")
    path = tmp_path / "ens.keras"
    ens.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert loaded.name == "cells"
    np.testing.assert_allclose(_np(loaded(images)), _np(ens(images)), atol=1e-6)
    combine = loaded.get_layer("combine")
    assert isinstance(combine, AveragePredictions) and combine.member_weights == [1.0, 2.0, 3.0]


def test_the_same_member_twice_shares_weights(members, images):
    ens = build_ensemble([members[0], members[0]], method="weighted", weights=[1, 1])
    np.testing.assert_allclose(_np(ens(images)), _np(members[0](images.astype("float32"))), atol=1e-6)


@pytest.mark.parametrize(
    ("make", "kwargs", "match"),
    [
        (lambda: [], {}, "at least one Keras model"),
        (lambda: [_member(0), "model"], {}, r"models\[1\] must be a keras.Model. Received: str"),
        (lambda: [_member(0), _member(1, shape=(12, 12, 3))], {}, "share one fixed image input shape"),
        (lambda: [_member(0), _member(1, classes=3)], {}, r"share one \(batch, classes\) output shape"),
        (lambda: [_member(0)], {"method": "max"}, "method must be one of"),
        (lambda: [_member(0)], {"method": "weighted"}, "needs weights"),
        (
            lambda: [_member(0)],
            {"tta": "rot45"},
            "tta must be None, True, False or one of .* Received: tta='rot45'",
        ),
        (lambda: [_member(0, shape=(16, 12, 3))], {"tta": "d4"}, "images must be square; use tta='flips'"),
    ],
)
def test_build_ensemble_errors(make, kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_ensemble(make(), **kwargs)


def test_flips_work_on_non_square_images():
    member = _member(0, shape=(16, 12, 3))
    x = np.random.default_rng(1).integers(0, 256, (2, 16, 12, 3)).astype("float32")
    ens = build_ensemble([member], tta="flips")
    views = [x, x[:, :, ::-1], x[:, ::-1], x[:, ::-1, ::-1]]
    np.testing.assert_allclose(_np(ens(x)), np.mean([_np(member(v)) for v in views], axis=0), atol=1e-6)
