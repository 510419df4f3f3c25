"""Evaluation: metrics, the test-metrics report of a model, robustness to acquisition shift, figures.

* :mod:`cellkit.evaluate.metrics`: accuracy, precision, recall, F1, the confusion matrix,
  the classification report, the AUROC (one-vs-rest per class too) and the log-loss, in NumPy;
* :mod:`cellkit.evaluate.report`: :func:`evaluate_model` and the ``metrics.json`` dict
  (:func:`metrics_from_predictions`, :func:`format_metrics`);
* :mod:`cellkit.evaluate.robustness`: accuracy under cellkit's corruption suite
  (:func:`evaluate_robustness`, :class:`RobustnessReport`);
* :mod:`cellkit.evaluate.external`: the same under a third-party suite (ImageNet-C,
  ``imagecorruptions``, evaluation only);
* :mod:`cellkit.evaluate.plots`: training curves and confusion matrices as PNG files;
* :mod:`cellkit.evaluate.calibration`: the expected calibration error and its reliability
  diagram, temperature scaling fitted on validation images (:func:`fit_temperature`,
  :func:`calibrate_model`).

Names are imported from their module on first use, so ``from cellkit.evaluate import
roc_auc`` (or ``expected_calibration_error``) imports neither Keras nor Matplotlib.

Example:
    >>> from cellkit.evaluate import accuracy
    >>> accuracy([0, 1, 1, 0], [0, 1, 0, 0])
    0.75
"""

from __future__ import annotations

from cellkit._lazy import lazy_names

#: Public names, by the module that defines them.
_LAZY: dict[str, str] = {
    **dict.fromkeys(
        ("accuracy", "classification_report", "confusion_matrix", "f1_score", "format_report", "log_loss",
         "per_class_metrics", "precision", "recall", "roc_auc", "roc_auc_ovr"),
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
    **dict.fromkeys(
        ("TemperatureFit", "calibrate_model", "calibration_bins", "calibration_metrics", "calibration_summary",
         "expected_calibration_error", "fit_temperature", "plot_reliability_diagram"),
        "cellkit.evaluate.calibration",
    ),
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
