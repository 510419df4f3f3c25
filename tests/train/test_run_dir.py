"""RunDir: the run folder's files and run.json, which no other module of cellkit.train writes."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest

import cellkit
from cellkit.data import Dataset
from cellkit.data.split import stratified_split
from cellkit.errors import CellkitError
from cellkit.train import Recipe, load_recipe
from cellkit.train.run_dir import RUN_FILES, RunDir

#: The keys of a finished run's run.json, in their order (kept runs of the benchmarks have them).
FINISHED_KEYS = [
    "status", "started", "data", "environment", "augmentation", "precision", "distribution", "phases",
    "training_seconds", "time_limit_seconds", "stopped_by_time_limit", "seconds", "epochs_run", "best_epoch",
    "monitor", "best_value", "metrics",
]


def _started(tmp_path: Path) -> tuple[RunDir, Recipe]:
    images = np.zeros((20, 8, 8, 3), np.uint8)
    labels = np.arange(20) % 2
    data = Dataset(images, labels, ("a", "b"), tuple(f"{i}.png" for i in range(20)), source="tiny")
    recipe = Recipe(augmentation="light").resolved()
    run = RunDir.create(tmp_path / "run")
    run.start(recipe, data, stratified_split(labels, seed=0), data.class_names)
    return run, recipe


def test_file_paths_are_the_run_files(tmp_path):
    run = RunDir(tmp_path)
    paths = [run.recipe_json, run.recipe_toml, run.split_json, run.run_json, run.history_csv, run.best_keras,
             run.model_keras, run.metrics_json, run.confusion_matrix_png, run.training_curves_png]
    assert [p.name for p in paths] == list(RUN_FILES) and {p.parent for p in paths} == {tmp_path}


def test_create_refuses_a_non_empty_folder_unless_overwrite(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "metrics.json").write_text("stale")
    with pytest.raises(CellkitError, match="run folder exists and is not empty"):
        RunDir.create(tmp_path)
    RunDir.create(tmp_path, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    with pytest.raises(CellkitError, match="exists and is not a folder"):
        RunDir.create(tmp_path / "notes.txt")


def test_run_json_follows_the_run_in_the_order_of_its_keys(tmp_path):
    run, recipe = _started(tmp_path)
    assert load_recipe(run.recipe_json) == load_recipe(run.recipe_toml) == recipe
    first = json.loads(run.run_json.read_text())
    assert first["status"] == "running" and sum(first["data"]["split"].values()) == 20
    assert first["environment"]["cellkit"] == cellkit.__version__
    run.update(precision="float32")
    run.update(distribution={"strategy": "none", "replicas": 1, "devices": []})
    run.update(phases=[])
    run.add_phase("scratch", 2, "every layer trainable")
    assert json.loads(run.run_json.read_text())["phases"] == [
        {"name": "scratch", "epochs_run": 2, "trainable": "every layer trainable"}
    ]
    run.end_training(60, True)
    metrics = {k: 0.5 for k in ("accuracy", "precision_weighted", "recall_weighted", "f1_weighted", "f1_macro")}
    run.finish("complete", epochs_run=2, best_epoch=1, monitor="val_loss", best_value=0.7,
               metrics={**metrics, "subset": "test", "per_class": {}})
    info = json.loads(run.run_json.read_text())
    assert list(info) == FINISHED_KEYS and info == run.info
    assert info["status"] == "complete" and info["stopped_by_time_limit"] is True
    assert info["metrics"] == {"subset": "test", **metrics}


def test_a_failure_is_recorded_with_the_error_and_the_best_epoch_so_far(tmp_path):
    run, _ = _started(tmp_path)
    run.fail(RuntimeError("disk on fire"), epochs_run=3, best_epoch=None)
    info = json.loads(run.run_json.read_text())
    assert info["status"] == "failed" and info["error"] == "RuntimeError: disk on fire"
    assert info["epochs_run"] == 3 and "best_epoch" not in info
    run.fail(RuntimeError("again"), epochs_run=3, best_epoch=2)
    assert json.loads(run.run_json.read_text())["best_epoch"] == 2


def test_load_names_the_missing_file(tmp_path):
    run, _ = _started(tmp_path)
    with pytest.raises(CellkitError, match=r"history.csv: missing; .* is not a finished cellkit run folder"):
        run.load()


def test_no_other_module_of_train_names_run_json():
    """RunDir is the one writer of run.json: no other module of cellkit.train has the file name in its code."""
    train = Path(cellkit.__file__).resolve().parent / "train"
    found = []
    for path in sorted(train.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value == "run.json" and path.name != "run_dir.py":
                found.append(f"{path.name}:{node.lineno}")
    assert found == []
