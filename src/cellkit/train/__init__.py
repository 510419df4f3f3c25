"""Training recipes and runs: the seed report's method as reusable, reproducible recipes.

* :class:`Recipe` / :class:`Phase` (:mod:`cellkit.train.recipe`): a plain, validated,
  TOML/JSON-serialisable configuration; named presets in :mod:`cellkit.train.presets`.
* :func:`train` (:mod:`cellkit.train.runner`): split, build, two-phase transfer learning or
  one-phase training from scratch, and a run folder of artifacts (:mod:`cellkit.train.run_dir`).
* :func:`fit_phase` (:mod:`cellkit.train.phases`): compile and fit one phase, without the runner.
* :func:`load_recipe` (:mod:`cellkit.train.recipe_io`): recipe files, TOML or JSON.
* :class:`ArrayBatches` (:mod:`cellkit.train.pipeline`): the backend-agnostic input pipeline.
* :func:`load_model` / :func:`save_model` (:mod:`cellkit.inference.saving`), :func:`predict_proba`
  (:mod:`cellkit.inference.predict`) and :func:`evaluate_model` (:mod:`cellkit.evaluate.report`),
  re-exported here for training scripts.

Example:
    >>> from cellkit.train import Recipe, load_preset
    >>> load_preset("report-transfer").replace(backbone="convnext_small").resolved().phases[1].name
    'fine_tune'
"""

import sys
import types
from typing import Any

from cellkit.evaluate.report import evaluate_model, format_metrics, metrics_from_predictions
from cellkit.inference.predict import predict_proba
from cellkit.inference.saving import load_model, save_model
from cellkit.train.callbacks import BestCheckpoint, HistoryRecorder
from cellkit.train.cross_validation import CrossValidation, load_folds, train_folds
from cellkit.train.devices import distribution_scope, gpu_available, precision_policy
from cellkit.train.optim import balanced_class_weights, make_optimizer, make_schedule
from cellkit.train.phases import PhaseResult, build_training_model, fit_phase
from cellkit.train.pipeline import ArrayBatches
from cellkit.train.presets import PresetInfo, list_presets, load_preset, preset_catalog, resolve_recipe
from cellkit.train.recipe import Phase, Recipe, RecipeError
from cellkit.train.recipe_io import load_recipe, save_recipe
from cellkit.train.run_dir import TrainResult
from cellkit.train.runner import TrainingInterrupted, load_run, train

__all__ = [
    "ArrayBatches",
    "BestCheckpoint",
    "CrossValidation",
    "HistoryRecorder",
    "Phase",
    "PhaseResult",
    "PresetInfo",
    "Recipe",
    "RecipeError",
    "TrainResult",
    "TrainingInterrupted",
    "balanced_class_weights",
    "build_training_model",
    "distribution_scope",
    "evaluate_model",
    "fit_phase",
    "format_metrics",
    "gpu_available",
    "list_presets",
    "load_model",
    "load_folds",
    "load_preset",
    "load_run",
    "load_recipe",
    "make_optimizer",
    "make_schedule",
    "metrics_from_predictions",
    "precision_policy",
    "predict_proba",
    "preset_catalog",
    "resolve_recipe",
    "save_model",
    "save_recipe",
    "train",
    "train_folds",
]


class _CallableModule(types.ModuleType):
    """``cellkit.train`` is both this package and :func:`train`.

    Once the package is imported, Python binds ``cellkit.train`` to it, which would shadow
    the function ``cellkit.train`` of the top-level API: calling the package runs
    :func:`train` instead, so ``cellkit.train(data, recipe, out)`` works either way.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> TrainResult:
        return self.train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
