"""Classify new images: one row per image, with the flags that say which predictions not to trust.

:func:`predict_dataset` (also ``cellkit.predict``; the command ``cellkit predict``) runs a
model or an ensemble on a dataset -- a flat folder of new, unlabelled images, a class-folder
tree or an ``.npz`` -- and returns :class:`Predictions`, a table of equal-length NumPy
columns:

* ``id`` (the file path relative to the folder, or the ``.npz`` id), ``predicted`` (class
  name), ``confidence`` (its probability), ``prob_<class>`` for every class;
* ``label`` (class name) and ``correct`` when the dataset is labelled;
* the quality flags of the same images, from
  :func:`cellkit.quality.find_issues` with ``issues=("superposition", "color_filter")``:
  ``superposition_score``, ``is_superposition_issue``, ``color_filter_score``,
  ``is_color_filter_issue``, ``color_filter_strength`` -- only with ``quality=True`` and at
  least 20 images (the detectors fit on the images themselves; with fewer, or images too
  small for them, the columns are left out with a :class:`PredictionWarning` saying why);
* ``low_confidence`` (always): ``confidence < min_confidence`` (default
  :data:`MIN_CONFIDENCE`, 0.5: the model gives the predicted class less than even odds);
* ``trust`` (with the quality columns): ``False`` when any flag is set -- a superposed or
  colour-filtered image, or a low-confidence prediction.

Class names: ``class_names`` when given; else those recorded beside the model when it is
given as a path (a run folder's ``metrics.json`` / ``run.json``,
:func:`~cellkit.inference.saving.saved_class_names`); else the dataset's own when it has as
many as the model has outputs (``cellkit evaluate`` reads them the same way); else
``class_0``, ``class_1``, ...

Example:
    >>> import cellkit, keras
    >>> inp = keras.Input((96, 96, 3))
    >>> model = keras.Model(inp, keras.layers.Dense(8, activation="softmax")(
    ...     keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(inp))))
    >>> preds = predict_dataset(model, cellkit.load("sample").subset(range(0, 480, 16)))
    >>> len(preds), list(preds.columns)[:5]
    (30, ['id', 'predicted', 'confidence', 'label', 'correct'])
    >>> preds["trust"].dtype, round(float(preds.probabilities.sum(axis=1).mean()), 4)
    (dtype('bool'), 1.0)
"""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from cellkit._io import atomic_writer
from cellkit.data import Dataset
from cellkit.data.dataset import image_batch
from cellkit.errors import DataError
from cellkit.inference.predict import check_input_size, predict_proba

__all__ = [
    "MIN_CONFIDENCE",
    "QUALITY_ISSUES",
    "PredictionWarning",
    "Predictions",
    "predict",
    "predict_dataset",
]

#: Default ``min_confidence``: a prediction whose probability is below it is ``low_confidence``.
MIN_CONFIDENCE = 0.5
#: The issue types checked on the predicted images (names of :mod:`cellkit.quality.issue_types`):
#: their report columns are copied into the predictions and any of their flags makes ``trust`` False.
QUALITY_ISSUES: tuple[str, ...] = ("superposition", "color_filter")
#: Columns of the quality report that the predictions already have, or do not need.
_NOT_COPIED = ("index", "id", "label", "class_name")


class PredictionWarning(UserWarning):
    """Predictions were made, but something was left out (the quality columns)."""


