"""cellkit: classify microscope images of blood cells.

Data quality (superposed, colour-filtered and near-duplicate images), high-pass filter
layers for Keras, a backbone zoo extended by pluggy plugins, the seed report's training
recipe, ensembles and robustness evaluation.

Names that need Keras (the zoo, training, layers, ensembles) are imported on first use, so
``import cellkit`` stays fast. Importing cellkit still makes its layers loadable by plain
``keras.models.load_model``: they are registered with Keras as soon as Keras is imported.

Example:
    >>> import cellkit
    >>> ds = cellkit.load("sample")
    >>> len(ds), ds.num_classes
    (480, 8)
"""

from __future__ import annotations

from cellkit._lazy import lazy_names
from cellkit.data import Dataset, load, save_npz
from cellkit.data.split import Split, stratified_kfold, stratified_split
from cellkit.errors import CellkitError, DataError
from cellkit.plugins import PluginError, PluginWarning, get_plugin_manager, hookimpl

__version__ = "0.1.0"

#: Public names imported lazily, by the module that defines them.
_LAZY: dict[str, str] = {
    # data quality
    "find_issues": "cellkit.quality",
    "IssueReport": "cellkit.quality",
    "SuperpositionDetector": "cellkit.quality",
    "ColorFilterDetector": "cellkit.quality",
    "duplicate_groups": "cellkit.quality",
    "perceptual_hash": "cellkit.quality",
    "find_label_issues": "cellkit.quality",
    "corrupt_dataset": "cellkit.corrupt",
    # model zoo
    "BackboneSpec": "cellkit.zoo",
    "HeadConfig": "cellkit.zoo",
    "FineTuneReport": "cellkit.zoo",
    "UnknownBackboneError": "cellkit.zoo",
    "list_backbones": "cellkit.zoo",
    "get_backbone": "cellkit.zoo",
    "build_backbone": "cellkit.zoo",
    "build_classifier": "cellkit.zoo",
    "fine_tune": "cellkit.zoo",
    "freeze_backbone": "cellkit.zoo",
    "high_pass_layer": "cellkit.layers",
    "normalization_layer": "cellkit.layers",
    # training
    "Recipe": "cellkit.train",
    "Phase": "cellkit.train",
    "RecipeError": "cellkit.train",
    "load_recipe": "cellkit.train",
    "load_preset": "cellkit.train",
    "list_presets": "cellkit.train",
    "train": "cellkit.train",
    "train_folds": "cellkit.train",
    "load_folds": "cellkit.train",
    "load_run": "cellkit.train",
    "TrainResult": "cellkit.train",
    "TrainingInterrupted": "cellkit.train",
    # evaluation
    "evaluate_model": "cellkit.evaluate",
    "classification_report": "cellkit.evaluate",
    "evaluate_robustness": "cellkit.evaluate",
    # inference: predictions, saving, test-time augmentation, ensembles, export
    "predict": "cellkit.inference.predictor",
    "explain": "cellkit.inference.saliency",
    "explain_dataset": "cellkit.evaluate.explain",
    "Predictions": "cellkit.inference",
    "load_model": "cellkit.inference",
    "save_model": "cellkit.inference",
    "build_ensemble": "cellkit.inference",
    "average_predictions": "cellkit.inference",
    "with_tta": "cellkit.inference",
    "export_submission": "cellkit.inference",
    "adapt_model": "cellkit.adapt",
    "with_batch_adaptation": "cellkit.inference",
}

__all__ = [
    "CellkitError",
    "DataError",
    "Dataset",
    "PluginError",
    "PluginWarning",
    "Split",
    "__version__",
    "get_plugin_manager",
    "hookimpl",
    "load",
    "save_npz",
    "stratified_kfold",
    "stratified_split",
    *sorted(_LAZY),
]


__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())


# Last, once every name above exists: cellkit's layers register with Keras when Keras is imported.
from cellkit._keras_hook import install as _install_keras_hook  # noqa: E402

_install_keras_hook()
