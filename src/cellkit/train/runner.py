"""Run a recipe: split, build, fit phase by phase, evaluate, and write the run folder.

:func:`train` orchestrates: it checks the data and the recipe before writing anything,
builds the classifier and its training wrapper, fits each phase with
:func:`~cellkit.train.phases.fit_phase`, restores the best weights, evaluates them on the
test split and leaves every artifact in the run folder (:mod:`cellkit.train.run_dir` lists
the files; :class:`~cellkit.train.run_dir.RunDir` writes ``run.json``).

Reproducibility: the split, the initial weights, the shuffling and the augmentation all
derive from ``recipe.seed`` (``keras.utils.set_random_seed``), so the same recipe, seed and
data give the same split and the same metrics on the same machine and backend.

Ctrl-C: the current epoch is abandoned, the best weights are restored and every artifact is
written from them (``run.json`` status ``"interrupted"``), then :class:`TrainingInterrupted`
(a ``KeyboardInterrupt``) is raised; ``cellkit train`` exits with 130.

Example:
    >>> import tempfile, cellkit
    >>> from cellkit.train import Phase, Recipe, train
    >>> recipe = Recipe(backbone="baseline", augmentation="none",
    ...                 phases=(Phase("scratch", epochs=1, optimizer="adamw", learning_rate=1e-3),))
    >>> result = train(cellkit.load("sample"), recipe, tempfile.mkdtemp(), quiet=True)
    >>> sorted(p.name for p in result.run_dir.iterdir())
    ['best.keras', 'confusion_matrix.png', 'history.csv', 'metrics.json', 'model.keras', ...]
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from cellkit.data import Dataset
from cellkit.data.split import Split, stratified_split
from cellkit.errors import DataError
from cellkit.evaluate.calibration import calibration_summary
from cellkit.evaluate.report import evaluate_model, metrics_from_predictions
from cellkit.inference.predict import predict_proba
from cellkit.inference.saving import save_model
from cellkit.train.callbacks import BestCheckpoint, HistoryRecorder, TimeLimit
from cellkit.train.devices import distribution_scope, precision_policy
from cellkit.train.optim import class_weight_vector
from cellkit.train.phases import build_training_model, fit_phase
from cellkit.train.pipeline import recipe_batches
from cellkit.train.precise_bn import PreciseBatchNorm
from cellkit.train.presets import resolve_recipe
from cellkit.train.recipe import Recipe
from cellkit.train.run_dir import COMPLETE, INTERRUPTED, RunDir, TrainResult

__all__ = ["TrainResult", "TrainingInterrupted", "load_run", "train"]


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`train`; ``result`` holds what was written from the best checkpoint."""

    def __init__(self, result: TrainResult) -> None:
        super().__init__("training interrupted")
        self.result = result


def train(
    data: Dataset | str | os.PathLike[str],
    recipe: Recipe | str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] = "run",
    *,
    overwrite: bool = False,
    quiet: bool = False,
    distribute: bool = False,
    split: Split | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    time_limit: float | None = None,
) -> TrainResult:
    """Train ``recipe`` on ``data`` and write the run folder ``out`` (module docstring).

    Args:
        data: a labelled :class:`~cellkit.data.Dataset`, or what :func:`cellkit.load` reads.
        recipe: the recipe: a :class:`~cellkit.train.Recipe`, a preset name (``"robust"``) or a
            ``.toml``/``.json`` recipe file, as ``cellkit train --recipe`` takes (default
            ``Recipe()``: the baseline CNN from scratch).
        out: the run folder.
        overwrite: allow a non-empty ``out`` (the run's files are replaced).
        quiet: no progress bars or messages.
        distribute: train data-parallel over every local device
            (:func:`cellkit.train.devices.distribution_scope`).
        split: use this split instead of the recipe's stratified one (e.g. a saved
            ``split.json``: the report's split).
        callbacks: extra Keras callbacks, given to every phase's ``fit``.
        time_limit: wall-clock budget in seconds for the training (not the final
            evaluation): no epoch is started that would likely end past it, and remaining
            phases are skipped (``run.json`` records ``"stopped_by_time_limit"``).
            ``None``: the recipe's ``time_limit`` (minutes), if it sets one.

    Raises:
        TrainingInterrupted: on Ctrl-C, after writing the artifacts from the best checkpoint.
        DataError, RecipeError: bad data or recipe (before anything is trained).
    """
    if isinstance(recipe, (str, os.PathLike)):
        recipe = resolve_recipe(recipe)
    recipe = (recipe or Recipe()).resolved()
    dataset, split = _checked(data, recipe, split)
    weights = class_weight_vector(recipe.class_weight, dataset.labels[split.train], dataset.num_classes)
    if time_limit is None and recipe.time_limit is not None:
        time_limit = recipe.time_limit * 60
    limit = None if time_limit is None else TimeLimit(time_limit)
    run = _Run(recipe, dataset, split, RunDir.create(out, overwrite=overwrite), quiet=quiet)
    run.dir.start(recipe, dataset, split, run.class_names)
    interrupted = False
    with precision_policy(recipe.precision) as precision:
        run.dir.update(precision=precision)
        try:
            with distribution_scope(distribute) as dist:
                run.dir.update(distribution=dist.to_dict())
                run.build(weights, dist.replicas)
                run.log(f"training {recipe.backbone} ({recipe.mode}) on {split.train.size} images, validating on "
                        f"{split.val.size}; {precision}, {dist.strategy} x{dist.replicas}")
                run.fit_phases([*callbacks, *([limit] if limit is not None else [])], limit)
        except KeyboardInterrupt:
            interrupted = True
            run.log("interrupted: writing the run's files from the best checkpoint")
        except BaseException as exc:
            run.dir.fail(exc, epochs_run=len(run.history.rows), best_epoch=run.best_epoch)
            raise
        run.dir.end_training(time_limit, limit is not None and limit.exhausted)
        result = run.finish(INTERRUPTED if interrupted else COMPLETE)
    if interrupted:
        raise TrainingInterrupted(result)
    return result


