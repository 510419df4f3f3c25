"""Classification metrics in NumPy: accuracy, precision, recall, F1, confusion matrix, report, AUROC, log-loss.

Definitions follow scikit-learn's: the confusion matrix has true classes in rows and
predicted classes in columns; a ratio with a zero denominator is 0 (``zero_division=0``);
``"weighted"`` averages weight each class by its support (its number of true samples, as
in the seed report's tables), ``"macro"`` averages are unweighted over the classes that
occur in ``y_true`` or ``y_pred`` (scikit-learn's default label set).

``y_pred`` is either predicted labels ``(n,)`` or class probabilities / scores ``(n, k)``
(the arg-max is taken).

Example:
    >>> from cellkit.evaluate.metrics import accuracy, f1_score
    >>> y_true, y_pred = [0, 0, 1, 1], [0, 1, 1, 1]
    >>> accuracy(y_true, y_pred)
    0.75
    >>> round(f1_score(y_true, y_pred, average="macro"), 4)
    0.7333
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

__all__ = [
    "accuracy",
    "classification_report",
    "confusion_matrix",
    "f1_score",
    "format_report",
    "log_loss",
    "per_class_metrics",
    "precision",
    "recall",
    "roc_auc",
    "roc_auc_ovr",
]

Average = Literal["weighted", "macro"] | None
ArrayLike = Sequence[Any] | np.ndarray
_AVERAGES = ("weighted", "macro", None)
_RESERVED = frozenset({"accuracy", "macro avg", "weighted avg", "confusion_matrix"})


def _as_labels(
    y_true: ArrayLike, y_pred: ArrayLike, num_classes: int | None
) -> tuple[np.ndarray, np.ndarray, int]:
    """Validated integer ``(y_true, y_pred, num_classes)``; probabilities become arg-max labels."""
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    if t.ndim != 1:
        raise ValueError(
            f"y_true must be a 1-D array of class indices. Received: y_true with shape={t.shape}"
        )
    if t.size and t.dtype.kind not in "biu":
        raise ValueError(f"y_true must hold integer class indices. Received: y_true with dtype={t.dtype}")
    if p.ndim == 2:
        if p.shape[1] == 0:
            raise ValueError(
                f"y_pred probabilities need at least one column. Received: y_pred with shape={p.shape}"
            )
        if num_classes is not None and p.shape[1] != num_classes:
            raise ValueError(
                f"y_pred has {p.shape[1]} probability columns but num_classes={num_classes}. "
                f"Received: y_pred with shape={p.shape}"
            )
        num_classes = num_classes if num_classes is not None else p.shape[1]
        p = np.argmax(p, axis=1) if p.shape[0] else np.zeros(0, np.int64)
    elif p.ndim != 1:
        raise ValueError(
            f"y_pred must be labels (n,) or probabilities (n, classes). Received: y_pred with shape={p.shape}"
        )
    elif p.size and p.dtype.kind not in "biu":
        raise ValueError(
            f"y_pred labels must be integers (pass probabilities as a 2-D array). Received: y_pred with dtype={p.dtype}"
        )
    if p.shape[0] != t.shape[0]:
        raise ValueError(
            f"y_true and y_pred must have the same length. Received: len(y_true)={t.shape[0]}, len(y_pred)={p.shape[0]}"
        )
    t = t.astype(np.int64, copy=False)
    p = p.astype(np.int64, copy=False)
    for name, arr in (("y_true", t), ("y_pred", p)):
        if arr.size and arr.min() < 0:
            raise ValueError(f"{name} must be non-negative class indices. Received: min({name})={arr.min()}")
    top = int(max(t.max(initial=-1), p.max(initial=-1))) + 1
    if num_classes is None:
        num_classes = top
    elif top > num_classes:
        raise ValueError(
            f"labels go up to {top - 1} but num_classes={num_classes}. Received: num_classes={num_classes}"
        )
    return t, p, int(num_classes)


def confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike, num_classes: int | None = None) -> np.ndarray:
    """``int64`` matrix ``(k, k)``: entry ``[i, j]`` counts samples of class ``i`` predicted ``j``.

    Example:
        >>> confusion_matrix([0, 1, 1], [0, 0, 1]).tolist()
        [[1, 0], [1, 1]]
    """
    t, p, k = _as_labels(y_true, y_pred, num_classes)
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k).astype(np.int64)


def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Fraction of correct predictions (0.0 for no samples)."""
    t, p, _ = _as_labels(y_true, y_pred, None)
    return float((t == p).mean()) if t.size else 0.0


