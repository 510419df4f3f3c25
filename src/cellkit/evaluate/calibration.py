"""Calibration: does a model's confidence match its accuracy, and one temperature that makes it.

* :func:`calibration_bins` and :func:`expected_calibration_error`: the top-label ECE
  (Guo et al., 2017) with equal-width confidence bins, 15 by default: the images are
  binned by their top probability (bin ``b`` holds confidences in ``(b/B, (b+1)/B]``, a
  confidence of 0 in the first bin), and the ECE is the image-weighted mean of
  ``|accuracy - mean confidence|`` over the bins;
* :func:`plot_reliability_diagram`: accuracy per bin against the diagonal, as a PNG;
* :func:`fit_temperature`: the temperature ``T`` minimising the negative log-likelihood
  (NLL) of held-out labels, fitted with :func:`scipy.optimize.minimize_scalar` on
  ``log T`` (the NLL is convex in ``1 / T``); probabilities are floored at the smallest
  normal float32 (as the layer does), so exact zeros and ones are fine;
* :func:`calibrate_model`: fits ``T`` on a model's predictions for validation images and
  returns the model followed by :class:`~cellkit.inference.temperature.TemperatureScaling`;
* :func:`calibration_metrics`: ECE and log-loss before and after a temperature;
  :func:`calibration_summary`: the temperature fitted on one part and the ECE before and
  after on another (what ``cellkit train`` records in ``metrics.json``).

Inputs are class probabilities ``(n, k)`` or logits; ``from_logits=None`` decides by
looking (:func:`is_probabilities`: values in [0, 1], rows summing to 1). The NumPy functions
import neither Keras nor Matplotlib.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> logits = 2.0 * rng.normal(size=(20000, 4))        # calibrated logits: labels drawn from their softmax
    >>> p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    >>> labels = (p.cumsum(axis=1) < rng.random((20000, 1))).sum(axis=1)
    >>> fit = fit_temperature(3.0 * logits, labels)     # over-confident by a factor 3
    >>> 0.95 < fit.temperature / 3.0 < 1.05, fit.nll_after < fit.nll_before   # T found within 5%
    (True, True)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from cellkit.evaluate.metrics import log_loss
from cellkit.inference._temperature_math import apply_temperature, log_scores

if TYPE_CHECKING:
    import keras

__all__ = [
    "DEFAULT_BINS",
    "TemperatureFit",
    "as_probabilities",
    "calibrate_model",
    "calibration_bins",
    "calibration_metrics",
    "calibration_summary",
    "expected_calibration_error",
    "fit_temperature",
    "is_probabilities",
    "plot_reliability_diagram",
]

#: Equal-width confidence bins of the ECE and the reliability diagram.
DEFAULT_BINS = 15
_LOG_T_BOUNDS = (-7.0, 7.0)  # T in [0.0009, 1097]


def _checked(y_true: Any, values: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(labels int64 (n,), values float64 (n, k))``, checked against each other."""
    y = np.asarray(y_true)
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] < 2:
        raise ValueError(f"expected predictions of shape (n, classes >= 2). Received: shape={v.shape}")
    if y.ndim != 1 or y.shape[0] != v.shape[0]:
        raise ValueError(f"expected one label per row of predictions. Received: labels shape={y.shape}, "
                         f"predictions shape={v.shape}")
    if y.size and (y.dtype.kind not in "biu" or y.min() < 0 or y.max() >= v.shape[1]):
        raise ValueError(f"labels must be class indices in [0, {v.shape[1]}). Received: labels of dtype {y.dtype}, "
                         f"range {y.min()}..{y.max()}")
    if not np.isfinite(v).all():
        raise ValueError("predictions must be finite. Received: NaN or infinite values")
    return y.astype(np.int64), v


def is_probabilities(values: Any, atol: float = 1e-3) -> bool:
    """Whether rows of ``values`` are class probabilities: in [0, 1] and summing to 1 (within ``atol``).

    Example:
        >>> is_probabilities([[0.25, 0.75]]), is_probabilities([[2.0, -1.0]])
        (True, False)
    """
    v = np.asarray(values, dtype=np.float64)
    return bool(v.ndim == 2 and v.size and (v >= 0).all() and (v <= 1).all()
                and np.allclose(v.sum(axis=1), 1.0, atol=atol))


