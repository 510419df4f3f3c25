"""Test-time augmentation of one classifier: views, invariance, save/load, training and the CLI."""

from __future__ import annotations

import json

import cv2
import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cellkit
from cellkit.cli import main
from cellkit.data import Dataset
from cellkit.inference.tta import (
    COLOR_FACTORS,
    TTA_SPECS,
    TestTimeAugmentation,
    num_views,
    parse_tta,
    with_tta,
)
from cellkit.train import Phase, Recipe, RecipeError, load_model, predict_proba, save_model, train
from strategies import seeded_uint8_images


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _classifier(shape=(12, 12, 3), classes: int = 4, name: str = "clf") -> keras.Model:
    """Position-dependent (Flatten), so its predictions change under flips and rotations."""
    keras.utils.set_random_seed(7)
    inp = keras.Input(shape)
    x = keras.layers.Rescaling(1 / 255)(inp)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    out = keras.layers.Dense(classes, activation="softmax")(keras.layers.Flatten()(x))
    return keras.Model(inp, out, name=name)


@pytest.fixture(scope="module")
def clf() -> keras.Model:
    return _classifier()


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (6, 12, 12, 3), dtype=np.uint8)


def _geometric(x: np.ndarray, mode: str) -> list[np.ndarray]:
    turns = [np.rot90(x, k, axes=(1, 2)) for k in range(4)]
    return {
        "flips": [x, x[:, :, ::-1], x[:, ::-1], x[:, ::-1, ::-1]],
        "rot90": turns,
        "d4": turns + [t[:, :, ::-1] for t in turns],
    }[mode]


def _saturated(x: np.ndarray, factor: float) -> np.ndarray:
    grey = x.mean(axis=-1, keepdims=True)
    low, high = x.min(axis=(1, 2, 3), keepdims=True), x.max(axis=(1, 2, 3), keepdims=True)
    return np.clip(grey + factor * (x - grey), low, high)


@pytest.mark.parametrize("spec", ["flips", "rot90", "d4", "flips+color", "d4+color"])
def test_with_tta_averages_the_model_over_the_numpy_views(clf, images, spec):
    mode, color = parse_tta(spec)
    x = images.astype("float32")
    views = _geometric(x, mode)
    if color:
        views = [v for g in views for v in (g, *(_saturated(g, f) for f in COLOR_FACTORS))]
    assert len(views) == num_views(spec)
    expected = np.mean([_np(clf(np.ascontiguousarray(v))) for v in views], axis=0)
    wrapped = with_tta(clf, spec)
    np.testing.assert_allclose(_np(wrapped(images)), expected, atol=1e-5)
    assert wrapped.input_shape == clf.input_shape and wrapped.output_shape == clf.output_shape


def test_color_views_keep_grey_pixels_and_scale_saturation_within_the_image_range():
    x = np.zeros((1, 2, 2, 3), "float32")
    x[0, 0, 0] = (250, 250, 250)  # with the black pixel at [1, 0]: the image's range is [0, 250]
    x[0, 0, 1] = (150, 100, 50)  # grey level 100
    x[0, 1, 1] = (240, 100, 20)  # grey level 120; more saturation would leave [0, 250]
    views = _np(TestTimeAugmentation("flips", color=True)(x)).reshape(12, 1, 2, 2, 3)
    identity, desaturated, saturated = views[0, 0], views[1, 0], views[2, 0]
    np.testing.assert_array_equal(identity, x[0])
    for view in (desaturated, saturated):  # grey pixels do not move
        np.testing.assert_allclose(view[0, 0], (250, 250, 250))
        np.testing.assert_allclose(view[1, 0], (0, 0, 0))
    np.testing.assert_allclose(desaturated[0, 1], (140, 100, 60), atol=1e-4)
    np.testing.assert_allclose(saturated[0, 1], (160, 100, 40), atol=1e-4)
    np.testing.assert_allclose(saturated[1, 1], (250, 96, 0), atol=1e-4)  # 264 and -4 clipped