def _safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros(num.shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _from_matrix(cm: np.ndarray) -> dict[str, np.ndarray]:
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    prec = _safe_divide(tp, predicted)
    rec = _safe_divide(tp, support)
    f1 = _safe_divide(2 * prec * rec, prec + rec)
    return {
        "precision": prec,
        "recall": rec,
        "f1": f1,
        "support": support.astype(np.int64),
        "predicted": predicted,
    }


def per_class_metrics(
    y_true: ArrayLike, y_pred: ArrayLike, num_classes: int | None = None
) -> dict[str, np.ndarray]:
    """Per-class ``precision``, ``recall``, ``f1`` (float arrays) and ``support`` (int array).

    Example:
        >>> per_class_metrics([0, 0, 1], [0, 1, 1])["recall"].tolist()
        [0.5, 1.0]
    """
    table = _from_matrix(confusion_matrix(y_true, y_pred, num_classes))
    del table["predicted"]
    return table


def _averaged(
    metric: str, y_true: ArrayLike, y_pred: ArrayLike, average: Average, num_classes: int | None
) -> Any:
    if average not in _AVERAGES:
        raise ValueError(f"average must be 'weighted', 'macro' or None. Received: average={average!r}")
    table = _from_matrix(confusion_matrix(y_true, y_pred, num_classes))
    values = table[metric]
    if average is None:
        return values
    return _average(values, table, average)


def _average(values: np.ndarray, table: dict[str, np.ndarray], average: str) -> float:
    support = table["support"]
    if average == "weighted":
        total = support.sum()
        return float((values * support).sum() / total) if total else 0.0
    present = (support > 0) | (table["predicted"] > 0)
    return float(values[present].mean()) if present.any() else 0.0


def precision(
    y_true: ArrayLike, y_pred: ArrayLike, average: Average = "weighted", num_classes: int | None = None
) -> Any:
    """Precision ``tp / (tp + fp)``: a float, or per-class array when ``average=None``."""
    return _averaged("precision", y_true, y_pred, average, num_classes)


def recall(
    y_true: ArrayLike, y_pred: ArrayLike, average: Average = "weighted", num_classes: int | None = None
) -> Any:
    """Recall ``tp / (tp + fn)``: a float, or per-class array when ``average=None``."""
    return _averaged("recall", y_true, y_pred, average, num_classes)


def f1_score(
    y_true: ArrayLike, y_pred: ArrayLike, average: Average = "weighted", num_classes: int | None = None
) -> Any:
    """F1, the harmonic mean of precision and recall, per class then averaged."""
    return _averaged("f1", y_true, y_pred, average, num_classes)


def classification_report(
    y_true: ArrayLike, y_pred: ArrayLike, class_names: Sequence[str] | None = None
) -> dict[str, Any]:
    """Per-class and averaged metrics as a dict shaped like scikit-learn's ``output_dict=True``.

    Keys: one per class name (``{"precision", "recall", "f1-score", "support"}``),
    ``"accuracy"``, ``"macro avg"``, ``"weighted avg"``, plus ``"confusion_matrix"``
    (nested lists, rows = true classes). All numbers are plain Python (JSON-ready).

    Example:
        >>> rep = classification_report([0, 1, 1], [0, 1, 0], class_names=["a", "b"])
        >>> rep["b"]["recall"], rep["accuracy"]
        (0.5, 0.6666666666666666)
    """
    k = None if class_names is None else len(class_names)
    cm = confusion_matrix(y_true, y_pred, k)
    k = cm.shape[0]
    names = [str(c) for c in class_names] if class_names is not None else [str(i) for i in range(k)]
    if len(set(names)) != len(names) or set(names) & _RESERVED:
        raise ValueError(
            f"class_names must be unique and not one of {sorted(_RESERVED)}. Received: class_names={names}"
        )
    table = _from_matrix(cm)
    report: dict[str, Any] = {}
    for i, name in enumerate(names):
        report[name] = {
            "precision": float(table["precision"][i]),
            "recall": float(table["recall"][i]),
            "f1-score": float(table["f1"][i]),
            "support": int(table["support"][i]),
        }
    total = int(cm.sum())
    report["accuracy"] = float(np.trace(cm) / total) if total else 0.0
    for avg in ("macro", "weighted"):
        report[f"{avg} avg"] = {
            "precision": _average(table["precision"], table, avg),
            "recall": _average(table["recall"], table, avg),
            "f1-score": _average(table["f1"], table, avg),
            "support": total,
        }
    report["confusion_matrix"] = cm.tolist()
    return report


def format_report(report: dict[str, Any], digits: int = 4) -> str:
    """Render :func:`classification_report`'s dict as a fixed-width text table.

    Example:
        >>> rep = classification_report([0, 1], [0, 1], class_names=["a", "b"])
        >>> print(format_report(rep, digits=2).splitlines()[0].split())
        ['precision', 'recall', 'f1-score', 'support']
    """
    rows = [k for k, v in report.items() if isinstance(v, dict)]
    width = max([len(r) for r in rows] + [len("weighted avg")])
    head = f"{'':>{width}} {'precision':>10} {'recall':>10} {'f1-score':>10} {'support':>10}"
    lines = [head, ""]

    def row(name: str, v: dict[str, Any]) -> str:
        return (
            f"{name:>{width}} {v['precision']:>10.{digits}f} {v['recall']:>10.{digits}f} "
            f"{v['f1-score']:>10.{digits}f} {v['support']:>10d}"
        )

    classes = [r for r in rows if not r.endswith(" avg")]
    lines += [row(r, report[r]) for r in classes]
    lines.append("")
    support = report.get("weighted avg", {}).get("support", 0)
    if "accuracy" in report:
        lines.append(
            f"{'accuracy':>{width}} {'':>10} {'':>10} {report['accuracy']:>10.{digits}f} {support:>10d}"
        )
    lines += [row(r, report[r]) for r in rows if r.endswith(" avg")]
    return "\n".join(lines) + "\n"


def roc_auc(positive: ArrayLike, score: ArrayLike) -> float:
    """Area under the ROC curve of ``score`` (higher = more likely positive), ties averaged.

    The Mann-Whitney form: the probability that a random positive scores above a random
    negative. For cellkit's quality scores (lower = more likely an issue) pass ``-score``.

    Example:
        >>> roc_auc([False, True, False, True], [0.1, 0.8, 0.3, 0.4])
        1.0
    """
    from scipy.stats import rankdata

    pos = np.asarray(positive, dtype=bool)
    sc = np.asarray(score, dtype=np.float64)
    if pos.shape != sc.shape or pos.ndim != 1:
        raise ValueError(f"positive and score must be 1-D of one length. Received shapes {pos.shape}, {sc.shape}")
    n1 = int(pos.sum())
    n0 = pos.size - n1
    if n1 == 0 or n0 == 0:
        raise ValueError(f"roc_auc needs both classes. Received: {n1} positives, {n0} negatives")
    ranks = rankdata(sc)
    return float((ranks[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def roc_auc_ovr(y_true: ArrayLike, proba: ArrayLike) -> dict[str, Any]:
    """One-vs-rest AUROC of each class's probability column (:func:`roc_auc`), and their macro mean.

    Returns ``{"macro": float | None, "per_class": [float | None, ...]}``: a class that no
    image has, or that every image has, has no AUROC (``None``); the macro mean is over the
    classes that have one (scikit-learn's ``roc_auc_score(multi_class="ovr", average="macro")``
    when every class occurs).

    Example:
        >>> auc = roc_auc_ovr([0, 1, 2, 2], [[.8, .1, .1], [.2, .5, .3], [.1, .2, .7], [.3, .3, .4]])
        >>> auc["macro"], auc["per_class"]
        (1.0, [1.0, 1.0, 1.0])
    """
    t = np.asarray(y_true)
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or t.ndim != 1 or p.shape[0] != t.shape[0]:
        raise ValueError(
            f"roc_auc_ovr needs labels (n,) and scores (n, classes). Received shapes {t.shape}, {p.shape}"
        )
    per_class: list[float | None] = []
    for c in range(p.shape[1]):
        positive = t == c
        per_class.append(roc_auc(positive, p[:, c]) if 0 < positive.sum() < t.size else None)
    defined = [v for v in per_class if v is not None]
    return {"macro": float(np.mean(defined)) if defined else None, "per_class": per_class}


def log_loss(y_true: ArrayLike, proba: ArrayLike, eps: float = 1e-7) -> float:
    """Mean negative log-likelihood (nats) of the true classes; each row is renormalised to sum to 1,
    and probabilities are clipped to ``[eps, 1]`` (``1e-7``: float32's resolution; a confidently
    wrong prediction costs ``-log(1e-7) = 16.1``, not infinity).

    Example:
        >>> round(log_loss([0, 1], [[0.5, 0.5], [0.2, 0.8]]), 4)
        0.4581
    """
    t = np.asarray(y_true)
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or t.ndim != 1 or p.shape[0] != t.shape[0] or not t.size:
        raise ValueError(
            f"log_loss needs labels (n,) and probabilities (n, classes), n >= 1. Received shapes {t.shape}, {p.shape}"
        )
    if t.dtype.kind not in "biu" or t.min() < 0 or t.max() >= p.shape[1]:
        raise ValueError(f"y_true must be class indices in [0, {p.shape[1]}). Received: dtype={t.dtype}")
    if not np.isfinite(p).all() or (p < 0).any():
        raise ValueError("probabilities must be finite and non-negative. Received: negative or non-finite values")
    total = p.sum(axis=1, keepdims=True)
    p = np.divide(p, total, out=np.full_like(p, 1.0 / p.shape[1]), where=total > 0)
    return max(0.0, float(-np.mean(np.log(np.clip(p[np.arange(t.size), t], eps, 1.0)))))
