"""Saliency montages of a dataset: the images a model is surest of, its surest errors, and where it looks.

:func:`explain_dataset` (``cellkit.explain_dataset``; the command ``cellkit explain``)
predicts every image, picks a few per class -- the most confident correct predictions of
each true class (of each predicted class when the images have no labels) -- and, with labels,
the most confident errors, and computes their saliency maps with
:func:`cellkit.inference.saliency.explain` (Grad-CAM, occlusion). The :class:`Explanations`
it returns writes, per method, ``<method>_per_class.png`` (one row per class) and
``<method>_errors.png``, each cell the image beside its map overlaid in the JET colour map
(red: important), and ``explained.csv``: which image is where (``montage``, ``position``,
``id``, ``label``, ``predicted``, ``confidence``). :func:`overlay` draws one overlay.

Example:
    >>> import cellkit, keras, tempfile, pathlib
    >>> inp = keras.Input((96, 96, 3))
    >>> feats = keras.layers.Conv2D(4, 3, strides=8, activation="relu")(keras.layers.Rescaling(1 / 255)(inp))
    >>> model = keras.Model(inp, keras.layers.Dense(8, activation="softmax")(
    ...     keras.layers.GlobalAveragePooling2D()(feats)))
    >>> ex = explain_dataset(model, cellkit.load("sample").subset(range(0, 480, 40)), methods=("gradcam",),
    ...                      per_class=1, errors=2)
    >>> len(ex), ex.maps["gradcam"].shape[1:]
    (..., (96, 96))
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "explained"
    >>> sorted(p.name for p in ex.save(out))
    ['explained.csv', 'gradcam_errors.png', 'gradcam_per_class.png']
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import keras
import numpy as np

from cellkit._io import atomic_writer
from cellkit.data import Dataset
from cellkit.data.dataset import image_batch
from cellkit.errors import DataError
from cellkit.inference.saliency import METHODS, explain

__all__ = ["EXPLAIN_FILES", "METHOD_TITLES", "Explanations", "explain_dataset", "overlay", "select_examples"]

#: What an ``explain`` folder holds (``OutputFolder``'s ``owned`` patterns).
EXPLAIN_FILES: tuple[str, ...] = ("explained.csv", "*_per_class.png", "*_errors.png")
#: How each method is named in a montage's title.
METHOD_TITLES: dict[str, str] = {"gradcam": "Grad-CAM", "occlusion": "occlusion sensitivity"}
_GROUPS = ("per_class", "errors")


def overlay(images: np.ndarray, maps: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """``uint8 (n, h, w, 3)``: each image blended with its map in the JET colour map (red: 1, blue: 0).

    Example:
        >>> import numpy as np
        >>> out = overlay(np.zeros((2, 8, 8, 3), np.uint8), np.ones((2, 8, 8), np.float32))
        >>> out.shape, out.dtype, out[0, 0, 0].tolist()
        ((2, 8, 8, 3), dtype('uint8'), [58, 0, 0])
    """
    images, maps = np.asarray(images), np.asarray(maps)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8 or maps.shape != images.shape[:3]:
        raise ValueError(f"images must be uint8 (n, h, w, 3) and maps (n, h, w). "
                         f"Received: images {images.dtype} {images.shape}, maps {maps.shape}")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1]. Received: alpha={alpha!r}")
    out = np.empty_like(images)
    for i, (image, m) in enumerate(zip(images, maps, strict=True)):
        level = np.round(255 * np.clip(np.nan_to_num(m), 0, 1)).astype(np.uint8)
        heat = cv2.cvtColor(cv2.applyColorMap(level, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
        out[i] = np.round((1 - alpha) * image + alpha * heat).astype(np.uint8)
    return out


@dataclass(frozen=True, eq=False)
class Explanations:
    """The explained images of a dataset, their predictions and their saliency maps.

    Attributes:
        images: ``uint8 (m, h, w, 3)``, the explained images, the per-class ones first
            (class by class, most confident first), then the errors (most confident first).
        montage: ``(m,)`` ``"per_class"`` or ``"errors"``: the montage of each image.
        ids, predicted, confidence: per image; ``labels`` (true class names) or ``None``.
        maps: one ``float32 (m, h, w)`` array in ``[0, 1]`` per method.
        class_names: the model's classes; ``source``: where the images came from.
    """

    images: np.ndarray
    montage: np.ndarray
    ids: np.ndarray
    predicted: np.ndarray
    confidence: np.ndarray
    labels: np.ndarray | None
    maps: Mapping[str, np.ndarray]
    class_names: tuple[str, ...]
    source: str = ""

    def __len__(self) -> int:
        return len(self.images)

    def files(self) -> list[str]:
        """The names of the files :meth:`write` writes."""
        groups = [g for g in _GROUPS if np.any(self.montage == g)]
        return ["explained.csv", *(f"{method}_{g}.png" for method in self.maps for g in groups)]

    def write(self, folder: str | os.PathLike[str]) -> list[Path]:
        """Write the montages and ``explained.csv`` into the existing ``folder`` (each file atomically)."""
        from cellkit.quality.montage import save_montage

        folder = Path(folder)
        written = [self._write_csv(folder / "explained.csv")]
        h = self.images.shape[1] if len(self) else 96
        scale = max(1, 96 // h)
        for method, maps in self.maps.items():
            cells = np.concatenate([self.images, overlay(self.images, maps)], axis=2) if len(self) else self.images
            for group in _GROUPS:
                rows = self._rows(group)
                if not rows:
                    continue
                blank = np.full((1, *cells.shape[1:]), 255, np.uint8)
                columns = max(len(r) for r in rows)
                tiles, captions = [], []
                for row in rows:
                    for i in row:
                        tiles.append(cells[i : i + 1])
                        captions.append(self._caption(i))
                    tiles += [blank] * (columns - len(row))
                    captions += [""] * (columns - len(row))
                path = folder / f"{method}_{group}.png"
                save_montage(path, np.concatenate(tiles), captions, title=self._title(method, group),
                             columns=columns, scale=scale)
                written.append(path)
        return written

    def save(self, dest: str | os.PathLike[str], *, overwrite: bool = False,
             inputs: Sequence[str | os.PathLike[str] | None] = ()) -> list[Path]:
        """Write the folder ``dest`` whole or not at all (:class:`cellkit._outputs.OutputFolder`); its files."""
        from cellkit._outputs import OutputFolder

        folder = OutputFolder(dest, inputs=inputs, overwrite=overwrite, owned=EXPLAIN_FILES, kind="explanations")
        with folder.build() as work:
            names = [p.name for p in self.write(work)]
        return [Path(dest) / name for name in names]

    def _rows(self, group: str) -> list[list[int]]:
        where = np.flatnonzero(self.montage == group)
        if group == "errors":
            return [list(where[s : s + 8]) for s in range(0, len(where), 8)]
        key = self.labels if self.labels is not None else self.predicted
        return [list(where[key[where] == c]) for c in self.class_names if np.any(key[where] == c)]

    def _caption(self, i: int) -> str:
        if self.montage[i] == "errors":
            return f"{self.labels[i]}>{self.predicted[i]} {self.confidence[i]:.2f}"
        return f"{self.predicted[i]} {self.confidence[i]:.2f}"

    def _title(self, method: str, group: str) -> str:
        name = METHOD_TITLES.get(method, method)
        if group == "errors":
            return f"{name}: surest errors (true>predicted p)"
        which = "correct " if self.labels is not None else ""
        return f"{name}: surest {which}images, a row per class"

    def _write_csv(self, path: Path) -> Path:
        with atomic_writer(path, "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["montage", "position", "id", "label", "predicted", "confidence"])
            position = {g: 0 for g in _GROUPS}
            for i in range(len(self)):
                group = str(self.montage[i])
                label = "" if self.labels is None else str(self.labels[i])
                writer.writerow([group, position[group], self.ids[i], label, self.predicted[i],
                                 f"{float(self.confidence[i]):.6f}"])
                position[group] += 1
        return path


def select_examples(
    predicted: np.ndarray, confidence: np.ndarray, labels: np.ndarray | None, num_classes: int,
    per_class: int = 8, errors: int = 8,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the explained images: per class, then the errors (each most confident first).

    Per class: up to ``per_class`` correct predictions of each true class (each predicted
    class when ``labels`` is ``None``); errors: up to ``errors`` wrong predictions (none
    without labels). Ties keep the dataset's order.

    Example:
        >>> import numpy as np
        >>> idx, err = select_examples(np.array([0, 1, 1, 0]), np.array([.9, .8, .95, .6]),
        ...                            np.array([0, 1, 0, 0]), 2, per_class=1, errors=1)
        >>> idx.tolist(), err.tolist()
        ([0, 1], [2])
    """
    order = np.argsort(-np.asarray(confidence, np.float64), kind="stable")
    pred = np.asarray(predicted)[order]
    if labels is None:
        chosen = [order[pred == c][:per_class] for c in range(num_classes)]
        return np.concatenate(chosen).astype(np.int64) if chosen else np.zeros(0, np.int64), np.zeros(0, np.int64)
    true = np.asarray(labels)[order]
    chosen = [order[(true == c) & (pred == c)][:per_class] for c in range(num_classes)]
    wrong = order[true != pred][:errors]
    return np.concatenate(chosen).astype(np.int64), wrong.astype(np.int64)


