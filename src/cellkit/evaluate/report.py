"""Test metrics of a model: the report's table (accuracy, precision, recall, F1) and more.

:func:`metrics_from_predictions` turns true labels and predicted probabilities into the
JSON-ready dict written to a run's ``metrics.json`` and by ``cellkit evaluate --json``:
accuracy; the log-loss (``log_loss``, nats), the expected calibration error (``ece``, 15
equal-width bins: :mod:`cellkit.evaluate.calibration`) and the one-vs-rest AUROC
(``auc_macro``; ``auc_per_class``, ``None`` for a class absent from the labels); precision,
recall and F1 both weighted by support (the report's tables) and macro-averaged; per-class
precision, recall, F1 and support; the confusion matrix (rows: true classes). Logits are
turned into probabilities (softmax) for the log-loss, the ECE and the AUROC.
:func:`format_metrics` renders it as a text table.

Example:
    >>> import numpy as np
    >>> m = metrics_from_predictions([0, 1, 1], np.array([[.9, .1], [.2, .8], [.6, .4]]), ["a", "b"])
    >>> round(m["accuracy"], 4), m["per_class"]["b"]["recall"], m["confusion_matrix"]
    (0.6667, 0.5, [[1, 0], [1, 1]])
    >>> round(m["log_loss"], 4), round(m["ece"], 4), m["auc_macro"]
    (0.4149, 0.3, 1.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from cellkit.errors import DataError
from cellkit.evaluate.calibration import DEFAULT_BINS, as_probabilities, expected_calibration_error
from cellkit.evaluate.metrics import classification_report, log_loss, roc_auc_ovr
from cellkit.inference.predict import check_input_size, predict_proba

__all__ = ["check_input_size", "evaluate_model", "format_metrics", "metrics_from_predictions"]


def metrics_from_predictions(
    y_true: Sequence[int] | np.ndarray,
    proba: np.ndarray,
    class_names: Sequence[str],
    subset: str = "test",
) -> dict[str, Any]:
    """The metrics dict of ``metrics.json`` (see the module docstring)."""
    proba = np.asarray(proba)
    if proba.ndim != 2 or proba.shape[1] != len(class_names):
        raise DataError(
            f"the model gives {proba.shape[-1] if proba.ndim == 2 else '?'} class probabilities but the data has "
            f"{len(class_names)} classes {list(class_names)}. Received: predictions with shape={proba.shape}"
        )
    y = np.asarray(y_true)
    report = classification_report(y, proba, class_names=list(class_names))
    out: dict[str, Any] = {"subset": subset, "images": int(y.size), "accuracy": report["accuracy"]}
    p = as_probabilities(proba) if proba.size else proba
    auc = roc_auc_ovr(y, p)
    out["log_loss"] = log_loss(y, p) if y.size else None
    out["ece"] = expected_calibration_error(y, p, DEFAULT_BINS)
    out["ece_bins"] = DEFAULT_BINS
    out["auc_macro"] = auc["macro"]
    for avg in ("weighted", "macro"):
        for metric, key in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score")):
            out[f"{metric}_{avg}"] = report[f"{avg} avg"][key]
    out["class_names"] = list(class_names)
    out["per_class"] = {
        name: {
            "precision": report[name]["precision"],
            "recall": report[name]["recall"],
            "f1": report[name]["f1-score"],
            "support": report[name]["support"],
        }
        for name in class_names
    }
    out["auc_per_class"] = dict(zip(class_names, auc["per_class"], strict=True))
    out["confusion_matrix"] = report["confusion_matrix"]
    return out


def evaluate_model(
    model: keras.Model,
    images: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    class_names: Sequence[str],
    indices: Sequence[int] | np.ndarray | None = None,
    subset: str = "test",
    batch_size: int = 256,
) -> dict[str, Any]:
    """Predict ``images[indices]`` batch by batch and compute :func:`metrics_from_predictions`."""
    check_input_size(model, images)
    labels = np.asarray(labels)
    idx = np.arange(len(images)) if indices is None else np.asarray(indices, dtype=np.int64)
    proba = predict_proba(model, images, idx, batch_size=batch_size)
    return metrics_from_predictions(labels[idx], proba, class_names, subset=subset)


def format_metrics(metrics: dict[str, Any], digits: int = 4) -> str:
    """A text table of a metrics dict: one row per class, then accuracy and the averages.

    The ``auc`` column (one-vs-rest AUROC per class, macro on the ``macro avg`` row) and the
    last line (log-loss, ECE and macro AUROC) appear when the dict has them (older
    ``metrics.json`` files do not).

    Example:
        >>> m = metrics_from_predictions([0, 1], np.eye(2), ["a", "b"])
        >>> lines = format_metrics(m, digits=2).splitlines()
        >>> print(lines[0]); print(lines[-3]); print(lines[-1])
                        precision     recall   f1-score    support        auc
        weighted avg       1.00       1.00       1.00          2
        log-loss 0.00   ECE 0.00 (15 bins)   AUC 1.00 (macro, one-vs-rest)
    """
    names = list(metrics["per_class"])
    width = max([len(n) for n in names] + [len("weighted avg")])
    per_auc = metrics.get("auc_per_class")

    def auc(value: Any) -> str:
        return "" if per_auc is None else (f" {'-':>10}" if value is None else f" {value:>10.{digits}f}")

    head = f"{'':>{width}} {'precision':>10} {'recall':>10} {'f1-score':>10} {'support':>10}"
    lines = [head + ("" if per_auc is None else f" {'auc':>10}")]
    for name in names:
        row = metrics["per_class"][name]
        lines.append(
            f"{name:>{width}} {row['precision']:>10.{digits}f} {row['recall']:>10.{digits}f} "
            f"{row['f1']:>10.{digits}f} {row['support']:>10d}" + auc((per_auc or {}).get(name))
        )
    n = metrics["images"]
    lines.append("")
    lines.append(f"{'accuracy':>{width}} {'':>10} {'':>10} {metrics['accuracy']:>10.{digits}f} {n:>10d}")
    for avg in ("macro", "weighted"):
        lines.append(
            f"{avg + ' avg':>{width}} {metrics[f'precision_{avg}']:>10.{digits}f} "
            f"{metrics[f'recall_{avg}']:>10.{digits}f} {metrics[f'f1_{avg}']:>10.{digits}f} {n:>10d}"
            + (auc(metrics.get("auc_macro")) if avg == "macro" else "")
        )
    extra = []
    if metrics.get("log_loss") is not None:
        extra.append(f"log-loss {metrics['log_loss']:.{digits}f}")
    if metrics.get("ece") is not None:
        extra.append(f"ECE {metrics['ece']:.{digits}f} ({metrics.get('ece_bins', DEFAULT_BINS)} bins)")
    if metrics.get("auc_macro") is not None:
        extra.append(f"AUC {metrics['auc_macro']:.{digits}f} (macro, one-vs-rest)")
    if extra:
        lines += ["", "   ".join(extra)]
    return "\n".join(lines)
