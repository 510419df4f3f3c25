"""The plugin system: markers, the lazily created manager, entry-point loading, validation.

Installed plugins are simulated with real distributions on ``sys.path``: a folder holding a
module and a ``<dist>-<version>.dist-info`` with ``METADATA`` and ``entry_points.txt``, found
by ``importlib.metadata`` exactly like an installed package. The example plugin
``plugins/cellkit-mobilenet`` is built into a wheel with pip (offline, no build isolation)
and unpacked onto ``sys.path``.
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import numpy as np
import pluggy
import pytest

from cellkit.cli import main
from cellkit.plugins import (
    DISABLE_AUTOLOAD_ENV,
    ENTRY_POINT_GROUP,
    PluginError,
    PluginWarning,
    add_builtin_plugin,
    create_plugin_manager,
    get_plugin_manager,
    hookimpl,
    hookspecs,
    reset_plugin_manager,
)
from cellkit.zoo import build_classifier, get_backbone, list_backbones, plugin_manager
from plugin_site import install_plugin

REPO = Path(__file__).resolve().parents[2]  # tests/plugins/ -> the repository
EXAMPLE_PLUGIN = REPO / "plugins" / "cellkit-mobilenet"

TINY_PLUGIN = """
import keras
from cellkit.plugins import hookimpl
from cellkit.zoo import BackboneSpec


def build(input_shape, weights):
    inputs = keras.Input(input_shape)
    x = keras.layers.Rescaling(1 / 255)(inputs)
    return keras.Model(inputs, keras.layers.Conv2D(4, 3, name="tiny_conv")(x))


@hookimpl
def cellkit_register_backbones():
    return [BackboneSpec(name={name!r}, family="toy", builder=build, preprocessing="[0,1]", num_params=112)]