def as_probabilities(values: Any, from_logits: bool | None = None) -> np.ndarray:
    """Class probabilities ``float64 (n, k)``: ``values`` themselves, or their softmax when they are logits.

    Example:
        >>> as_probabilities([[0.0, 0.0]]).tolist()
        [[0.5, 0.5]]
    """
    v = np.asarray(values, dtype=np.float64)
    if from_logits is None:
        from_logits = not is_probabilities(v)
    if not from_logits:
        return v
    z = np.exp(v - v.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def calibration_bins(y_true: Any, proba: Any, bins: int = DEFAULT_BINS) -> dict[str, np.ndarray]:
    """The reliability table: per equal-width confidence bin, its edges, images, mean confidence and accuracy.

    Keys: ``lower``, ``upper`` (edges), ``count`` (images), ``confidence`` (mean top
    probability), ``accuracy`` (share of correct arg-max), ``gap`` (``accuracy - confidence``);
    empty bins have ``count == 0`` and 0 elsewhere.

    Example:
        >>> table = calibration_bins([0, 1, 1], [[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]], bins=5)
        >>> table["count"].tolist(), table["accuracy"].round(2).tolist()
        ([0, 0, 1, 1, 1], [0.0, 0.0, 0.0, 1.0, 1.0])
    """
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"bins must be an int >= 1. Received: bins={bins!r}")
    y, p = _checked(y_true, proba)
    edges = np.linspace(0.0, 1.0, bins + 1)
    confidence = p.max(axis=1) if p.size else np.zeros(0)
    correct = (p.argmax(axis=1) == y).astype(np.float64) if p.size else np.zeros(0)
    index = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    count = np.bincount(index, minlength=bins)
    conf = np.bincount(index, confidence, bins) / np.maximum(count, 1)  # 0 in empty bins
    acc = np.bincount(index, correct, bins) / np.maximum(count, 1)
    return {"lower": edges[:-1], "upper": edges[1:], "count": count.astype(np.int64), "confidence": conf,
            "accuracy": acc, "gap": acc - conf}


def expected_calibration_error(y_true: Any, proba: Any, bins: int = DEFAULT_BINS) -> float:
    """Top-label ECE: the image-weighted mean of ``|accuracy - confidence|`` over equal-width bins (0 for no images).

    Example:
        >>> round(expected_calibration_error([0, 0, 1, 1], [[.9, .1]] * 4), 6)  # 90% sure, 50% right
        0.4
    """
    table = calibration_bins(y_true, proba, bins)
    n = table["count"].sum()
    return float((table["count"] * np.abs(table["gap"])).sum() / n) if n else 0.0


class TemperatureFit(NamedTuple):
    """What :func:`fit_temperature` found: ``T`` and the mean NLL (nats) before (``T = 1``) and after."""

    temperature: float
    nll_before: float
    nll_after: float
    images: int
    from_logits: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return dict(self._asdict())


def _nll(z: np.ndarray, y: np.ndarray, temperature: float) -> float:
    s = z / temperature
    top = s.max(axis=1, keepdims=True)
    lse = top[:, 0] + np.log(np.exp(s - top).sum(axis=1))
    return float(np.mean(lse - s[np.arange(y.size), y]))


