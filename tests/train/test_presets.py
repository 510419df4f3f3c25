"""Presets are TOML files only; the robust preset is the recipe the code built before it was one."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cellkit
from cellkit.train import Recipe, list_presets, load_preset, load_recipe
from cellkit.train.presets import ROBUST_PHASE_KEYS, ROBUST_PRESET

PRESETS = Path(cellkit.__file__).resolve().parent / "train" / "presets"

#: ``load_preset("robust").to_dict()`` as the code produced it when the preset was built from
#: ``compact.toml`` and ``cellkit.augment.ROBUST_PRESET`` (a Python dict), before ``robust.toml``.
ROBUST_BEFORE_TOML = {
    "backbone": "compact_resnet",
    "weights": None,
    "backbone_options": {},
    "head": {"units": 64, "dropout": 0.3, "batch_norm": True, "pooling": "avg"},
    "high_pass": None,
    "normalize": None,
    "augmentation": "strong",
    "mix": "cutmix",
    "mix_alpha": 1.0,
    "mix_probability": 0.5,
    "class_weight": "balanced",
    "label_smoothing": 0.1,
    "tta": "d4",
    "precise_bn": 30,
    "batch_size": 64,
    "val": 0.08,
    "test": 0.2,
    "seed": 0,
    "time_limit": None,
    "precision": "bfloat16",
    "mode": "scratch",
    "fine_tune_fraction": 0.1,
    "fine_tune_batch_norm": False,
    "phases": [
        {
            "name": "scratch",
            "trainable": "all",
            "epochs": 32,
            "optimizer": "adamw",
            "learning_rate": 0.002,
            "final_learning_rate": 1e-05,
            "schedule": "cosine",
            "weight_decay": 0.0001,
            "momentum": 0.9,
            "early_stopping_patience": 15,
            "reduce_lr_patience": None,
            "reduce_lr_factor": 0.5,
            "min_learning_rate": 1e-07,
        }
    ],
}


def test_every_preset_is_a_toml_file():
    assert list_presets() == sorted(p.stem for p in PRESETS.glob("*.toml"))
    for name in list_presets():
        assert load_preset(name) == load_recipe(PRESETS / f"{name}.toml")


def test_robust_preset_equals_what_the_code_built_field_by_field():
    robust = load_preset("robust")
    for f in dataclasses.fields(Recipe):
        value = getattr(robust, f.name)
        if f.name == "phases":
            assert [p.to_dict() for p in value] == ROBUST_BEFORE_TOML["phases"]
        else:
            assert value == ROBUST_BEFORE_TOML[f.name], f.name
    assert robust == Recipe.from_dict(ROBUST_BEFORE_TOML)
    assert list(ROBUST_BEFORE_TOML) == [f.name for f in dataclasses.fields(Recipe)]


def test_robust_is_compact_with_the_robust_settings():
    """The two files must not drift apart: robust is compact plus what ROBUST_PRESET lists."""
    compact, robust = load_preset("compact"), load_preset("robust")
    recipe_keys = {k: v for k, v in ROBUST_PRESET.items() if k not in ROBUST_PHASE_KEYS}
    phase_keys = {k: ROBUST_PRESET[k] for k in ROBUST_PHASE_KEYS}
    (phase,) = compact.phases
    assert robust == compact.replace(**recipe_keys, phases=(dataclasses.replace(phase, **phase_keys),))


def test_robust_preset_is_read_from_the_file_each_time():
    from cellkit.train import presets

    first = presets.ROBUST_PRESET
    first["epochs"] = 1
    assert presets.ROBUST_PRESET == {
        "augmentation": "strong", "mix": "cutmix", "mix_alpha": 1.0, "mix_probability": 0.5, "label_smoothing": 0.1,
        "epochs": 32, "early_stopping_patience": 15,
    }