"""


@pytest.fixture(autouse=True)
def fresh_manager(monkeypatch):
    """Every test starts with no cached manager, autoload on, and leaves none behind."""
    monkeypatch.delenv(DISABLE_AUTOLOAD_ENV, raising=False)
    reset_plugin_manager()
    yield
    reset_plugin_manager()


@pytest.fixture
def install(tmp_path, monkeypatch):
    """``install(dist, ep_name, module, source)``: a distribution with one ``cellkit`` entry point on sys.path."""
    modules: list[str] = []

    def _install(dist: str, ep_name: str, module: str, source: str, version: str = "1.0") -> Path:
        site = tmp_path / f"site-{dist}-{len(modules)}"
        site.mkdir()
        (site / f"{module}.py").write_text(source)
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{ep_name} = {module}\n")
        monkeypatch.syspath_prepend(str(site))
        modules.append(module)
        return site

    yield _install
    for module in modules:
        sys.modules.pop(module, None)


# -- markers and hookspecs -------------------------------------------------------------------


def test_markers_use_the_cellkit_project_name():
    assert hookimpl.project_name == "cellkit"
    assert hookspecs.hookspec.project_name == "cellkit"
    assert ENTRY_POINT_GROUP == "cellkit"
    pm = create_plugin_manager(autoload=False)
    assert pm.project_name == "cellkit"
    assert pm.hook.cellkit_register_backbones.has_spec()


def test_plugin_machinery_does_not_import_the_zoo():
    # The arrows point one way: cellkit.plugins knows nothing of cellkit.zoo (nor of cellkit's top level).
    import cellkit.plugins

    imported = set()
    for path in Path(cellkit.plugins.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
    cellkit_modules = {m for m in imported if m.split(".")[0] == "cellkit"}
    assert cellkit_modules == {
        "cellkit.errors",
        "cellkit.plugins",
        "cellkit.plugins.hookspecs",
        "cellkit.plugins.manager",
    }


# -- the manager -----------------------------------------------------------------------------


def test_manager_is_created_lazily_cached_and_reset():
    pm = get_plugin_manager()
    assert get_plugin_manager() is pm
    reset_plugin_manager()
    assert get_plugin_manager() is not pm


def test_builtin_backbones_are_registered_like_a_plugin():
    infos = {info.name: info for info in plugin_manager().describe()}
    builtin = infos["cellkit.zoo.builtin"]
    assert builtin.builtin and builtin.distribution == "cellkit"
    assert builtin.hooks == ("cellkit_register_backbones",)
    import cellkit

    assert builtin.version == cellkit.__version__
    assert get_backbone("compact_resnet").plugin == "cellkit.zoo.builtin"


def test_builtin_announced_after_creation_is_registered_at_once():
    pm = get_plugin_manager()

    class Late:
        @hookimpl
        def cellkit_register_backbones(self):
            return []

    late = Late()
    add_builtin_plugin("test.late", late, "9.9")
    try:
        assert pm.get_plugin("test.late") is late
        assert pm.info("test.late").builtin
    finally:
        pm.unregister(name="test.late")
        from cellkit.plugins import manager

        manager._builtins.pop("test.late", None)


def test_installed_plugin_is_discovered_listed_and_built(install):
    install("cellkit-tiny", "tiny", "cellkit_tiny_plugin", TINY_PLUGIN.format(name="tiny_net"))
    assert "tiny_net" in list_backbones()
    spec = get_backbone("tiny_net")
    assert (spec.plugin, spec.plugin_version) == ("tiny", "1.0")
    info = plugin_manager().info("tiny")
    assert (info.distribution, info.version, info.builtin) == ("cellkit-tiny", "1.0", False)
    model = build_classifier("tiny_net", num_classes=3)
    probs = model.predict(np.zeros((2, 96, 96, 3), np.uint8), verbose=0)
    assert probs.shape == (2, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_plugin_registered_at_run_time_is_seen_at_once():
    class Extra:
        @hookimpl
        def cellkit_register_backbones(self):
            from cellkit.zoo import BackboneSpec

            return [
                BackboneSpec(name="extra_net", family="toy", builder=lambda s, w: None, preprocessing="[0,1]")
            ]

    pm = plugin_manager()
    assert "extra_net" not in list_backbones()
    pm.register(Extra(), name="extra")
    assert get_backbone("extra_net").plugin == "extra"
    # a builder that does not return a keras.Model is reported, naming the backbone
    with pytest.raises(PluginError, match="extra_net"):
        build_classifier("extra_net")


def test_broken_plugin_warns_and_the_others_keep_working(install):
    install(
        "cellkit-broken", "broken", "cellkit_broken_plugin", "raise ImportError('missing dependency xyz')\n"
    )
    install("cellkit-tiny", "tiny", "cellkit_tiny_plugin", TINY_PLUGIN.format(name="tiny_net"))
    with pytest.warns(PluginWarning, match=r"'broken' \(cellkit-broken 1.0\).*missing dependency xyz"):
        names = list_backbones()
    assert "tiny_net" in names and "compact_resnet" in names
    loaded = [i.name for i in plugin_manager().describe()]
    assert loaded[0] == "cellkit.zoo.builtin" and "tiny" in loaded and "broken" not in loaded


def test_plugin_hook_that_raises_is_skipped_with_a_warning(install):
    source = (
        "from cellkit.plugins import hookimpl\n"
        "@hookimpl\n"
        "def cellkit_register_backbones():\n"
        "    raise RuntimeError('boom')\n"
    )
    install("cellkit-boom", "boom", "cellkit_boom_plugin", source)
    with pytest.warns(PluginWarning, match=r"'boom' \(cellkit-boom 1.0\) failed.*boom"):
        names = list_backbones()
    assert "baseline" in names


def test_plugin_returning_non_specs_is_skipped_with_a_warning(install):
    source = "from cellkit.plugins import hookimpl\n@hookimpl\ndef cellkit_register_backbones():\n    return ['resnet']\n"
    install("cellkit-strings", "strings", "cellkit_strings_plugin", source)
    with pytest.warns(PluginWarning, match="expected cellkit.zoo.BackboneSpec"):
        assert "baseline" in list_backbones()


def test_same_backbone_name_from_two_plugins_is_an_error_naming_both(install):
    install("cellkit-one", "one", "cellkit_one_plugin", TINY_PLUGIN.format(name="twin"))
    install("cellkit-two", "two", "cellkit_two_plugin", TINY_PLUGIN.format(name="twin"))
    with pytest.raises(PluginError, match=r"'twin'.*'one' \(cellkit-one 1.0\).*'two' \(cellkit-two 1.0\)"):
        list_backbones()


def test_plugin_shadowing_a_builtin_name_is_an_error(install):
    install("cellkit-shadow", "shadow", "cellkit_shadow_plugin", TINY_PLUGIN.format(name="compact_resnet"))
    with pytest.raises(PluginError, match=r"cellkit.zoo.builtin.*'shadow' \(cellkit-shadow 1.0\)"):
        get_backbone("compact_resnet")


def test_two_distributions_with_the_same_entry_point_name_are_an_error(install):
    install("cellkit-a", "same", "cellkit_a_plugin", TINY_PLUGIN.format(name="net_a"))
    install("cellkit-b", "same", "cellkit_b_plugin", TINY_PLUGIN.format(name="net_b"))
    with pytest.raises(
        PluginError,
        match=r"two cellkit plugins are named 'same': .*(cellkit-a.*cellkit-b|cellkit-b.*cellkit-a)",
    ):
        get_plugin_manager()


def test_autoload_switch_loads_builtins_only(install, monkeypatch, capsys):
    install("cellkit-tiny", "tiny", "cellkit_tiny_plugin", TINY_PLUGIN.format(name="tiny_net"))
    monkeypatch.setenv(DISABLE_AUTOLOAD_ENV, "1")
    names = list_backbones()
    assert "tiny_net" not in names and "compact_resnet" in names
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "cellkit.zoo.builtin" in out and "tiny" not in out.split("(")[0] and DISABLE_AUTOLOAD_ENV in out
    monkeypatch.setenv(DISABLE_AUTOLOAD_ENV, "0")  # "0" means: autoload
    reset_plugin_manager()
    assert "tiny_net" in list_backbones()


def test_misspelt_hook_fails_loudly_with_a_suggestion(install):
    source = (
        "from cellkit.plugins import hookimpl\n@hookimpl\ndef cellkit_register_backbone():\n    return []\n"
    )
    install("cellkit-typo", "typo", "cellkit_typo_plugin", source)
    with pytest.raises(PluginError) as info:
        get_plugin_manager()
    message = str(info.value)
    assert "'typo' (cellkit-typo 1.0)" in message
    assert "'cellkit_register_backbone' (did you mean 'cellkit_register_backbones'?)" in message
    assert DISABLE_AUTOLOAD_ENV in message
    assert isinstance(info.value.__cause__, pluggy.PluginValidationError)


def test_hook_with_unknown_arguments_is_rejected(install):
    source = "from cellkit.plugins import hookimpl\n@hookimpl\ndef cellkit_register_backbones(config):\n    return []\n"
    install("cellkit-args", "args", "cellkit_args_plugin", source)
    with pytest.raises(PluginError, match=r"(?s)'args' \(cellkit-args 1.0\) is invalid.*config"):
        get_plugin_manager()


def test_optional_hooks_of_other_versions_are_tolerated(install):
    # A plugin written for a later cellkit may mark new hooks optional: not an error here.
    source = (
        "from cellkit.plugins import hookimpl\n"
        "@hookimpl(optionalhook=True)\n"
        "def cellkit_future_hook():\n"
        "    return None\n"
    )
    install("cellkit-future", "future", "cellkit_future_plugin", source)
    assert get_plugin_manager().info("future").hooks == ("cellkit_future_hook",)


def test_plugins_command_json_lists_plugins_and_hooks(install, capsys):
    install("cellkit-tiny", "tiny", "cellkit_tiny_plugin", TINY_PLUGIN.format(name="tiny_net"), version="2.3")
    assert main(["plugins", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["tiny"] == {
        "name": "tiny",
        "distribution": "cellkit-tiny",
        "version": "2.3",
        "builtin": False,
        "module": "cellkit_tiny_plugin",
        "hooks": ["cellkit_register_backbones"],
    }
    assert rows["cellkit.zoo.builtin"]["builtin"] is True


def test_cli_maps_a_plugin_error_to_exit_code_2(install, capsys):
    install("cellkit-one", "one", "cellkit_one_plugin", TINY_PLUGIN.format(name="twin"))
    install("cellkit-two", "two", "cellkit_two_plugin", TINY_PLUGIN.format(name="twin"))
    assert main(["backbones"]) == 2
    assert "registered by two plugins" in capsys.readouterr().err


# -- the example plugin, plugins/cellkit-mobilenet -------------------------------------------


@pytest.fixture(scope="session")
def example_plugin_site(tmp_path_factory) -> Path:
    """plugins/cellkit-mobilenet installed into a folder (wheel built offline, then unpacked)."""
    return install_plugin(EXAMPLE_PLUGIN, tmp_path_factory)


@pytest.fixture
def example_plugin(example_plugin_site, monkeypatch):
    monkeypatch.syspath_prepend(str(example_plugin_site))
    yield
    sys.modules.pop("cellkit_mobilenet", None)


def test_example_plugin_is_discovered(example_plugin):
    info = plugin_manager().info("mobilenet")
    assert (info.distribution, info.version, info.module) == (
        "cellkit-mobilenet",
        "0.1.0",
        "cellkit_mobilenet",
    )
    assert {"mobilenetv2", "mobilenetv2_035", "mobilenetv3_small"} <= set(list_backbones(family="mobilenet"))
    assert [get_backbone(n).plugin for n in ("mobilenetv2", "mobilenetv2_035")] == ["mobilenet", "mobilenet"]


def test_example_plugin_is_listed_by_the_backbones_command(example_plugin, capsys):
    assert main(["backbones", "--filter", "mobilenetv2*", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["plugin"], r["plugin_version"]) for r in rows] == [
        ("mobilenetv2", "mobilenet", "0.1.0"),
        ("mobilenetv2_035", "mobilenet", "0.1.0"),
    ]
    assert rows[0]["params"] == 2_257_984 and set(rows[0]["pretrained"]) == {"imagenet"}


def test_example_plugin_backbone_builds_and_predicts(example_plugin):
    model = build_classifier("mobilenetv2_035", num_classes=8)
    assert model.get_layer("backbone").count_params() == get_backbone("mobilenetv2_035").num_params
    images = np.random.default_rng(0).integers(0, 256, (2, 96, 96, 3), dtype=np.uint8)
    probs = np.asarray(model(images, training=False))
    assert probs.shape == (2, 8)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