def fit_temperature(probabilities_or_logits: Any, labels: Any, from_logits: bool | None = None) -> TemperatureFit:
    """Fit one temperature ``T`` minimising the NLL of ``labels`` (module docstring).

    Args:
        probabilities_or_logits: ``(n, k)`` predictions for held-out images (the validation split).
        labels: ``(n,)`` class indices.
        from_logits: ``None`` decides by looking (:func:`is_probabilities`).

    Returns:
        :class:`TemperatureFit` (``T`` within ``[exp(-7), exp(7)]``).

    Example:
        >>> p = [[0.99, 0.01], [0.99, 0.01], [0.01, 0.99], [0.99, 0.01]]  # 99% sure, 75% right
        >>> fit_temperature(p, [0, 1, 1, 0]).temperature > 1
        True
    """
    from scipy.optimize import minimize_scalar

    y, v = _checked(labels, probabilities_or_logits)
    if y.size == 0:
        raise ValueError("fit_temperature needs at least one labelled prediction. Received: 0 images")
    logits = (not is_probabilities(v)) if from_logits is None else bool(from_logits)
    z = log_scores(v, logits)
    z = z - z.max(axis=1, keepdims=True)  # the same softmax, better conditioned
    before = _nll(z, y, 1.0)
    result = minimize_scalar(lambda log_t: _nll(z, y, float(np.exp(log_t))), bounds=_LOG_T_BOUNDS,
                             method="bounded", options={"xatol": 1e-7})
    t = float(np.exp(result.x))
    after = _nll(z, y, t)
    if after > before:  # never worse than no temperature at all
        t, after = 1.0, before
    return TemperatureFit(temperature=t, nll_before=before, nll_after=after, images=int(y.size), from_logits=logits)


def calibration_metrics(
    outputs: Any, labels: Any, temperature: float, from_logits: bool | None = None, bins: int = DEFAULT_BINS
) -> dict[str, Any]:
    """ECE and log-loss (:func:`cellkit.evaluate.metrics.log_loss`) of ``outputs`` before and after ``temperature``.

    Example:
        >>> m = calibration_metrics([[0.99, 0.01], [0.99, 0.01]], [0, 1], 10.0)
        >>> m["images"], m["ece_after"] < m["ece_before"], m["log_loss_after"] < m["log_loss_before"]
        (2, True, True)
    """
    y, v = _checked(labels, outputs)
    logits = (not is_probabilities(v)) if from_logits is None else bool(from_logits)
    before = as_probabilities(v, logits)
    after = as_probabilities(apply_temperature(v, temperature, logits), logits)
    empty = y.size == 0
    return {"images": int(y.size),
            "ece_before": expected_calibration_error(y, before, bins),
            "ece_after": expected_calibration_error(y, after, bins),
            "log_loss_before": None if empty else log_loss(y, before),
            "log_loss_after": None if empty else log_loss(y, after)}


def calibration_summary(
    fit_outputs: Any, fit_labels: Any, eval_outputs: Any, eval_labels: Any, *, bins: int = DEFAULT_BINS,
    fit_subset: str = "val", eval_subset: str = "test", from_logits: bool | None = None,
) -> dict[str, Any]:
    """Fit ``T`` on one part, then measure ECE and log-loss before and after on another (JSON-ready).

    Keys: ``temperature``, ``ece_before``, ``ece_after``, ``log_loss_before``,
    ``log_loss_after`` (on ``eval_subset``), and ``calibration`` (the fit: its subset,
    images and NLL before and after; where the ECE was measured, its images and bins).

    Example:
        >>> p = np.array([[0.99, 0.01], [0.99, 0.01], [0.01, 0.99], [0.99, 0.01]])
        >>> s = calibration_summary(p, [0, 1, 1, 0], p, [0, 1, 1, 0])
        >>> s["temperature"] > 1, s["ece_after"] < s["ece_before"]
        (True, True)
    """
    fit = fit_temperature(fit_outputs, fit_labels, from_logits=from_logits)
    measured = calibration_metrics(eval_outputs, eval_labels, fit.temperature, fit.from_logits, bins)
    images = measured.pop("images")
    return {
        "temperature": fit.temperature,
        **measured,
        "calibration": {"fit_subset": fit_subset, "fit_images": fit.images, "nll_before": fit.nll_before,
                        "nll_after": fit.nll_after, "eval_subset": eval_subset, "eval_images": images,
                        "bins": bins},
    }