def _checked(data: Dataset | str | os.PathLike[str], recipe: Recipe, split: Split | None) -> tuple[Dataset, Split]:
    """The labelled dataset and its split; bad data, split or recipe fail here, before anything is written."""
    if not isinstance(data, Dataset):
        from cellkit.data import load

        data = load(data)
    if data.labels is None or len(data) == 0:
        raise DataError("training needs labelled images", path=data.source)
    if data.num_classes < 2:
        raise DataError(f"training needs at least 2 classes. Received: {data.num_classes} class(es)", path=data.source)
    if split is None:
        split = stratified_split(data.labels, val=recipe.val, test=recipe.test, seed=recipe.seed)
    elif split.n != len(data):
        raise DataError(f"the split indexes {split.n} images but the data has {len(data)}", path=data.source)
    if split.train.size == 0:
        raise DataError("the split leaves no training images", path=data.source)
    recipe.check_components(data.images.shape[1:])
    return data, split


class _Run:
    """One call of :func:`train`: the run folder, the data, and what the phases share once built."""

    def __init__(self, recipe: Recipe, dataset: Dataset, split: Split, folder: RunDir, *, quiet: bool) -> None:
        self.recipe, self.dataset, self.split, self.dir, self.quiet = recipe, dataset, split, folder, quiet
        self.class_names = dataset.class_names or tuple(str(i) for i in range(dataset.num_classes))
        self.history = HistoryRecorder(folder.history_csv)
        self.monitor = "val_loss" if split.val.size else "loss"
        self.classifier: keras.Model | None = None  # the rest is set by build()
        self.model: keras.Model | None = None
        self.train_batches, self.val_batches = None, None
        self.checkpoint: BestCheckpoint | None = None
        self.precise: PreciseBatchNorm | None = None

    def log(self, message: str) -> None:
        if not self.quiet:
            print(message, file=sys.stderr, flush=True)

    @property
    def best_epoch(self) -> int | None:
        """1-based epoch of the best checkpoint so far."""
        has_best = self.checkpoint is not None and self.checkpoint.has_best
        return self.checkpoint.best_epoch + 1 if has_best and self.checkpoint.best_epoch is not None else None

    def build(self, class_weight: np.ndarray | None, replicas: int) -> None:
        """The batches, the classifier, the model that is fit (augmentation in front) and the run's callbacks."""
        from cellkit.zoo import build_classifier

        recipe, dataset = self.recipe, self.dataset
        self.train_batches, self.val_batches = recipe_batches(dataset, self.split, recipe, class_weight=class_weight,
                                                              replicas=replicas)
        keras.utils.set_random_seed(recipe.seed)
        self.classifier = build_classifier(
            recipe.backbone, num_classes=dataset.num_classes, input_shape=tuple(dataset.images.shape[1:]),
            weights=recipe.weights, head=recipe.head, high_pass=recipe.high_pass,
            backbone_options=recipe.backbone_options, normalize=recipe.normalize,
        )
        self.model = build_training_model(self.classifier, recipe.augmentation, seed=recipe.seed)
        self.checkpoint = BestCheckpoint(self.classifier, self.dir.best_keras, monitor=self.monitor)
        if recipe.precise_bn:
            self.precise = PreciseBatchNorm(self.classifier, dataset.images, self.split.train, recipe.precise_bn,
                                            batch_size=recipe.batch_size, seed=recipe.seed)

    def fit_phases(self, callbacks: Sequence[keras.callbacks.Callback], limit: TimeLimit | None) -> None:
        """Fit the phases in turn, each from the best weights of the ones before."""
        recipe, epochs = self.recipe, 0
        own = [*([self.precise] if self.precise is not None else []), self.checkpoint, self.history]
        self.dir.update(phases=[])
        if limit is not None:
            limit.start()
        for i, phase in enumerate(recipe.phases):
            if limit is not None and limit.exhausted:
                self.log(f"time limit of {limit.seconds:g} s reached: phase {phase.name} skipped")
                break
            self.history.phase = phase.name
            result = fit_phase(
                self.model, phase, self.train_batches, self.val_batches, classifier=self.classifier,
                fine_tune_fraction=recipe.fine_tune_fraction, fine_tune_batch_norm=recipe.fine_tune_batch_norm,
                label_smoothing=recipe.label_smoothing, initial_epoch=epochs, callbacks=[*own, *callbacks],
                monitor=self.monitor, verbose=0 if self.quiet else 1,
                log=lambda line, n=i + 1: self.log(f"phase {n}/{len(recipe.phases)} {line}"),
            )
            epochs += result.epochs_run
            self.dir.add_phase(phase.name, result.epochs_run, result.trainable)
            self.checkpoint.restore()

    def finish(self, status: str) -> TrainResult:
        """Restore the best weights; write the model, the metrics and the figures; close ``run.json``."""
        from cellkit.evaluate.plots import plot_history

        final = self._save_best()
        metrics = {} if final is None else self._evaluate(final)
        curves = self.history.history()
        if self.history.rows:
            plot_history(curves, self.dir.training_curves_png, title=f"{self.recipe.backbone} ({self.recipe.mode})")
        best_epoch = self.best_epoch if final is not None else None
        self.dir.finish(status, epochs_run=len(self.history.rows), best_epoch=best_epoch, monitor=self.monitor,
                        best_value=self.checkpoint.best if final is not None else None, metrics=metrics)
        if not self.quiet:
            where = f"{self.dir.path}" if final is not None else f"{self.dir.path} (no epoch finished: no model written)"
            acc = f"; {metrics['subset']} accuracy {metrics['accuracy']:.4f}" if metrics else ""
            print(f"{status}: {len(self.history.rows)} epochs, best epoch {best_epoch}{acc} -> {where}", file=sys.stderr)
        return TrainResult(
            run_dir=self.dir.path, recipe=self.recipe, split=self.split, model=final, metrics=metrics,
            history=curves, best_epoch=best_epoch, status=status, info=self.dir.info,
        )

    def _save_best(self) -> keras.Model | None:
        """The best weights restored and saved as ``model.keras`` (inside TTA, if any); ``None`` without them."""
        if self.checkpoint is None or self.classifier is None or not self.checkpoint.restore():
            return None
        if self.precise is not None:
            self.precise.recalibrate()  # idempotent after a validation; needed when there was none
        final = self.classifier
        if self.recipe.tta != "none":
            from cellkit.inference.tta import with_tta

            final = with_tta(self.classifier, self.recipe.tta)
        save_model(final, self.dir.model_keras)
        return final

    def _evaluate(self, final: keras.Model) -> dict[str, Any]:
        """Metrics of ``final`` on the test split (else the validation split), with and without TTA, and the
        temperature fitted on the validation split with the ECE before and after it (``cellkit calibrate``)."""
        from cellkit.evaluate.plots import plot_confusion_matrix

        subset, idx = ("test", self.split.test) if self.split.test.size else ("val", self.split.val)
        if not idx.size:
            return {}
        args = (self.dataset.images, self.dataset.labels, self.class_names, idx)
        batch = max(self.recipe.batch_size, 256)
        proba = predict_proba(final, self.dataset.images, idx, batch_size=batch)
        metrics = metrics_from_predictions(self.dataset.labels[idx], proba, self.class_names, subset=subset)
        if self.split.val.size:  # temperature fitted on the validation split; the saved model is unchanged
            val = predict_proba(final, self.dataset.images, self.split.val, batch_size=batch)
            metrics.update(calibration_summary(val, self.dataset.labels[self.split.val], proba,
                                               self.dataset.labels[idx], eval_subset=subset))
        if final is not self.classifier:
            plain = evaluate_model(self.classifier, *args, subset=subset, batch_size=batch)
            metrics["tta"] = self.recipe.tta
            metrics["without_tta"] = {k: plain[k] for k in ("accuracy", "f1_weighted", "f1_macro")}
        self.dir.write_metrics(metrics)
        plot_confusion_matrix(metrics["confusion_matrix"], self.class_names, self.dir.confusion_matrix_png,
                              title=f"{self.recipe.backbone}: {subset} confusion matrix")
        return metrics


def load_run(run_dir: str | os.PathLike[str], *, model: bool = True) -> TrainResult:
    """Read a finished run folder back as a :class:`TrainResult` (what :func:`train` returned).

    Args:
        run_dir: a folder written by :func:`train`.
        model: also load ``model.keras`` (``safe_mode``); ``False`` leaves ``model=None``.

    Raises:
        CellkitError: the folder lacks a run file or a file is unreadable (the message
            names it).

    Example:
        >>> result = load_run("runs/compact")  # doctest: +SKIP
        >>> result.metrics["accuracy"], result.best_epoch  # doctest: +SKIP
        (0.9663, 14)
    """
    return RunDir(run_dir).load(model=model)
