"""Presets contributed by plugins (``cellkit_register_recipes``), a backbone's declared preset,
and a recipe's ``time_limit``.

The plugins here are registered by hand in the shared plugin manager (as a plugin loaded at run
time), with their recipe files in ``tmp_path``; every test unregisters them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cellkit.cli import build_parser, main
from cellkit.cli.train_cmd import build_recipe
from cellkit.data import Dataset
from cellkit.plugins import PluginError, PluginWarning, hookimpl
from cellkit.train import Recipe, list_presets, load_preset, preset_catalog, save_recipe, train
from cellkit.train.recipe import Phase
from cellkit.zoo import BackboneSpec, get_backbone, plugin_manager

#: A real builder for the toy backbone, taken before any toy plugin is registered (inside the hook
#: get_backbone would call the hook again).
BASELINE_BUILDER = get_backbone("baseline").builder

TOY = Recipe(backbone="baseline", augmentation="none", batch_size=8, precision="float32", time_limit=30.0,
             phases=(Phase("scratch", "all", 1, "adamw", 1e-3, 1e-5, "cosine"),))


class RecipePlugin:
    """Registers ``recipes`` (name -> file) and a backbone ``toy_net`` that declares ``declared``."""

    def __init__(self, recipes: dict[str, object], declared: str | None = None) -> None:
        self.recipes, self.declared = recipes, declared

    @hookimpl
    def cellkit_register_recipes(self):  # noqa: ANN201
        return self.recipes

    @hookimpl
    def cellkit_register_backbones(self):  # noqa: ANN201
        return [BackboneSpec(name="toy_net", family="toy", builder=BASELINE_BUILDER, preprocessing="[0,1]",
                             recipe=self.declared)]


@pytest.fixture
def register():
    pm = plugin_manager()
    names = []

    def add(plugin: object, name: str = "toyplugin") -> None:
        pm.register(plugin, name=name)
        names.append(name)

    yield add
    for name in names:
        pm.unregister(name=name)


@pytest.fixture
def toy_file(tmp_path: Path) -> Path:
    return save_recipe(TOY, tmp_path / "toy-fast.toml")


def test_a_plugin_preset_is_listed_loaded_and_says_where_it_comes_from(register, toy_file, capsys):
    assert "toy-fast" not in list_presets()
    register(RecipePlugin({"toy-fast": toy_file}))
    assert "toy-fast" in list_presets() and "robust" in list_presets()
    info = preset_catalog()["toy-fast"]
    assert info.origin == "'toyplugin'" and info.file == toy_file
    assert load_preset("toy-fast") == TOY
    assert main(["recipes"]) == 0
    line = next(row for row in capsys.readouterr().out.splitlines() if row.startswith("toy-fast"))
    assert "'toyplugin'" in line and "baseline" in line and "30 min" in line and "scratch (adamw 0.001, 1 ep)" in line
    assert main(["recipes", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["toy-fast"]["time_limit_minutes"] == 30.0 and rows["compact"]["time_limit_minutes"] is None


def test_a_name_taken_twice_is_an_error_naming_both(register, toy_file):
    register(RecipePlugin({"robust": toy_file}))
    with pytest.raises(PluginError, match=r"preset 'robust' is registered twice: by cellkit and by 'toyplugin'"):
        list_presets()


def test_two_plugins_with_one_name_are_named_both(register, toy_file):
    register(RecipePlugin({"toy-fast": toy_file}), name="first")
    register(RecipePlugin({"toy-fast": toy_file}), name="second")
    with pytest.raises(PluginError, match=r"by 'first' and by 'second'"):
        load_preset("compact")


@pytest.mark.parametrize("returned", [{"Bad Name": "x.toml"}, {"ok": 3}, "not a mapping"])
def test_a_plugin_returning_nonsense_is_skipped_with_a_warning(register, returned):
    register(RecipePlugin(returned))
    with pytest.warns(PluginWarning, match="'toyplugin'"):
        names = list_presets()
    assert "robust" in names and "ok" not in names


def test_a_missing_file_is_named_when_the_preset_is_loaded(register, tmp_path):
    from cellkit.train import RecipeError

    register(RecipePlugin({"gone": tmp_path / "gone.toml"}))
    assert "gone" in list_presets()
    with pytest.raises(RecipeError, match=r"preset 'gone' of 'toyplugin' names a file that is not there: .*gone\.toml"):
        load_preset("gone")
    assert main(["train", str(tmp_path), "--recipe", "gone", "--out", str(tmp_path / "run"), "--quiet"]) == 2


def test_train_without_recipe_runs_the_preset_the_backbone_declares(register, toy_file, capsys):
    register(RecipePlugin({"toy-fast": toy_file}, declared="toy-fast"))
    parse = build_parser().parse_args
    recipe = build_recipe(parse(["train", "data", "--out", "run", "--backbone", "toy_net", "--seed", "3"]))
    assert "recipe: toy-fast, the preset that backbone 'toy_net' declares" in capsys.readouterr().out
    assert recipe == TOY.replace(backbone="toy_net", seed=3).resolved()
    # --recipe wins; a backbone without a declared preset gets the default recipe; --quiet prints nothing
    assert build_recipe(parse(["train", "d", "--out", "r", "--backbone", "toy_net", "--recipe", "compact"])) \
        == load_preset("compact").replace(backbone="toy_net").resolved()
    assert build_recipe(parse(["train", "d", "--out", "r", "--backbone", "network2", "--quiet"])) \
        == Recipe(backbone="network2").resolved()
    assert capsys.readouterr().out == ""


def test_a_backbone_recipe_must_be_a_name():
    with pytest.raises(ValueError, match="BackboneSpec.recipe must be a preset name or None"):
        BackboneSpec(name="x", family="toy", builder=BASELINE_BUILDER, preprocessing="[0,1]", recipe="")


def test_the_recipe_time_limit_bounds_training_unless_train_is_given_one(tmp_path, monkeypatch):
    from cellkit.train import callbacks as callbacks_module
    from cellkit.train import runner

    budgets = []

    class Recorded(callbacks_module.TimeLimit):
        def __init__(self, seconds: float) -> None:
            budgets.append(seconds)
            super().__init__(seconds)

    monkeypatch.setattr(runner, "TimeLimit", Recorded)
    rng = np.random.default_rng(0)
    data = Dataset(rng.integers(0, 256, (48, 32, 32, 3), dtype=np.uint8), np.arange(48) % 2, ["a", "b"])
    recipe = TOY.replace(val=0.25, test=0.25)
    train(data, recipe, tmp_path / "a", quiet=True)
    train(data, recipe, tmp_path / "b", quiet=True, time_limit=5.0)
    train(data, recipe.replace(time_limit=None), tmp_path / "c", quiet=True)
    assert budgets == [1800.0, 5.0]  # the recipe's 30 minutes; the argument wins; none
    run = json.loads((tmp_path / "a" / "run.json").read_text())
    assert run["time_limit_seconds"] == 1800.0 and run["stopped_by_time_limit"] is False
    with pytest.raises(Exception, match="time_limit"):
        Recipe(time_limit=0)
