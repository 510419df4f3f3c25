"""Recipes: defaults from the report, TOML/JSON round trips, clear refusals, presets, schedules."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cellkit.errors import CellkitError
from cellkit.train import (
    Phase,
    Recipe,
    RecipeError,
    balanced_class_weights,
    list_presets,
    load_preset,
    load_recipe,
    make_optimizer,
    make_schedule,
    resolve_recipe,
)
from cellkit.train.optim import class_weight_vector
from cellkit.train.recipe import OPTIMIZERS, SCHEDULES
from strategies import seeds

# --------------------------------------------------------------------------- defaults


def test_recipe_error_is_a_cellkit_value_error():
    assert issubclass(RecipeError, CellkitError) and issubclass(RecipeError, ValueError)


def test_auto_mode_is_scratch_without_weights_and_transfer_with_them():
    scratch = Recipe(backbone="compact_resnet").resolved()
    assert scratch.mode == "scratch"
    assert [p.trainable for p in scratch.phases] == ["all"]
    transfer = Recipe(backbone="convnext_tiny", weights="imagenet").resolved()
    assert transfer.mode == "transfer"
    assert [p.trainable for p in transfer.phases] == ["head", "fine_tune"]


def test_transfer_defaults_are_the_reports_lion_schedules():
    head, ft = Recipe(weights="imagenet").resolved().phases
    assert (head.optimizer, head.learning_rate, head.end_learning_rate) == ("lion", 5e-4, 1e-5)
    assert (ft.optimizer, ft.learning_rate, ft.end_learning_rate) == ("lion", 1e-4, 5e-6)
    assert head.early_stopping_patience is not None and ft.early_stopping_patience is not None


def test_report_split_and_balanced_class_weights_are_the_defaults():
    r = Recipe()
    assert (r.val, r.test, r.class_weight) == (0.08, 0.2, "balanced")


def test_with_epochs_sets_every_phase_and_keeps_the_rest():
    r = Recipe(weights="imagenet").with_epochs(3)
    assert [p.epochs for p in r.phases] == [3, 3]
    assert r.phases[0].learning_rate == 5e-4
    assert r.total_epochs == 6


def test_replace_validates_and_rejects_unknown_fields():
    assert Recipe().replace(seed=3).seed == 3
    with pytest.raises(RecipeError, match="unknown key 'sede'.*did you mean 'seed'"):
        Recipe().replace(sede=3)
    with pytest.raises(RecipeError, match="batch_size must be an int >= 1. Received: batch_size=0"):
        Recipe().replace(batch_size=0)


# --------------------------------------------------------------------------- round trips


def _full_recipe() -> Recipe:
    return Recipe(
        backbone="convnext_small",
        weights="imagenet",
        head={"units": 128, "dropout": 0.2},
        high_pass="laplacian",
        augmentation="strong",
        mix="cutmix",
        mix_alpha=0.4,
        class_weight=(1.0, 2.0, 0.5),
        label_smoothing=0.1,
        batch_size=32,
        seed=7,
        fine_tune_fraction=0.3,
        phases=(
            Phase("transfer", "head", 4, "lion", 5e-4, 1e-5, "cosine", early_stopping_patience=2),
            Phase("fine_tune", "fine_tune", 5, "sgd", 1e-2, schedule="constant", reduce_lr_patience=1,
                  momentum=0.8, weight_decay=1e-4),
        ),
    )


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_save_and_load_round_trip(tmp_path, suffix):
    r = _full_recipe()
    path = r.save(tmp_path / f"recipe{suffix}")
    assert load_recipe(path) == r
    assert Recipe.load(path) == r


def test_none_values_round_trip_through_toml(tmp_path):
    r = Recipe(phases=(Phase("scratch", epochs=2, final_learning_rate=None, early_stopping_patience=None),))
    text = r.to_toml()
    assert "weights" not in text and "early_stopping_patience" not in text
    assert load_recipe(r.save(tmp_path / "r.toml")) == r


def test_json_from_dict_accepts_to_dict():
    r = _full_recipe()
    assert Recipe.from_dict(json.loads(json.dumps(r.to_dict()))) == r


phase_strategy = st.builds(
    Phase,
    name=st.sampled_from(["a", "b c", "fine_tune", 'q"uote']),
    trainable=st.just("all"),
    epochs=st.integers(1, 500),
    optimizer=st.sampled_from(OPTIMIZERS),
    learning_rate=st.floats(1e-6, 1.0),
    schedule=st.sampled_from(SCHEDULES),
    weight_decay=st.none() | st.floats(0.0, 0.1),
    early_stopping_patience=st.none() | st.integers(0, 20),
)


@settings(max_examples=40, deadline=None)
@given(
    phase=phase_strategy,
    seed=seeds(2**31),
    batch=st.integers(1, 512),
    weights=st.none() | st.just("imagenet") | st.text("abc/._", min_size=1, max_size=8),
    cw=st.sampled_from(["balanced", "none"]) | st.lists(st.floats(0.0, 10.0), min_size=1, max_size=4).filter(any),
)
def test_toml_round_trip_property(tmp_path_factory, phase, seed, batch, weights, cw):
    r = Recipe(seed=seed, batch_size=batch, weights=weights, class_weight=cw if isinstance(cw, str) else tuple(cw),
               phases=(phase,))
    path = tmp_path_factory.mktemp("rt") / "r.toml"
    assert load_recipe(r.save(path)) == r


# --------------------------------------------------------------------------- refusals


def _write(tmp_path, text: str, name: str = "bad.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_unknown_top_level_key_names_key_and_file(tmp_path):
    path = _write(tmp_path, 'backbone = "baseline"\nbakcbone = "x"\n')
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    msg = str(info.value)
    assert str(path) in msg and "'bakcbone'" in msg and "did you mean 'backbone'" in msg


def test_phase_key_at_the_top_points_to_the_phases_table(tmp_path):
    path = _write(tmp_path, "epochs = 3\n")
    with pytest.raises(RecipeError, match=r"'epochs' is a key of each \[\[phases\]\] table"):
        load_recipe(path)


def test_unknown_key_in_a_phase_names_the_phase(tmp_path):
    path = _write(tmp_path, '[[phases]]\nname = "scratch"\nlearnig_rate = 0.1\n')
    with pytest.raises(RecipeError, match=r"unknown key 'learnig_rate' in phases\[0\] \(did you mean 'learning_rate'"):
        load_recipe(path)


def test_bad_optimizer_name_is_refused_with_a_suggestion(tmp_path):
    path = _write(tmp_path, '[[phases]]\nname = "scratch"\noptimizer = "adamm"\n')
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    msg = str(info.value)
    assert str(path) in msg
    assert "phases[0].optimizer must be one of ['lion', 'adamw', 'adam', 'sgd']" in msg
    assert "did you mean 'adam'" in msg and "Received: optimizer='adamm'" in msg


@pytest.mark.parametrize("lr", ["-0.1", "0", "inf", '"fast"', "20.0"])
def test_bad_learning_rate_is_refused(tmp_path, lr):
    path = _write(tmp_path, f'[[phases]]\nname = "scratch"\nlearning_rate = {lr}\n')
    with pytest.raises(RecipeError, match=r"phases\[0\]\.learning_rate must be a finite number in \(0, 10\]"):
        load_recipe(path)


def test_final_learning_rate_above_the_initial_one_is_refused():
    with pytest.raises(RecipeError, match="final_learning_rate must not exceed learning_rate"):
        Phase("p", learning_rate=1e-4, final_learning_rate=1e-3)


def test_reduce_on_plateau_needs_a_constant_schedule():
    with pytest.raises(RecipeError, match="reduce_lr_patience needs schedule='constant'"):
        Phase("p", schedule="cosine", reduce_lr_patience=2)
    assert Phase("p", schedule="constant", reduce_lr_patience=2).reduce_lr_patience == 2


def test_frozen_backbone_phases_need_weights():
    with pytest.raises(RecipeError, match="weights=None leaves the backbone random"):
        Recipe(phases=(Phase("transfer", "head"),))
    with pytest.raises(RecipeError, match="mode='transfer' needs pretrained weights"):
        Recipe(mode="transfer")


@pytest.mark.parametrize(
    ("changes", "pattern"),
    [
        ({"augmentation": "heavy"}, "augmentation must be one of"),
        ({"val": 0.5, "test": 0.5}, "val \\+ test must leave training images"),
        ({"class_weight": "equal"}, "class_weight must be one of"),
        ({"class_weight": (0.0, 0.0)}, "class_weight must have a positive entry"),
        ({"seed": -1}, "seed must be an int >= 0"),
        ({"batch_size": 2.5}, "batch_size must be an int"),
        ({"fine_tune_fraction": 0.0}, "fine_tune_fraction must be a finite number in \\(0, 1\\]"),
        ({"precision": "half"}, "precision must be one of"),
        ({"fine_tune_batch_norm": "yes"}, "fine_tune_batch_norm must be true or false"),
        ({"head": ["units"]}, "head must be a table"),
    ],
)
def test_bad_values_name_the_key(changes, pattern):
    with pytest.raises(RecipeError, match=pattern):
        Recipe(**changes)


def test_duplicate_phase_names_are_refused():
    with pytest.raises(RecipeError, match="phase names must be unique"):
        Recipe(phases=(Phase("a"), Phase("a")))


def test_invalid_toml_and_wrong_suffix_name_the_file(tmp_path):
    path = _write(tmp_path, "backbone = \n")
    with pytest.raises(RecipeError, match=r"bad\.toml: not a valid TOML file"):
        load_recipe(path)
    other = _write(tmp_path, "{}", name="recipe.yaml")
    with pytest.raises(RecipeError, match="a recipe is a .toml or .json file"):
        load_recipe(other)
    with pytest.raises(RecipeError, match="no such recipe file"):
        load_recipe(tmp_path / "missing.toml")


def test_phases_must_be_an_array_of_tables(tmp_path):
    path = _write(tmp_path, '[phases]\nname = "x"\n')
    with pytest.raises(RecipeError, match=r"phases must be a list of tables \(\[\[phases\]\] in TOML\)"):
        load_recipe(path)


# --------------------------------------------------------------------------- presets


def test_every_preset_loads_resolves_and_round_trips(tmp_path):
    names = list_presets()
    assert {"report-baseline", "report-transfer", "compact", "robust"} <= set(names)
    for name in names:
        r = load_preset(name).resolved()
        assert r.phases
        assert load_recipe(r.save(tmp_path / f"{name}.toml")) == r


def test_report_transfer_preset_matches_the_report():
    r = load_preset("report-transfer")
    assert r.weights == "imagenet" and r.head["units"] == 64
    assert [(p.optimizer, p.learning_rate, p.final_learning_rate) for p in r.phases] == [
        ("lion", 5e-4, 1e-5),
        ("lion", 1e-4, 5e-6),
    ]


def test_robust_preset_follows_the_augment_settings():
    from cellkit.train.presets import ROBUST_PRESET

    r = load_preset("robust")
    assert (r.augmentation, r.mix, r.label_smoothing) == (
        ROBUST_PRESET["augmentation"], ROBUST_PRESET["mix"], ROBUST_PRESET["label_smoothing"]
    )
    assert r.phases[0].epochs == ROBUST_PRESET["epochs"]


def test_resolve_recipe_takes_a_file_or_a_preset(tmp_path):
    path = Recipe(seed=5).save(tmp_path / "mine.json")
    assert resolve_recipe(str(path)).seed == 5
    assert resolve_recipe("compact").backbone == "compact_resnet"
    with pytest.raises(RecipeError, match="unknown recipe preset 'compakt' \\(did you mean 'compact'\\?\\)"):
        resolve_recipe("compakt")


# --------------------------------------------------------------------------- schedules, optimizers, weights


@pytest.mark.parametrize("schedule", ["cosine", "exponential"])
def test_schedules_decay_from_the_initial_to_the_final_rate(schedule):
    phase = Phase("p", learning_rate=1e-4, final_learning_rate=5e-6, schedule=schedule)
    lr = make_schedule(phase, steps=50)
    values = [float(lr(step)) for step in (0, 10, 25, 50)]
    assert values[0] == pytest.approx(1e-4)
    assert values[-1] == pytest.approx(5e-6, rel=1e-4)
    assert all(a > b for a, b in zip(values, values[1:], strict=False))


def test_constant_schedule_is_a_float_and_default_final_rate_is_a_hundredth():
    assert make_schedule(Phase("p", learning_rate=3e-3, schedule="constant"), steps=5) == 3e-3
    assert Phase("p", learning_rate=1e-3).end_learning_rate == pytest.approx(1e-5)
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        make_schedule(Phase("p"), steps=0)


@pytest.mark.parametrize(("name", "cls"), [("lion", "Lion"), ("adamw", "AdamW"), ("adam", "Adam"), ("sgd", "SGD")])
def test_make_optimizer(name, cls):
    opt = make_optimizer(Phase("p", optimizer=name, weight_decay=0.01, momentum=0.5), steps=10)
    assert type(opt).__name__ == cls
    assert opt.weight_decay == pytest.approx(0.01)
    if name == "sgd":
        assert opt.momentum == pytest.approx(0.5)


def test_balanced_class_weights_keep_the_total_weight():
    labels = np.array([0] * 6 + [1] * 3 + [3] * 1)
    w = balanced_class_weights(labels, num_classes=4)
    assert w[2] == 0.0
    assert math.isclose(float(w[labels].sum()), labels.size)
    assert w[0] < w[1] < w[3]


def test_class_weight_vector_modes():
    labels = np.array([0, 0, 1])
    assert class_weight_vector("none", labels, 2) is None
    assert class_weight_vector((1.0, 3.0), labels, 2).tolist() == [1.0, 3.0]
    with pytest.raises(RecipeError, match="class_weight lists 3 weights but the data has 2 classes"):
        class_weight_vector((1.0, 2.0, 3.0), labels, 2)
