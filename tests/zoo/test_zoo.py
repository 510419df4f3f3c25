"""The backbone zoo: registry verbs, specs, every backbone building, classifier, fine-tuning, CLI.

Nothing downloads: models are built with ``weights=None``; the ImageNet path is checked by
replacing the ``keras.applications`` constructors with recorders that build tiny networks.
Large backbones are built for real only in ``slow`` tests (``pytest -m slow``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from cellkit.cli import main
from cellkit.errors import DataError
from cellkit.plugins import reset_plugin_manager
from cellkit.zoo import (
    BACKBONE_LAYER,
    BackboneSpec,
    FineTuneReport,
    HeadConfig,
    UnknownBackboneError,
    build_backbone,
    build_classifier,
    fine_tune,
    freeze_backbone,
    get_backbone,
    get_backbone_layer,
    keras_cache_dir,
    list_backbones,
    weights_available,
)
from cellkit.zoo.builtin import applications
from cellkit.zoo.fine_tune import TOLERANCE
from cellkit.zoo.preprocessing import preprocessing_layers

SIMPLE = ["baseline", "network2", "network3", "network4"]
APPLICATIONS = [
    "convnext_small",
    "convnext_tiny",
    "densenet201",
    "efficientnetv2_b0",
    "efficientnetv2_b3",
    "efficientnetv2_m",
    "efficientnetv2_s",
    "inception_resnet_v2",
    "mobilenetv3_small",
    "resnet50v2",
]
BUILTIN = sorted([*SIMPLE, "compact_resnet", *APPLICATIONS])
#: Built for real in the default (fast) run; the others are marked slow.
FAST = {*SIMPLE, "compact_resnet", "mobilenetv3_small"}


def _registry_params():
    reset_plugin_manager()
    try:
        names = list_backbones()
    finally:
        reset_plugin_manager()
    return [pytest.param(n, marks=() if n in FAST else pytest.mark.slow) for n in names]


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (3, 96, 96, 3), dtype=np.uint8)


@pytest.fixture
def fake_applications(monkeypatch):
    """Replace every keras.applications constructor the built-ins use by a recorder building a tiny net."""
    calls: list[dict] = []

    def make(app_name):
        def factory(include_top=True, weights=None, input_shape=None, **options):
            calls.append(
                dict(
                    app=app_name, include_top=include_top, weights=weights, input_shape=input_shape, **options
                )
            )
            inputs = keras.Input(input_shape)
            return keras.Model(
                inputs, keras.layers.Conv2D(4, 3, strides=4, name="fake_conv")(inputs), name=app_name.lower()
            )

        return factory

    for app in applications._APPS:
        monkeypatch.setattr(keras.applications, app.application, make(app.application))
    return calls


# -- registry --------------------------------------------------------------------------------


def test_list_backbones_holds_every_builtin_sorted():
    names = list_backbones()
    assert names == sorted(names)
    assert set(BUILTIN) <= set(names)


def test_list_backbones_filters_by_glob_and_family():
    assert list_backbones("efficientnetv2_*") == [
        "efficientnetv2_b0",
        "efficientnetv2_b3",
        "efficientnetv2_m",
        "efficientnetv2_s",
    ]
    assert list_backbones(family="simple_cnn") == SIMPLE
    assert list_backbones("*_t*", family="convnext") == ["convnext_tiny"]
    assert list_backbones("no_such_*") == []


def test_get_backbone_fills_in_the_plugin():
    spec = get_backbone("convnext_tiny")
    assert (spec.family, spec.preprocessing, spec.plugin) == (
        "convnext",
        "imagenet_torch",
        "cellkit.zoo.builtin",
    )
    assert spec.plugin_version is not None and "imagenet" in spec.weights


def test_unknown_backbone_suggests_close_matches_and_names_plugins():
    with pytest.raises(UnknownBackboneError) as info:
        get_backbone("convnext_tinny")
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "Did you mean 'convnext_tiny'" in message
    assert "'cellkit.zoo.builtin' (cellkit" in message
    assert "Received: name='convnext_tinny'" in message


def test_unknown_backbone_in_build_classifier_is_a_value_error():
    with pytest.raises(ValueError, match="unknown backbone 'resnet9000'"):
        build_classifier("resnet9000")


# -- specs -----------------------------------------------------------------------------------


def _builder(shape, weights):
    inputs = keras.Input(shape)
    return keras.Model(inputs, inputs)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": "ConvNeXt"}, "name must be lowercase"),
        ({"name": "1net"}, "name must be lowercase"),
        ({"preprocessing": "caffe"}, "preprocessing must be one of"),
        ({"default_input_shape": (96, 96)}, "default_input_shape"),
        ({"min_input_size": 0}, "min_input_size"),
        ({"weight_files": {"imagenet": "x.h5"}}, "weight_files names tags"),
        ({"family": ""}, "family"),
    ],
)
def test_spec_validation_names_the_field(changes, message):
    kwargs = dict(name="toy", family="toy", builder=_builder, preprocessing="[0,1]") | changes
    with pytest.raises(ValueError, match=message):
        BackboneSpec(**kwargs)


def test_spec_is_frozen_and_rejects_non_callable_builders():
    spec = BackboneSpec(name="toy", family="toy", builder=_builder, preprocessing="[0,1]")
    with pytest.raises(AttributeError):
        spec.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError, match="builder must be callable"):
        BackboneSpec(name="toy", family="toy", builder="resnet", preprocessing="[0,1]")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        spec.weights["imagenet"] = "x"  # type: ignore[index]


def test_input_shape_is_checked_against_the_spec():
    with pytest.raises(ValueError, match=r"Received: input_shape=\(96, 96\)"):
        build_backbone("compact_resnet", (96, 96))
    with pytest.raises(ValueError, match="needs inputs of at least 16x16"):
        build_classifier("compact_resnet", input_shape=(8, 8, 3))


# -- every backbone builds -------------------------------------------------------------------


@pytest.mark.parametrize("name", _registry_params())
def test_every_backbone_maps_uint8_images_to_probabilities(name, images):
    spec = get_backbone(name)
    model = build_classifier(name, num_classes=8)
    backbone = model.get_layer(BACKBONE_LAYER)
    if spec.num_params is not None:
        assert backbone.count_params() == spec.num_params
    assert len(backbone.output.shape) in (2, 4)
    probs = np.asarray(model(images, training=False))
    assert probs.shape == (3, 8) and probs.dtype == np.float32
    assert np.all(probs >= 0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    # raw uint8 and the same values as float give the same answer: the cast happens inside
    np.testing.assert_allclose(
        np.asarray(model(images.astype("float32"), training=False)), probs, rtol=1e-5, atol=1e-6
    )


@pytest.mark.slow
def test_simple_and_compact_backbones_build_under_jax(images, tmp_path):
    pytest.importorskip("jax")
    script = (
        "import numpy as np, keras\n"
        "from cellkit.zoo import build_classifier\n"
        "assert keras.backend.backend() == 'jax'\n"
        "x = np.zeros((2, 96, 96, 3), np.uint8)\n"
        f"for name in {[*SIMPLE, 'compact_resnet']!r}:\n"
        "    p = np.asarray(build_classifier(name)(x, training=False))\n"
        "    assert p.shape == (2, 8) and np.allclose(p.sum(1), 1, atol=1e-5), name\n"
        "print('ok')\n"
    )
    env = dict(os.environ, KERAS_BACKEND="jax", CELLKIT_DISABLE_PLUGIN_AUTOLOAD="1")
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")


# -- keras.applications wiring (recorded, nothing built or downloaded) -----------------------


@pytest.mark.parametrize("app", applications._APPS, ids=lambda a: a.name)
def test_application_wiring_preprocesses_exactly_once(app, fake_applications):
    model = build_backbone(app.name)
    (call,) = fake_applications
    assert call["app"] == app.application and call["include_top"] is False and call["weights"] is None
    assert call["input_shape"] == (96, 96, 3)
    ours = [
        type(layer).__name__
        for layer in model.layers
        if type(layer).__name__ in ("Rescaling", "Normalization")
    ]
    if app.included:  # the network normalises itself: cellkit must not add a second normalisation
        assert call.get("include_preprocessing") is True and ours == []
    else:
        assert "include_preprocessing" not in call
        assert ours == (
            ["Rescaling", "Normalization"] if app.preprocessing == "imagenet_torch" else ["Rescaling"]
        )


def test_imagenet_weights_are_requested_from_keras_applications(fake_applications):
    spec = get_backbone("efficientnetv2_b3")
    assert spec.weight_files["imagenet"] == "efficientnetv2-b3_notop.h5"
    model = build_classifier("efficientnetv2_b3", weights="imagenet")
    assert fake_applications[-1]["weights"] == "imagenet"
    assert model.output.shape == (None, 8)


def test_small_inputs_are_upsampled_to_the_application_minimum(fake_applications):
    build_backbone("inception_resnet_v2", (64, 96, 3))
    build_backbone("densenet201", (24, 40, 3))
    assert [c["input_shape"] for c in fake_applications] == [(75, 96, 3), (32, 40, 3)]


def test_imagenet_normalised_backbones_refuse_six_channels(fake_applications):
    with pytest.raises(
        ValueError, match=r"'densenet201' needs 3 input channels.*Received: input_shape=\(96, 96, 6\)"
    ):
        build_backbone("densenet201", (96, 96, 6))
    with pytest.raises(ValueError, match="needs 3 input channels for ImageNet weights"):
        build_backbone("resnet50v2", (96, 96, 6), weights="imagenet")
    build_backbone("resnet50v2", (96, 96, 6))  # [-1,1] scaling works for any channel count


@pytest.mark.parametrize(
    ("mode", "reference"),
    [
        ("imagenet_torch", "densenet"),
        ("[-1,1]", "resnet_v2"),
        ("[-1,1]", "inception_resnet_v2"),
        ("[-1,1]", "mobilenet_v2"),
    ],
)
def test_preprocessing_layers_match_keras_applications(mode, reference, images):
    x = images.astype("float32")
    ours = x
    for layer in preprocessing_layers(mode):
        ours = layer(ours)
    expected = getattr(keras.applications, reference).preprocess_input(x.copy())
    np.testing.assert_allclose(np.asarray(ours), np.asarray(expected), rtol=1e-5, atol=1e-5)


def test_preprocessing_layers_reject_bad_modes():
    with pytest.raises(ValueError, match=r"Received: mode='caffe'"):
        preprocessing_layers("caffe")
    with pytest.raises(ValueError, match="Received: channels=6"):
        preprocessing_layers("imagenet_torch", channels=6)
    assert len(preprocessing_layers("[0,1]", channels=6)) == 1


# -- classifier ------------------------------------------------------------------------------


def test_classifier_structure():
    model = build_classifier("baseline", num_classes=5)
    assert model.name == "baseline_classifier"
    assert model.input.shape == (None, 96, 96, 3) and model.output.shape == (None, 5)
    assert isinstance(get_backbone_layer(model), keras.Model)
    names = [layer.name for layer in model.layers]
    assert names == [
        "image",
        "backbone",
        "head_max_pool",
        "head_dense",
        "head_bn",
        "head_relu",
        "head_dropout",
        "head_logits",
        "probabilities",
    ]
    assert model.get_layer("head_dense").units == 64


def test_head_config_options():
    model = build_classifier("baseline", head={"pooling": "avg", "units": 0, "dropout": 0.0}, name="tiny")
    assert model.name == "tiny"
    assert [layer.name for layer in model.layers][2:] == ["head_avg_pool", "head_logits", "probabilities"]
    model = build_classifier("baseline", head=HeadConfig(units=32, batch_norm=False, dropout=0.5))
    assert model.get_layer("head_dense").units == 32 and model.get_layer("head_dense").use_bias
    assert model.get_layer("head_dropout").rate == 0.5
    with pytest.raises(ValueError, match=r"unknown head option\(s\) \['unit'\]"):
        build_classifier("baseline", head={"unit": 64})
    with pytest.raises(ValueError, match="Received: pooling='mean'"):
        HeadConfig(pooling="mean")
    with pytest.raises(ValueError, match="Received: dropout=1.0"):
        HeadConfig(dropout=1.0)
    with pytest.raises(TypeError, match="head must be a HeadConfig"):
        build_classifier("baseline", head=64)  # type: ignore[arg-type]


@pytest.mark.parametrize("num_classes", [1, 0, 2.5, True])
def test_bad_num_classes(num_classes):
    with pytest.raises(ValueError, match=r"num_classes must be an int >= 2. Received: num_classes="):
        build_classifier("baseline", num_classes=num_classes)


def test_probabilities_stay_float32_under_mixed_precision(images):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = build_classifier("network4")
        assert np.asarray(model(images, training=False)).dtype == np.float32
    finally:
        keras.config.set_dtype_policy(previous)


def test_high_pass_layer_is_applied_before_the_backbone(images):
    layer = keras.layers.Conv2D(6, 3, padding="same", name="my_filter")
    model = build_classifier("baseline", high_pass=layer)
    assert model.layers[1] is layer
    assert get_backbone_layer(model).input.shape == (None, 96, 96, 6)
    assert np.asarray(model(images, training=False)).shape == (3, 8)
    with pytest.raises(ValueError, match="Received: high_pass=3"):
        build_classifier("baseline", high_pass=3)  # type: ignore[arg-type]


def test_high_pass_by_name_uses_cellkit_layers(images, tmp_path):
    layers = pytest.importorskip("cellkit.layers", reason="cellkit.layers not available")
    model = build_classifier("compact_resnet", high_pass={"name": "laplacian", "keep_input": "concat"})
    assert isinstance(model.layers[1], layers.HighPassFilter)
    assert get_backbone_layer(model).input.shape == (None, 96, 96, 6)
    model = build_classifier("baseline", high_pass="sobel")
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_allclose(np.asarray(loaded(images)), np.asarray(model(images)), rtol=1e-5, atol=1e-6)


def test_classifier_round_trips_through_keras_file_in_safe_mode(tmp_path, images):
    model = build_classifier("compact_resnet")
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert get_backbone_layer(loaded).count_params() == get_backbone_layer(model).count_params()
    np.testing.assert_allclose(np.asarray(loaded(images)), np.asarray(model(images)), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["convnext_tiny", "efficientnetv2_b0", "mobilenetv3_small"])
def test_application_classifiers_round_trip_in_safe_mode(name, tmp_path, images):
    model = build_classifier(name)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_allclose(np.asarray(loaded(images)), np.asarray(model(images)), rtol=1e-5, atol=1e-6)


# -- weights ---------------------------------------------------------------------------------


def test_weights_file_round_trip(tmp_path, images):
    source = build_classifier("network4", num_classes=4)
    path = tmp_path / "net.weights.h5"
    source.save_weights(path)
    loaded = build_classifier("network4", num_classes=4, weights=path)
    np.testing.assert_allclose(np.asarray(loaded(images)), np.asarray(source(images)), rtol=1e-6, atol=1e-7)
    fresh = build_classifier("network4", num_classes=4)
    assert not np.allclose(np.asarray(fresh(images)), np.asarray(source(images)))


def test_backbone_weights_file_round_trip(tmp_path, images):
    source = build_backbone("compact_resnet")
    path = tmp_path / "backbone.weights.h5"
    source.save_weights(path)
    loaded = build_backbone("compact_resnet", weights=str(path))
    np.testing.assert_allclose(np.asarray(loaded(images)), np.asarray(source(images)), rtol=1e-5, atol=1e-6)


def test_weights_file_that_does_not_fit_names_the_file(tmp_path):
    path = tmp_path / "net.weights.h5"
    build_classifier("network4", num_classes=4).save_weights(path)
    with pytest.raises(DataError, match="net.weights.h5"):
        build_classifier("network4", num_classes=8, weights=path)


def test_bad_weights_values(tmp_path):
    with pytest.raises(ValueError, match=r"available: none\).*Received: weights='imagenet'"):
        build_classifier("compact_resnet", weights="imagenet")
    with pytest.raises(ValueError, match=r"available: 'imagenet'.*Received: weights='imagenet21k'"):
        build_classifier("convnext_tiny", weights="imagenet21k")
    with pytest.raises(ValueError, match="Received: weights=3"):
        build_classifier("baseline", weights=3)  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match="missing.weights.h5"):
        build_classifier("baseline", weights=tmp_path / "missing.weights.h5")


def test_weights_availability_looks_in_the_keras_cache(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert keras_cache_dir() == tmp_path / "models"
    spec = get_backbone("mobilenetv3_small")
    assert not weights_available(spec, "imagenet")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / spec.weight_files["imagenet"]).write_bytes(b"")
    assert weights_available(spec, "imagenet")
    assert not weights_available(get_backbone("compact_resnet"), "imagenet")
    assert main(["backbones", "--filter", "mobilenetv3_small"]) == 0
    assert "imagenet (cached)" in capsys.readouterr().out
    assert main(["backbones", "--filter", "resnet50v2"]) == 0
    assert "imagenet (not downloaded)" in capsys.readouterr().out


# -- fine-tuning -----------------------------------------------------------------------------


def _backbone_trainable(model) -> int:
    return sum(int(np.prod(w.shape)) for w in get_backbone_layer(model).trainable_weights)


def test_freeze_backbone_leaves_only_the_head_trainable():
    model = build_classifier("compact_resnet")
    report = freeze_backbone(model)
    assert isinstance(report, FineTuneReport)
    assert report.unfrozen_parameters == 0 and report.unfrozen_layers == ()
    assert _backbone_trainable(model) == 0
    head = {w.path.split("/")[0] for w in model.trainable_weights}
    assert head == {"head_dense", "head_bn", "head_logits"}


@pytest.mark.parametrize("fraction", [0.01, 0.1, 0.3, 0.75])
def test_fine_tune_unfreezes_the_top_fraction_from_the_output_side(fraction):
    model = build_classifier("compact_resnet")
    freeze_backbone(model)
    report = fine_tune(model, fraction)
    assert report.requested_fraction == fraction
    assert abs(report.achieved_fraction - fraction) <= TOLERANCE * fraction  # within 25% of the request
    assert report.unfrozen_parameters == _backbone_trainable(model)
    assert report.achieved_fraction == pytest.approx(report.unfrozen_parameters / report.total_parameters)
    # the unfrozen layers come from the output side, in order (not always contiguous)
    names = [
        layer.name
        for layer in reversed(get_backbone_layer(model).layers)
        if layer.weights and not isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert list(report.unfrozen_layers) == sorted(report.unfrozen_layers, key=names.index)
    if fraction == 0.01:  # no layer set of compact_resnet is within 25% of 1%: the nearest single layer
        assert report.unfrozen_layers == ("stage1_block1_1_conv",)
    # batch norm stays frozen everywhere
    assert all(
        not layer.trainable
        for layer in get_backbone_layer(model).layers
        if isinstance(layer, keras.layers.BatchNormalization)
    )
    assert str(report).startswith(f"unfroze {len(report.unfrozen_layers)} backbone layers")


def test_fine_tune_passes_over_layers_too_large_for_the_share():
    model = build_classifier("compact_resnet")
    total = fine_tune(model, 1.0).total_parameters
    # the top conv (589,824) is too large for 327,680: passed over, the two layers below it fill the share
    report = fine_tune(model, (32768 + 294912) / total)
    assert report.unfrozen_layers == ("stage3_block1_shortcut_conv", "stage3_block1_1_conv")
    assert report.achieved_fraction == pytest.approx((32768 + 294912) / total)


def test_fine_tune_everything_but_batch_norm():
    model = build_classifier("network4")
    report = fine_tune(model, 1.0)
    bn = [
        layer
        for layer in get_backbone_layer(model).layers
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    bn_trainable = sum(
        int(np.prod(w.shape)) for layer in bn for w in layer.weights if "gamma" in w.path or "beta" in w.path
    )
    assert report.total_parameters == 19_296 + bn_trainable
    assert report.unfrozen_parameters == 19_296
    assert report.frozen_batch_norm == ("block2_bn", "block1_bn")
    assert set(report.unfrozen_layers) == {"block1_conv", "block2_conv"}
    # calling again after a freeze gives the same answer (the walk starts from a clean state)
    freeze_backbone(model)
    assert fine_tune(model, 1.0) == report


def test_fine_tune_can_train_batch_norm_too():
    model = build_classifier("network4")
    frozen = fine_tune(model, 1.0)
    report = fine_tune(model, 1.0, train_batch_norm=True)
    assert report.frozen_batch_norm == () and report.total_parameters == frozen.total_parameters
    assert report.unfrozen_parameters == report.total_parameters  # batch-norm scales and offsets now count
    assert {"block1_bn", "block2_bn"} <= set(report.unfrozen_layers)
    assert all(layer.trainable for layer in get_backbone_layer(model).layers
               if isinstance(layer, keras.layers.BatchNormalization))
    assert fine_tune(model, 1.0) == frozen  # and back: frozen again by default
    assert not any(layer.trainable for layer in get_backbone_layer(model).layers
                   if isinstance(layer, keras.layers.BatchNormalization))
    with pytest.raises(ValueError, match="train_batch_norm must be a bool"):
        fine_tune(model, 1.0, train_batch_norm="yes")


@pytest.mark.parametrize("fraction", [0, -0.1, 1.5, "10%", True])
def test_fine_tune_rejects_bad_fractions(fraction):
    model = build_classifier("baseline")
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\]. Received: fraction="):
        fine_tune(model, fraction)


def test_fine_tune_needs_a_zoo_classifier():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs), name="plain")
    with pytest.raises(ValueError, match="has no nested model named 'backbone'"):
        fine_tune(model, 0.1)


#: The report's small CNNs: a few layers, one of them most of the parameters, so no set of
#: whole layers comes within 25% of 1% or 10% (they get x4.6 and x0.46).
FEW_LAYERS = ("baseline", "network2", "network3", "network4")


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in list_backbones() if n not in FEW_LAYERS])
def test_fine_tune_is_within_tolerance_for_every_zoo_backbone(name):
    model = build_classifier(name)
    for fraction in (0.01, 0.1, 0.3):
        achieved = fine_tune(model, fraction).achieved_fraction
        assert abs(achieved - fraction) <= TOLERANCE * fraction, (name, fraction, achieved)


@pytest.mark.slow
def test_fine_tune_descends_into_nested_application_models():
    model = build_classifier("efficientnetv2_b0")
    report = fine_tune(model, 0.1)
    assert abs(report.achieved_fraction - 0.1) <= TOLERANCE * 0.1
    assert report.frozen_batch_norm  # EfficientNet's top batch norm is passed over
    assert report.unfrozen_parameters == _backbone_trainable(model)


# -- CLI -------------------------------------------------------------------------------------


def test_backbones_command_table(capsys):
    assert main(["backbones", "--family", "simple_cnn"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "family", "params", "input", "plugin", "pretrained"]
    assert [line.split()[0] for line in lines[1:]] == SIMPLE
    assert lines[1].split()[2:4] == ["19.4K", "96x96x3"]


def test_backbones_command_json(capsys):
    assert main(["backbones", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert set(BUILTIN) <= set(rows)
    assert rows["convnext_tiny"]["params"] == 27_820_128
    assert rows["compact_resnet"]["pretrained"] == {}
    assert rows["densenet201"]["preprocessing"] == "imagenet_torch"


def test_backbones_command_no_match(capsys):
    assert main(["backbones", "--filter", "nothing*"]) == 1
    assert "no backbone matches" in capsys.readouterr().out


def test_backbones_command_counts_params_only_when_asked(capsys):
    from cellkit.plugins import hookimpl
    from cellkit.zoo import plugin_manager

    class Unsized:
        @hookimpl
        def cellkit_register_backbones(self):
            return [BackboneSpec(name="unsized", family="toy", builder=_builder, preprocessing="[0,1]")]

    plugin_manager().register(Unsized(), name="unsized")
    try:
        assert main(["backbones", "--filter", "unsized", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)[0]["params"] is None
        assert main(["backbones", "--filter", "unsized", "--json", "--count-params"]) == 0
        assert json.loads(capsys.readouterr().out)[0]["params"] == 0
    finally:
        reset_plugin_manager()


def test_feature_map_shapes_match_the_docstrings():
    # the simple CNN docstrings claim these output shapes
    assert build_backbone("baseline").output.shape == (None, 24, 24, 64)
    assert build_backbone("network2").output.shape == (None, 8, 8, 64)
    assert build_backbone("compact_resnet").output.shape == (None, 6, 6, 256)


def test_building_without_weights_touches_no_cache():
    # building with weights=None never touches the cache folder
    before = set(Path(keras_cache_dir()).glob("*")) if keras_cache_dir().is_dir() else set()
    build_backbone("mobilenetv3_small")
    after = set(Path(keras_cache_dir()).glob("*")) if keras_cache_dir().is_dir() else set()
    assert after == before


@pytest.mark.parametrize("name", ["network4", "compact_resnet"])
def test_plain_call_is_inference_mode_even_after_a_resize(name):
    # Resizing defaults to training=True; a plain model(x) must not put batch norms in training mode
    model = build_classifier(name, num_classes=8)
    x = np.random.default_rng(0).integers(0, 256, (4, 96, 96, 3)).astype("uint8")
    np.testing.assert_allclose(np.asarray(model(x[:2])), np.asarray(model(x))[:2], atol=1e-5)


def _wide_builder(input_shape, weights, width: int = 4, *, pool: bool = False):
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(width, 3, name="conv")(keras.layers.Rescaling(1 / 255)(inputs))
    if pool:
        x = keras.layers.MaxPooling2D(name="pool")(x)
    return keras.Model(inputs, x)


@pytest.fixture
def optioned_backbone():
    """A registered backbone whose builder takes two options (``width``, keyword-only ``pool``)."""
    from cellkit.plugins import hookimpl
    from cellkit.zoo import plugin_manager

    class Optioned:
        @hookimpl
        def cellkit_register_backbones(self):
            return [BackboneSpec(name="optioned", family="toy", builder=_wide_builder, preprocessing="[0,1]",
                                 min_input_size=8)]

    plugin_manager().register(Optioned(), name="optioned")
    yield "optioned"
    reset_plugin_manager()


def test_backbone_options_reach_the_builder(optioned_backbone):
    from cellkit.zoo import check_backbone_options, get_backbone

    assert build_backbone(optioned_backbone, (16, 16, 3), None, width=6, pool=True).output.shape == (None, 7, 7, 6)
    clf = build_classifier(optioned_backbone, 3, (16, 16, 3), backbone_options={"width": 5})
    assert clf.get_layer("backbone").output.shape == (None, 14, 14, 5)
    assert check_backbone_options(get_backbone(optioned_backbone), None) == {}


def test_unknown_backbone_options_are_refused_before_building(optioned_backbone):
    with pytest.raises(ValueError, match=r"backbone 'optioned' does not take the option\(s\) \['depth'\]; "
                                         r"its builder takes \['width', 'pool'\]"):
        build_classifier(optioned_backbone, 3, (16, 16, 3), backbone_options={"depth": 2})
    with pytest.raises(ValueError, match="its builder takes no options"):
        build_classifier("baseline", 3, backbone_options={"resize_to": 32})
    with pytest.raises(ValueError, match="backbone_options must be a mapping of option names"):
        build_classifier("baseline", 3, backbone_options=["width"])


def test_recipe_backbone_options_round_trip_and_are_checked(optioned_backbone, tmp_path):
    from cellkit.train import Recipe, RecipeError, load_recipe

    recipe = Recipe(backbone=optioned_backbone, backbone_options={"width": 6})
    for name in ("r.toml", "r.json"):
        assert load_recipe(recipe.save(tmp_path / name)) == recipe
    recipe.check_components((16, 16, 3))
    with pytest.raises(RecipeError, match=r"backbone_options: backbone 'optioned' does not take the option\(s\) "
                                          r"\['depht'\]"):
        recipe.replace(backbone_options={"depht": 2}).check_components((16, 16, 3))
    with pytest.raises(RecipeError, match="backbone_options must be a table"):
        Recipe(backbone_options=[1])


def test_offline_imagenet_weights_give_a_named_error_not_a_traceback(monkeypatch, capsys, tmp_path) -> None:
    import keras

    from cellkit.cli import main
    from cellkit.errors import CellkitError
    from cellkit.zoo.builtin.applications import build_application

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://example.invalid/w.h5: None -- [Errno -2] Name or service not known")

    monkeypatch.setattr(keras.applications, "DenseNet201", offline)
    with pytest.raises(CellkitError, match=r"cannot download the ImageNet weights of DenseNet201 .*--weights none"):
        build_application("DenseNet201", (96, 96, 3), "imagenet")
    assert main(["train", "sample", "--backbone", "densenet201", "--weights", "imagenet", "--out",
                 str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "cannot download the ImageNet weights" in err and "Traceback" not in err
