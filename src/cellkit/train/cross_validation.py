"""K-fold cross-validation: one run per fold, and every image's out-of-fold probabilities.

:func:`train_folds` (``cellkit train --folds K``) splits the labelled images into ``K``
stratified folds and trains the recipe ``K`` times with :func:`cellkit.train.train`: run
``i`` is tested on fold ``i`` and validates on ``recipe.val`` of the other folds (stratified).
Near-duplicate images (:func:`cellkit.quality.duplicates.duplicate_groups`) stay within one
fold and one part by default: a copy on the training side would make its twin's
out-of-fold prediction look certain. The folder ``out``:

======================  ==================================================================
``fold-1`` ... ``-K``   the run folders (:mod:`cellkit.train.run_dir`)
``oof.npz``             ``ids``, ``labels``, ``class_names``, ``fold`` and ``probabilities``:
                        each image's class probabilities from the run that never saw it
``ensemble.keras``      the ``K`` models averaged (:func:`cellkit.inference.ensemble.build_ensemble`)
``cv.json``             each fold's test accuracy, their mean and standard deviation, the
                        folds' sizes, the duplicate groups; written last, so its presence
                        says the folder is complete and consistent
======================  ==================================================================

A failed or interrupted fold leaves its run folder (``run.json`` says so) and none of the
three files; :func:`load_folds` refuses a folder without ``cv.json``. The out-of-fold
probabilities are what :func:`cellkit.quality.labels.find_label_issues` (``cellkit inspect
--labels-from OUT``) reads to find likely label errors.

Example:
    >>> import tempfile, cellkit
    >>> from cellkit.train import Recipe
    >>> data = cellkit.load("sample").subset(range(0, 480, 3))
    >>> cv = train_folds(data, Recipe(backbone="baseline").with_epochs(1), tempfile.mkdtemp(), folds=2,
    ...                  quiet=True, ensemble=False)
    >>> cv.probabilities.shape == (len(data), data.num_classes), len(cv.accuracies)
    (True, 2)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cellkit._io import atomic_path, atomic_save_npz, atomic_write_json
from cellkit.data import Dataset
from cellkit.data.split import Split, stratified_kfold, stratified_split
from cellkit.errors import DataError

__all__ = ["CV_JSON", "OOF_NPZ", "CrossValidation", "load_folds", "train_folds"]

CV_JSON = "cv.json"
OOF_NPZ = "oof.npz"
ENSEMBLE_KERAS = "ensemble.keras"


@dataclass(frozen=True)
class CrossValidation:
    """What :func:`train_folds` produced (and :func:`load_folds` reads back).

    Attributes:
        out: the folder.
        ids: image ids, in the data's order.
        labels: the given labels (``int64``).
        class_names: the class names.
        fold: each image's test fold (0-based).
        probabilities: ``(n, k)`` out-of-fold class probabilities.
        accuracies: each fold's test accuracy (of the probabilities in ``oof.npz``; the same
            images and model as that run's ``metrics.json``).
        info: the contents of ``cv.json``.
    """

    out: Path
    ids: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    fold: np.ndarray
    probabilities: np.ndarray
    accuracies: tuple[float, ...]
    info: dict[str, Any]

    @property
    def oof_accuracy(self) -> float:
        """Accuracy of the out-of-fold predictions over every image."""
        return float(np.mean(np.argmax(self.probabilities, axis=1) == self.labels))

    def __str__(self) -> str:
        acc = np.asarray(self.accuracies)
        return (f"{len(acc)} folds: test accuracy {acc.mean():.4f} +- {acc.std(ddof=1) if len(acc) > 1 else 0:.4f} "
                f"(per fold {', '.join(f'{a:.4f}' for a in acc)}); out-of-fold {self.oof_accuracy:.4f}")


def fold_splits(labels: np.ndarray, folds: int, val: float | int, seed: int,
                groups: np.ndarray | None) -> list[Split]:
    """One :class:`~cellkit.data.split.Split` per fold: that fold is the test part, ``val`` of the rest validates."""
    splits = []
    for rest, test in stratified_kfold(labels, folds, seed=seed, groups=groups):
        inner = stratified_split(labels[rest], val=val, test=0, seed=seed,
                                 groups=None if groups is None else groups[rest])
        splits.append(Split(rest[inner.train], rest[inner.val], test, seed=seed, val_size=val, test_size=len(test)))
    return splits


def train_folds(
    data: Dataset | str | os.PathLike[str],
    recipe: Any = None,
    out: str | os.PathLike[str] = "cv",
    *,
    folds: int = 5,
    group_duplicates: bool = True,
    ensemble: bool = True,
    overwrite: bool = False,
    quiet: bool = False,
    time_limit: float | None = None,
) -> CrossValidation:
    """Train ``recipe`` on ``folds`` folds of ``data`` into ``out`` (module docstring).

    Args:
        data: a labelled :class:`~cellkit.data.Dataset`, or what :func:`cellkit.load` reads.
        recipe: the recipe (a :class:`~cellkit.train.Recipe`; default ``Recipe()``). Its
            ``val`` is the share of the other folds each run validates on; its ``test`` is
            not used (each fold is a test part); its ``seed`` seeds the folds too.
        out: the folder (new or empty, unless ``overwrite``).
        folds: ``K >= 2``.
        group_duplicates: keep near-duplicate images within one fold and one part.
        ensemble: also save the ``K`` models averaged as ``ensemble.keras``.
        overwrite: replace the files of an earlier cross-validation in ``out``.
        quiet: no progress bars or messages.
        time_limit: wall-clock budget in seconds of each fold's training (default: the
            recipe's ``time_limit``).

    Raises:
        DataError: unlabelled data, or a non-empty ``out`` without ``overwrite``.
        TrainingInterrupted: on Ctrl-C (the interrupted fold's folder is kept; no ``cv.json``).
    """
    from cellkit.data import load
    from cellkit.inference.predict import predict_proba
    from cellkit.train.recipe import Recipe
    from cellkit.train.runner import train

    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise ValueError(f"folds must be an integer >= 2. Received: folds={folds!r}")
    recipe = (recipe or Recipe()).resolved()
    dataset = data if isinstance(data, Dataset) else load(data, quiet=quiet)
    if dataset.labels is None or len(dataset) == 0:
        raise DataError("cross-validation needs labelled images", path=dataset.source)
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise DataError(f"the folder {out} is not empty (expected a new or empty folder, or overwrite=True)",
                        path=out)
    out.mkdir(parents=True, exist_ok=True)
    if overwrite:
        (out / CV_JSON).unlink(missing_ok=True)  # the marker first: the folder is incomplete from now on
    groups = None
    if group_duplicates:
        from cellkit.quality.duplicates import duplicate_groups

        groups = np.asarray(duplicate_groups(dataset.images), dtype=np.int64)
    labels = np.asarray(dataset.labels, dtype=np.int64)
    splits = fold_splits(labels, int(folds), recipe.val, recipe.seed, groups)
    k = dataset.num_classes
    probabilities = np.zeros((len(dataset), k), np.float32)
    fold = np.full(len(dataset), -1, np.int64)
    accuracies, models, runs = [], [], []
    for i, split in enumerate(splits):
        if not quiet:
            print(f"fold {i + 1}/{folds}: training on {split.train.size} images, testing on {split.test.size}")
        result = train(dataset, recipe, out / f"fold-{i + 1}", overwrite=overwrite, quiet=quiet, split=split,
                       time_limit=time_limit)
        probabilities[split.test] = predict_proba(result.model, dataset.images, split.test)
        fold[split.test] = i
        accuracies.append(float(np.mean(np.argmax(probabilities[split.test], axis=1) == labels[split.test])))
        models.append(result.model)
        runs.append(f"fold-{i + 1}")
    atomic_save_npz(out / OOF_NPZ, ids=np.asarray(dataset.ids, dtype=str), labels=labels,
                    class_names=np.asarray(dataset.class_names, dtype=str), fold=fold, probabilities=probabilities)
    if ensemble:
        from cellkit.inference.ensemble import build_ensemble

        with atomic_path(out / ENSEMBLE_KERAS, suffix=".keras") as tmp:
            build_ensemble(models, name="cv_ensemble").save(tmp)
    acc = np.asarray(accuracies)
    info = {
        "status": "complete",
        "folds": int(folds),
        "runs": runs,
        "test_accuracy": accuracies,
        "mean_test_accuracy": float(acc.mean()),
        "std_test_accuracy": float(acc.std(ddof=1)),
        "oof_accuracy": float(np.mean(np.argmax(probabilities, axis=1) == labels)),
        "fold_sizes": [int(s.test.size) for s in splits],
        "group_duplicates": bool(group_duplicates),
        "duplicate_groups": 0 if groups is None else int(np.unique(groups[groups >= 0]).size),
        "ensemble": ENSEMBLE_KERAS if ensemble else None,
        "n_images": len(dataset),
        "source": str(dataset.source),
        "recipe": recipe.to_dict(),
    }
    atomic_write_json(out / CV_JSON, info)
    return load_folds(out)


def load_folds(out: str | os.PathLike[str]) -> CrossValidation:
    """Read the folder :func:`train_folds` wrote; :class:`~cellkit.errors.DataError` naming the file if incomplete."""
    import json

    out = Path(out)
    cv_json = out / CV_JSON
    if not cv_json.is_file():
        raise DataError(f"no {CV_JSON}: not a finished cross-validation (expected the folder of "
                        "`cellkit train --folds K`)", path=out)
    try:
        info = json.loads(cv_json.read_text())
        with np.load(out / OOF_NPZ, allow_pickle=False) as z:
            arrays = {name: z[name] for name in ("ids", "labels", "class_names", "fold", "probabilities")}
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"cannot read the cross-validation's {CV_JSON} / {OOF_NPZ} ({exc}); expected the files "
                        "`cellkit train --folds K` writes", path=out) from None
    n = len(arrays["ids"])
    if arrays["probabilities"].shape != (n, len(arrays["class_names"])) or info.get("n_images") != n:
        raise DataError(f"{OOF_NPZ} does not match {CV_JSON} (expected {info.get('n_images')} images)", path=out)
    return CrossValidation(out, arrays["ids"], arrays["labels"].astype(np.int64),
                           tuple(str(c) for c in arrays["class_names"]), arrays["fold"].astype(np.int64),
                           arrays["probabilities"].astype(np.float32), tuple(info["test_accuracy"]), info)
