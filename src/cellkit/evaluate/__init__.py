"""Evaluation: metrics, the test-metrics report of a model, robustness to acquisition shift, figures.

* :mod:`cellkit.evaluate.metrics`: accuracy, precision, recall, F1, the confusion matrix,
  the classification report and the AUROC, in NumPy;
* :mod:`cellkit.evaluate.report`: :func:`evaluate_model` and the ``metrics.json`` dict
  (:func:`metrics_from_predictions`, :func:`format_metrics`);
* :mod:`cellkit.evaluate.robustness`: accuracy under cellkit's corruption suite
  (:func:`evaluate_robustness`, :class:`RobustnessReport`);
* :mod:`cellkit.evaluate.external`: the same under a third-party suite (ImageNet-C,
  ``imagecorruptions``, evaluation only);
* :mod:`cellkit.evaluate.plots`: training curves and confusion matrices as PNG files.

Names are imported from their module on first use, so ``from cellkit.evaluate import
roc_auc`` imports neither Keras nor Matplotlib.

Example:
    >>> from cellkit.evaluate import accuracy
    >>> accuracy([0, 1, 1, 0], [0, 1, 0, 0])
    0.75
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public names, by the module that defines them.
_LAZY: dict[str, str] = {
    **dict.fromkeys(
        ("accuracy", "classification_report", "confusion_matrix", "f1_score", "format_report", "per_class_metrics",
         "precision", "recall", "roc_auc"),
        "cellkit.evaluate.metrics",
    ),
    **dict.fromkeys(
        ("check_input_size", "evaluate_model", "format_metrics", "metrics_from_predictions"), "cellkit.evaluate.report"
    ),
    **dict.fromkeys(("CORRUPTION_CHUNK", "RobustnessReport", "evaluate_robustness"), "cellkit.evaluate.robustness"),
    **dict.fromkeys(
        ("EXTERNAL_CORRUPTIONS", "MIN_SIDE", "evaluate_external_robustness", "external_corrupt"),
        "cellkit.evaluate.external",
    ),
    **dict.fromkeys(("plot_confusion_matrix", "plot_history"), "cellkit.evaluate.plots"),
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cellkit.evaluate' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