@settings(max_examples=10, deadline=None)
@given(turns=st.integers(0, 3), flip=st.booleans(), x=seeded_uint8_images((2, 12, 12, 3), max_seed=2**16))
def test_d4_tta_is_invariant_to_every_symmetry_of_the_square(turns, flip, x):
    model = with_tta(_cached_classifier(), "d4")
    moved = np.rot90(x, turns, axes=(1, 2))
    moved = np.ascontiguousarray(moved[:, :, ::-1] if flip else moved)
    np.testing.assert_allclose(_np(model(moved)), _np(model(x)), atol=1e-5)


_CACHE: dict[str, keras.Model] = {}


def _cached_classifier() -> keras.Model:
    if "clf" not in _CACHE:
        _CACHE["clf"] = _classifier()
    return _CACHE["clf"]


def test_tta_model_saves_and_loads_with_safe_mode(clf, images, tmp_path):
    model = with_tta(clf, "d4+color")
    path = save_model(model, tmp_path / "tta.keras")
    loaded = load_model(path)  # safe_mode=True
    assert [layer.name for layer in loaded.layers][1] == "tta_views"
    np.testing.assert_allclose(predict_proba(loaded, images), predict_proba(model, images), atol=1e-6)
    direct = keras.saving.load_model(path, safe_mode=True)  # cellkit already imported: layers registered
    np.testing.assert_allclose(predict_proba(direct, images), predict_proba(model, images), atol=1e-6)


def test_tta_and_ensemble_averages_stay_float32_probabilities_under_mixed_precision(tmp_path):
    """A run trained in mixed bfloat16 saved its TTA average in bfloat16: rows summing to 1 only within
    ~4e-3, read as logits by is_probabilities, and metrics.json got a softmax of probabilities (ECE 0.73)."""
    from cellkit.evaluate.calibration import is_probabilities
    from cellkit.inference.ensemble import build_ensemble

    def mixed_classifier(name: str) -> keras.Model:  # as cellkit's head: float32 softmax under any policy
        inp = keras.Input((12, 12, 3))
        x = keras.layers.Conv2D(4, 3, activation="relu")(keras.layers.Rescaling(1 / 255)(inp))
        logits = keras.layers.Dense(4)(keras.layers.Flatten()(x))
        return keras.Model(inp, keras.layers.Activation("softmax", dtype="float32")(logits), name=name)

    images = np.random.default_rng(1).integers(0, 256, (400, 12, 12, 3), dtype=np.uint8)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        keras.utils.set_random_seed(3)
        clf = mixed_classifier("clf")
        models = {"tta": with_tta(clf, "d4"), "ensemble": build_ensemble([clf, mixed_classifier("other")], tta="flips")}
        for name, model in models.items():
            averages = [layer for layer in model.layers if layer.name in ("tta_mean", "combine")]
            assert averages, name
            assert all(layer.dtype_policy.name == "float32" for layer in averages), name
            loaded = load_model(save_model(model, tmp_path / f"{name}.keras"))
            for m in (model, loaded):
                p = predict_proba(m, images)
                assert p.dtype == np.float32 and np.abs(p.sum(axis=1) - 1).max() < 1e-5, name
                assert is_probabilities(p), name
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_with_tta_leaves_the_model_untouched_and_handles_reserved_names(images):
    inner = _classifier(name="tta_views")  # clashes with the wrapper's own layer name
    before = [w.copy() for w in inner.get_weights()]
    wrapped = with_tta(inner, "flips")
    assert inner.name == "tta_views"
    for a, b in zip(inner.get_weights(), before, strict=True):
        np.testing.assert_array_equal(a, b)
    assert wrapped.name == "tta_views_tta" and wrapped(images).shape == (6, 4)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: with_tta(c, "rot45"), r"tta must be None, True, False or one of \[.*'d4\+color'\]. Received: tta='rot45'"),
        (lambda c: with_tta(c, "none"), "with_tta needs a TTA specification"),
        (lambda c: with_tta(_classifier((12, 10, 3)), "d4"), "images must be square; use tta='flips'"),
        (lambda c: with_tta("model.keras", "d4"), "model must be a keras.Model. Received: str"),
        (lambda c: TestTimeAugmentation("flips", color="yes"), "color must be True or False"),
        (lambda c: TestTimeAugmentation("flips", color=True)(np.zeros((1, 4, 4, 1), "float32")),
         "color views need RGB images"),
    ],
)
def test_bad_tta_arguments_are_refused_clearly(clf, call, message):
    with pytest.raises(ValueError, match=message):
        call(clf)