def calibrate_model(
    model: keras.Model, val_images: np.ndarray, val_labels: Sequence[int] | np.ndarray, *,
    indices: Sequence[int] | np.ndarray | None = None, batch_size: int = 256, from_logits: bool | None = None,
    bins: int = DEFAULT_BINS,
) -> tuple[keras.Model, dict[str, Any]]:
    """Fit a temperature on ``model``'s predictions for ``val_images[indices]``; append it to the model.

    Args:
        model: a classifier, a TTA model or an ensemble (probabilities or logits out).
        val_images, val_labels: held-out images (``uint8`` as the model takes them) and their classes.
        indices: the validation part of ``val_images`` (default: all of them).
        batch_size: images per prediction batch.
        from_logits: whether the model outputs logits; ``None`` decides from its predictions.
        bins: bins of the ECE in ``info``.

    Returns:
        ``(calibrated, info)``: the model followed by
        :class:`~cellkit.inference.temperature.TemperatureScaling` (same arg-max), and a dict
        with ``temperature``, ``images``, ``from_logits``, ``nll_before``, ``nll_after`` (the
        fit's), ``ece_before``, ``ece_after``, ``log_loss_before``, ``log_loss_after`` on those images.

    Example:
        >>> import keras
        >>> inp = keras.Input((2,))
        >>> clf = keras.Model(inp, keras.layers.Dense(2, activation="softmax")(keras.layers.Dense(8)(inp)))
        >>> x = np.random.default_rng(0).normal(size=(64, 2)).astype("float32")
        >>> calibrated, info = calibrate_model(clf, x, (x[:, 0] > 0).astype(int))
        >>> calibrated.output_shape, sorted(info)[:3]
        ((None, 2), ['ece_after', 'ece_before', 'from_logits'])
    """
    from cellkit.inference.predict import predict_proba
    from cellkit.inference.temperature import with_temperature

    labels = np.asarray(val_labels)
    idx = np.arange(len(val_images)) if indices is None else np.asarray(indices, dtype=np.int64)
    if labels.shape[0] != len(val_images):
        raise ValueError(f"val_labels must hold one label per image. Received: {labels.shape[0]} labels for "
                         f"{len(val_images)} images")
    if isinstance(val_images, np.ndarray) and val_images.ndim == 4:  # images: batch by batch from uint8
        outputs = predict_proba(model, val_images, idx, batch_size=batch_size)
    else:  # other inputs (features)
        outputs = np.asarray(model.predict(np.asarray(val_images)[idx], batch_size=batch_size, verbose=0))
    fit = fit_temperature(outputs, labels[idx], from_logits=from_logits)
    info = {**fit.to_dict(), **calibration_metrics(outputs, labels[idx], fit.temperature, fit.from_logits, bins)}
    return with_temperature(model, fit.temperature, from_logits=fit.from_logits), info


def plot_reliability_diagram(
    y_true: Any, proba: Any, path: str | os.PathLike[str], bins: int = DEFAULT_BINS, title: str | None = None,
    dpi: int = 100,
) -> Path:
    """Draw the reliability diagram (accuracy per confidence bin; the diagonal is perfect calibration) as a PNG.

    The upper panel shows each bin's accuracy as a bar and the gap to its mean confidence
    in red; the lower one the number of images per bin. The ECE is in the title.

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "reliability.png"
        >>> plot_reliability_diagram([0, 1, 1], [[.9, .1], [.3, .7], [.6, .4]], out).read_bytes()[:4]
        b'\\x89PNG'
    """
    from matplotlib.figure import Figure

    from cellkit.evaluate.plots import _save

    table = calibration_bins(y_true, proba, bins)
    ece = expected_calibration_error(y_true, proba, bins)
    width = 1.0 / bins
    centres = table["lower"] + width / 2
    fig = Figure(figsize=(5.0, 6.0), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    filled = table["count"] > 0
    top.bar(centres[filled], table["accuracy"][filled], width=width, edgecolor="black", color="tab:blue",
            label="accuracy")
    top.bar(centres[filled], -table["gap"][filled], bottom=table["accuracy"][filled], width=width,
            color="tab:red", alpha=0.35, edgecolor="tab:red", hatch="//", label="gap to confidence")
    top.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    top.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy",
            title=title if title is not None else f"Reliability diagram (ECE {ece:.4f}, {bins} bins)")
    top.legend(loc="upper left", fontsize=8)
    bottom.bar(centres, table["count"], width=width, edgecolor="black", color="tab:grey")
    bottom.set(xlabel="confidence (top probability)", ylabel="images")
    return _save(fig, path, dpi)