class Predictions:
    """Per-image predictions: a table of equal-length NumPy columns (module docstring).

    ``preds["confidence"]`` is a column, ``preds[3]`` a row (a dict); :meth:`to_csv` writes
    the table atomically, :meth:`to_rows` gives it as dicts, :meth:`summary` counts it.

    Args:
        columns: the columns, by name (``id``, ``predicted``, ``confidence`` and one
            ``prob_<class>`` per class at least).
        class_names: the model's class names, in output order.
        source: where the images came from.
    """

    def __init__(self, columns: dict[str, np.ndarray], class_names: Sequence[str], source: str = "") -> None:
        self.columns = {name: np.asarray(col) for name, col in columns.items()}
        self.class_names = tuple(str(c) for c in class_names)
        self.source = str(source)
        lengths = {name: len(col) for name, col in self.columns.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"all columns must have the same length. Received lengths: {lengths}")
        needed = ["id", "predicted", "confidence", *(f"prob_{c}" for c in self.class_names)]
        missing = [c for c in needed if c not in self.columns]
        if missing:
            raise ValueError(f"`columns` must include {missing}. Received: {list(self.columns)}")

    def __len__(self) -> int:
        return len(self.columns["id"])

    def __getitem__(self, key: str | int) -> Any:
        if isinstance(key, str):
            if key not in self.columns:
                raise KeyError(f"no column {key!r}; columns: {list(self.columns)}")
            return self.columns[key]
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            if not -len(self) <= key < len(self):
                raise IndexError(f"row index out of range. Received: {key} for {len(self)} rows")
            return {name: col[key].item() for name, col in self.columns.items()}
        raise TypeError(f"expected a column name (str) or a row index (int). Received: {key!r}")

    def __repr__(self) -> str:
        return (f"Predictions(n={len(self)}, classes={list(self.class_names)}, "
                f"quality={self.quality_checked}, columns={list(self.columns)})")

    @property
    def probabilities(self) -> np.ndarray:
        """``(n, k)`` float32: the ``prob_<class>`` columns, in class order."""
        cols = [self.columns[f"prob_{c}"] for c in self.class_names]
        return np.stack(cols, axis=1) if cols else np.zeros((len(self), 0), np.float32)

    @property
    def quality_checked(self) -> bool:
        """Whether the quality columns (and ``trust``) are present."""
        return "trust" in self.columns

    def summary(self) -> dict[str, Any]:
        """Counts: ``n_images``, ``predicted`` (per class, every class listed), ``low_confidence``,
        with the quality columns one per issue type (``superposition``, ``color_filter``) and
        ``not_trusted``; and ``accuracy`` when labelled."""
        predicted = self.columns["predicted"]
        out: dict[str, Any] = {
            "n_images": len(self),
            "predicted": {c: int(np.sum(predicted == c)) for c in self.class_names},
        }
        if "low_confidence" in self.columns:
            out["low_confidence"] = int(self.columns["low_confidence"].sum())
        if self.quality_checked:
            for kind in QUALITY_ISSUES:
                if f"is_{kind}_issue" in self.columns:
                    out[kind] = int(self.columns[f"is_{kind}_issue"].sum())
            out["not_trusted"] = int((~self.columns["trust"]).sum())
        if "correct" in self.columns and len(self):
            out["accuracy"] = float(self.columns["correct"].mean())
        return out

    def to_rows(self) -> list[dict[str, Any]]:
        """The table as a list of dicts (one per image; plain Python values)."""
        names = list(self.columns)
        lists = [self.columns[c].tolist() for c in names]
        return [dict(zip(names, values, strict=True)) for values in zip(*lists, strict=True)]

    def to_csv(self, path: str | os.PathLike[str]) -> None:
        """Write the table as CSV (a header row, one row per image), atomically.

        Probabilities are written as the shortest text that reads back to the same
        float32, other floats in full precision, booleans as ``True``/``False``.
        """
        names = list(self.columns)
        cells = [_cells(self.columns[c]) for c in names]
        with atomic_writer(path, "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(names)
            writer.writerows(zip(*cells, strict=True))


def _cells(col: np.ndarray) -> list[str]:
    if col.dtype == np.float32:
        return [str(v) for v in col]  # NumPy's shortest text that round-trips the float32
    if np.issubdtype(col.dtype, np.floating):
        return [repr(float(v)) for v in col]
    return [str(v) for v in col.tolist()]


def predict_dataset(
    model: keras.Model | str | os.PathLike[str],
    dataset: Dataset | str | os.PathLike[str],
    *,
    tta: str | bool | None = None,
    batch_size: int = 256,
    quality: bool = True,
    quiet: bool = True,
    seed: int = 0,
    class_names: Sequence[str] | None = None,
    min_confidence: float = MIN_CONFIDENCE,
) -> Predictions:
    """Predict the class of every image of ``dataset``, with the flags of the images not to trust.

    Args:
        model: a ``keras.Model`` taking 0-255 images and returning class probabilities, or
            the path of a ``.keras`` file (a model or an ensemble) or of a run folder,
            loaded with ``safe_mode=True``.
        dataset: a :class:`~cellkit.data.Dataset`, or what :func:`cellkit.load` reads (a
            flat folder of images, a class-folder tree, an ``.npz``, ``"sample"``).
        tta: average the model over test-time views (a :mod:`cellkit.inference.tta`
            specification such as ``"d4"``); ``None``: the model as it is.
        batch_size: images per prediction batch.
        quality: add the quality columns and ``trust`` (module docstring).
        quiet: no progress bars.
        seed: seed of the quality detectors (fitted on these images).
        class_names: the model's class names (default: module docstring).
        min_confidence: below it a prediction is ``low_confidence``.

    Raises:
        DataError: the images are not of the model's input size, ``tta`` rotates
            non-square images, or the dataset's labels are not among the model's classes.
        ValueError: a bad argument.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1. Received: batch_size={batch_size!r}")
    if isinstance(min_confidence, bool) or not isinstance(min_confidence, (int, float)) \
            or not 0 <= min_confidence <= 1:
        raise ValueError(f"min_confidence must be a number in [0, 1]. Received: min_confidence={min_confidence!r}")
    saved = None
    if not isinstance(model, keras.Model):
        from cellkit.inference.saving import load_model, resolve_model_path

        path = resolve_model_path(model)
        model = load_model(path)
        saved = path
    ds = _as_dataset(dataset, quiet)
    check_input_size(model, ds.images)
    model = _wrap_tta(model, tta, ds)
    try:  # class names and labels are checked before the work
        k = int(model.outputs[0].shape[-1])
    except (AttributeError, IndexError, TypeError, ValueError):  # not a functional model
        k = predict_proba(model, ds.images[:1]).shape[1]
    names, by_model = _class_names(class_names, saved, ds, k)
    label = None if ds.labels is None else _model_labels(ds, names, by_model)
    proba = predict_proba(model, ds.images, batch_size=batch_size, progress_desc="predicting", quiet=quiet)
    top = np.argmax(proba, axis=1) if len(proba) else np.zeros(0, np.int64)
    confidence = proba[np.arange(len(proba)), top] if len(proba) else np.zeros(0, np.float32)
    columns: dict[str, np.ndarray] = {
        "id": np.asarray(ds.ids, dtype=str) if len(ds) else np.zeros(0, "<U1"),
        "predicted": np.asarray(names, dtype=str)[top] if len(ds) else np.zeros(0, "<U1"),
        "confidence": confidence.astype(np.float32),
    }
    if label is not None:
        columns["label"] = np.asarray(names, dtype=str)[label] if len(ds) else np.zeros(0, "<U1")
        columns["correct"] = label == top
    for j, name in enumerate(names):
        columns[f"prob_{name}"] = proba[:, j]
    checked = _quality(ds, quiet=quiet, seed=seed) if quality else None
    columns |= checked[0] if checked is not None else {}
    columns["low_confidence"] = confidence < min_confidence
    if checked is not None:
        columns["trust"] = ~(checked[1] | columns["low_confidence"])
    return Predictions(columns, names, source=ds.source)


#: ``cellkit.predict``: the same function.
predict = predict_dataset


def _as_dataset(dataset: Any, quiet: bool) -> Dataset:
    if isinstance(dataset, (str, os.PathLike)):
        from cellkit.data import load

        return load(dataset, quiet=quiet)
    return dataset if isinstance(dataset, Dataset) else Dataset(image_batch(dataset, "dataset"))


def _wrap_tta(model: keras.Model, tta: str | bool | None, ds: Dataset) -> keras.Model:
    from cellkit.inference._tta_spec import parse_tta

    parsed = parse_tta(tta)  # ValueError listing the specifications
    if parsed is None:
        return model
    h, w = ds.images.shape[1:3]
    if parsed[0] != "flips" and h != w:
        raise DataError(f"tta={tta!r} rotates the images, so they must be square (expected tta='flips', "
                        f"or --size to make them square). Received: images of {h}x{w} (HxW)", path=ds.source)
    from cellkit.inference.tta import with_tta

    return with_tta(model, tta)


def _class_names(given: Sequence[str] | None, saved: Any, ds: Dataset, k: int) -> tuple[tuple[str, ...], bool]:
    """The model's class names, and whether they are the model's own (given or saved) rather than guessed."""
    if given is not None:
        names = tuple(str(c) for c in given)
        if len(names) != k or len(set(names)) != k:
            raise ValueError(f"class_names must name the model's {k} classes, each once. Received: {list(names)}")
        return names, True
    if saved is not None:
        from cellkit.inference.saving import saved_class_names

        found = saved_class_names(saved, k)
        if found is not None and len(set(found)) == k:
            return found, True
    if len(ds.class_names) == k:
        return ds.class_names, False
    return tuple(f"class_{i}" for i in range(k)), False


def _model_labels(ds: Dataset, names: tuple[str, ...], by_model: bool) -> np.ndarray:
    """The dataset's labels as indices of the model's classes (matched by name when the model names them)."""
    labels = np.asarray(ds.labels, dtype=np.int64)
    if by_model and ds.class_names and tuple(ds.class_names) != names:
        unknown = [c for c in ds.class_names if c not in names]
        if unknown:
            raise DataError(f"the data's classes {unknown} are not among the model's classes {list(names)} "
                            "(expected labelled images of the classes the model was trained on)", path=ds.source)
        return np.asarray([names.index(c) for c in ds.class_names], np.int64)[labels]
    if labels.size and labels.max() >= len(names):
        raise DataError(f"label {int(labels.max())} has no class among the model's {len(names)} outputs",
                        path=ds.source)
    return labels


def _quality(ds: Dataset, *, quiet: bool, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray] | None:
    """The quality columns of the images and which have an issue; ``None`` (a warning) if they cannot be checked."""
    from cellkit.quality import find_issues
    from cellkit.quality.issue_types import check_inputs

    try:
        check_inputs(ds, QUALITY_ISSUES)
    except DataError as exc:
        warnings.warn(f"{ds.source}: quality columns left out: {exc.reason}; the predictions carry no "
                      "superposition or colour-filter flags and no trust column", PredictionWarning, stacklevel=3)
        return None
    report = find_issues(ds, issues=QUALITY_ISSUES, random_state=seed, quiet=quiet)
    columns = {c: col for c, col in report.columns.items() if c not in _NOT_COPIED}
    return columns, report.issue_mask()