def test_every_recipe_spec_parses_and_bad_ones_name_the_key():
    assert TTA_SPECS[0] == "none" and parse_tta("none") is None
    assert {num_views(s) for s in TTA_SPECS} == {1, 4, 8, 12, 24}
    assert Recipe(tta="D4+Color").tta == "d4+color"
    with pytest.raises(RecipeError, match=r"tta must be one of .* \(did you mean 'd4\+color'\?\). Received: tta='d4\+colour'"):
        Recipe(tta="d4+colour")


@pytest.fixture(scope="module")
def tiny() -> Dataset:
    """8 sample images per class at 24x24: real cells, a 1-epoch run in seconds."""
    ds = cellkit.load("sample")
    idx = np.concatenate([np.flatnonzero(ds.labels == c)[:8] for c in range(ds.num_classes)])
    small = np.stack([cv2.resize(im, (24, 24), interpolation=cv2.INTER_AREA) for im in ds.images[idx]])
    return Dataset(small, ds.labels[idx], ds.class_names, tuple(ds.ids[i] for i in idx), source="tiny")


def test_recipe_tta_is_saved_in_the_run_model_and_measured_both_ways(tiny, tmp_path):
    recipe = Recipe(backbone="baseline", augmentation="none", batch_size=16, seed=1, tta="d4", test=0.25,
                    phases=(Phase("scratch", epochs=1, optimizer="adamw", learning_rate=3e-3),))
    result = train(tiny, recipe, tmp_path / "run", quiet=True)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["tta"] == "d4" and set(metrics["without_tta"]) == {"accuracy", "f1_weighted", "f1_macro"}
    saved = load_model(tmp_path / "run" / "model.keras")
    assert "tta_views" in [layer.name for layer in saved.layers]
    plain = load_model(tmp_path / "run" / "best.keras")  # the checkpoint: the bare classifier
    test = tiny.images[result.split.test]
    np.testing.assert_allclose(predict_proba(saved, test), predict_proba(with_tta(plain, "d4"), test), atol=1e-5)
    plain_acc = float(np.mean(predict_proba(plain, test).argmax(1) == tiny.labels[result.split.test]))
    assert metrics["without_tta"]["accuracy"] == pytest.approx(plain_acc)


def test_cli_evaluate_and_export_take_tta(tiny, tmp_path, capsys):
    npz = tmp_path / "tiny.npz"
    np.savez(npz, images=tiny.images, labels=tiny.labels, class_names=np.array(tiny.class_names))
    model_path = save_model(_classifier((24, 24, 3), classes=8), tmp_path / "m.keras")
    out = tmp_path / "m.json"
    assert main(["evaluate", str(model_path), str(npz), "--tta", "rot90", "--json", str(out), "--quiet"]) == 0
    got = json.loads(out.read_text())
    wrapped = with_tta(load_model(model_path), "rot90")
    expected = float(np.mean(predict_proba(wrapped, tiny.images).argmax(1) == tiny.labels))
    assert got["tta"] == "rot90" and got["accuracy"] == pytest.approx(expected)
    folder = tmp_path / "submission"
    assert main(["export", str(model_path), "--out", str(folder), "--tta", "flips", "--keras-only", "--quiet"]) == 0
    info = json.loads((folder / "export.json").read_text())
    assert info["tta"] == "flips"
    exported = load_model(folder / "model.keras")
    np.testing.assert_allclose(predict_proba(exported, tiny.images),
                               predict_proba(with_tta(load_model(model_path), "flips"), tiny.images), atol=1e-6)
    capsys.readouterr()
    assert main(["evaluate", str(model_path), str(npz), "--tta", "rot45"]) == 2
    assert "invalid choice: 'rot45'" in capsys.readouterr().err