def explain_dataset(
    model: keras.Model | str | os.PathLike[str],
    dataset: Dataset | str | os.PathLike[str],
    *,
    methods: Sequence[str] = METHODS,
    per_class: int = 8,
    errors: int = 8,
    batch_size: int = 64,
    quiet: bool = True,
    class_names: Sequence[str] | None = None,
) -> Explanations:
    """Predict ``dataset``, pick the images to show (module docstring) and explain them by each method.

    Args:
        model: a ``keras.Model`` (0-255 images in, probabilities out), or a ``.keras`` file
            or run folder (its class names are read beside it).
        dataset: a :class:`~cellkit.data.Dataset` or what :func:`cellkit.load` reads.
        methods: some of :data:`cellkit.inference.saliency.METHODS`, in order.
        per_class: images per class (most confident correct ones); ``errors``: most
            confident errors (labelled data only). Either may be 0, not both.
        batch_size: images per prediction batch.
        quiet: no progress bars.
        class_names: the model's class names (default as :func:`cellkit.predict`).

    Raises:
        DataError: the images are not of the model's size, their labels are not among the
            model's classes, or the model cannot be explained by a method (named).
        ValueError: a bad argument.
    """
    methods = tuple(methods)
    if not methods or any(m not in METHODS for m in methods) or len(set(methods)) != len(methods):
        raise ValueError(f"methods must be distinct names among {METHODS}. Received: methods={methods!r}")
    for name, value in (("per_class", per_class), ("errors", errors)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name} must be an int >= 0. Received: {name}={value!r}")
    if per_class == 0 and errors == 0:
        raise ValueError("per_class and errors are both 0: nothing to explain (expected at least one > 0)")
    from cellkit.inference.predictor import predict_dataset

    if isinstance(dataset, (str, os.PathLike)):
        from cellkit.data import load

        dataset = load(dataset, quiet=quiet)
    elif not isinstance(dataset, Dataset):
        dataset = Dataset(image_batch(dataset, "dataset"))
    saved = None
    if not isinstance(model, keras.Model):
        from cellkit.inference.saving import load_model, resolve_model_path, saved_class_names

        saved = resolve_model_path(model)
        model = load_model(saved)
        if class_names is None:
            class_names = saved_class_names(saved, int(model.outputs[0].shape[-1]))
    preds = predict_dataset(model, dataset, batch_size=batch_size, quality=False, quiet=quiet,
                            class_names=class_names)
    names = preds.class_names
    top = np.argmax(preds.probabilities, axis=1) if len(preds) else np.zeros(0, np.int64)
    labelled = "label" in preds.columns
    label_idx = np.asarray([names.index(c) for c in preds["label"]], np.int64) if labelled else None
    chosen, wrong = select_examples(top, preds["confidence"], label_idx, len(names), per_class, errors)
    idx = np.concatenate([chosen, wrong]).astype(np.int64)
    images = dataset.images[idx]
    maps: dict[str, np.ndarray] = {}
    for method in methods:
        try:
            maps[method] = explain(model, images, method=method, classes=top[idx], batch_size=batch_size,
                                   quiet=quiet)
        except DataError as exc:
            if saved is None or exc.path is not None:
                raise
            raise DataError(f"cannot explain with {method}: {exc.reason}", path=saved) from None
    return Explanations(
        images=images,
        montage=np.asarray(["per_class"] * len(chosen) + ["errors"] * len(wrong), dtype=str),
        ids=np.asarray(preds["id"])[idx],
        predicted=np.asarray(preds["predicted"])[idx],
        confidence=np.asarray(preds["confidence"], np.float32)[idx],
        labels=np.asarray(preds["label"])[idx] if labelled else None,
        maps=maps,
        class_names=names,
        source=preds.source,
    )

