"""Recipe files: the TOML written with tomli-w is the TOML cellkit wrote before, JSON unchanged."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cellkit.train import Phase, Recipe, RecipeError, list_presets, load_preset, load_recipe
from cellkit.train.recipe_io import TOML_HEADER, recipe_to_toml, save_recipe

#: The robust preset's recipe.toml as cellkit's hand-written TOML writer wrote it (kept runs hold it).
ROBUST_TOML = '''\
# cellkit training recipe (cellkit.train.Recipe); None values are omitted (they are the defaults)
backbone = "compact_resnet"
augmentation = "strong"
mix = "cutmix"
mix_alpha = 1.0
mix_probability = 0.5
class_weight = "balanced"
label_smoothing = 0.1
tta = "d4"
precise_bn = 30
batch_size = 64
val = 0.08
test = 0.2
seed = 0
precision = "bfloat16"
mode = "scratch"
fine_tune_fraction = 0.1
fine_tune_batch_norm = false

[backbone_options]

[head]
units = 64
dropout = 0.3
batch_norm = true
pooling = "avg"

[[phases]]
name = "scratch"
trainable = "all"
epochs = 32
optimizer = "adamw"
learning_rate = 0.002
final_learning_rate = 1e-05
schedule = "cosine"
weight_decay = 0.0001
momentum = 0.9
early_stopping_patience = 15
reduce_lr_factor = 0.5
min_learning_rate = 1e-07
'''


def test_toml_of_a_preset_is_byte_for_byte_what_the_old_writer_wrote(tmp_path):
    recipe = load_preset("robust").resolved()
    assert recipe.to_toml() == recipe_to_toml(recipe) == ROBUST_TOML
    assert save_recipe(recipe, tmp_path / "recipe.toml").read_text(encoding="utf-8") == ROBUST_TOML


@pytest.mark.parametrize("name", list_presets())
def test_every_preset_round_trips_through_toml_and_json(tmp_path, name):
    recipe = load_preset(name).resolved()
    assert recipe.to_toml().startswith(TOML_HEADER)
    for suffix in (".toml", ".json"):
        assert load_recipe(recipe.save(tmp_path / f"recipe{suffix}")) == recipe
    assert json.loads((tmp_path / "recipe.json").read_text()) == recipe.to_dict()


def test_none_values_and_an_empty_phase_list_are_left_out():
    text = Recipe().to_toml()
    assert "phases" not in text and "weights" not in text and "normalize" not in text
    assert text.splitlines()[1] == 'backbone = "baseline"'


def test_lists_tables_and_numpy_numbers_are_written_as_toml(tmp_path):
    recipe = Recipe(
        class_weight=(1.0, 2.5, 0.0), head={"units": np.int64(32), "dropout": np.float32(0.25)},
        backbone_options={"resize_to": 160}, phases=(Phase("a b", epochs=2, weight_decay=None),),
    )
    text = recipe.to_toml()
    assert "units = 32\n" in text and "dropout = 0.25\n" in text and "resize_to = 160\n" in text
    assert load_recipe(recipe.save(tmp_path / "r.toml")) == recipe


def test_non_finite_numbers_are_refused():
    with pytest.raises(ValueError, match="TOML recipes hold finite numbers only"):
        Recipe(head={"dropout": float("nan")}).to_toml()


def test_a_bad_file_names_itself(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(RecipeError, match=r"bad\.json: a recipe must be a table \(dict\) at the top level"):
        load_recipe(bad)
