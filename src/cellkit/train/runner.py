"""Run a recipe: split, build, train phase by phase, and write the run folder.

A run writes one folder (``out``); every file is written atomically:

=========================  ===========================================================
``recipe.json``, ``.toml``  the resolved recipe (mode and phases filled in)
``split.json``             the stratified split (indices and image ids)
``run.json``               status (running / complete / interrupted / failed), timing
                           (``training_seconds``: the phases; ``seconds``: the whole run),
                           precision, distribution, versions, hardware, best epoch
``history.csv``            one row per epoch: phase, losses, metrics, learning rate
``best.keras``             the best model so far (lowest validation loss), rewritten at
                           every improvement: Ctrl-C or a crash never loses it
``model.keras``            the final model: the best weights over the whole run (inside the recipe's
                           test-time augmentation when ``tta`` is set: :mod:`cellkit.inference.tta`)
``metrics.json``           test metrics (:mod:`cellkit.evaluate.report`)
``confusion_matrix.png``   test confusion matrix
``training_curves.png``    loss, accuracy and learning rate per epoch
=========================  ===========================================================

An existing, non-empty ``out`` is refused unless ``overwrite=True`` (then only the files
above are replaced; anything else in the folder is left alone). Writing in place rather
than to a temporary folder renamed at the end is deliberate: the best checkpoint of an
interrupted or crashed run stays where the run was asked to write, and ``run.json`` says
whether the run completed.

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

import datetime as _dt
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from cellkit._io import atomic_write_json
from cellkit.augment import describe_policy
from cellkit.data import Dataset
from cellkit.data.split import Split, stratified_split
from cellkit.errors import CellkitError, DataError
from cellkit.evaluate.report import evaluate_model
from cellkit.inference.saving import save_model
from cellkit.train.callbacks import BestCheckpoint, HistoryRecorder, TimeLimit
from cellkit.train.devices import DistributionInfo, distribution_scope, gpu_available, precision_policy
from cellkit.train.optim import class_weight_vector, make_optimizer
from cellkit.train.pipeline import ArrayBatches
from cellkit.train.precise_bn import PreciseBatchNorm
from cellkit.train.recipe import Phase, Recipe

__all__ = [
    "RUN_FILES",
    "TrainResult",
    "TrainingInterrupted",
    "build_training_model",
    "compile_phase",
    "load_run",
    "prepare_run_dir",
    "set_trainable",
    "train",
]

#: The files a run writes (and ``overwrite`` replaces).
RUN_FILES: tuple[str, ...] = (
    "recipe.json",
    "recipe.toml",
    "split.json",
    "run.json",
    "history.csv",
    "best.keras",
    "model.keras",
    "metrics.json",
    "confusion_matrix.png",
    "training_curves.png",
)


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` produced.

    Attributes:
        run_dir: the run folder.
        recipe: the resolved recipe that was run.
        split: the train / validation / test split.
        model: the final inference model, as saved in ``model.keras`` (best weights; no
            training augmentation; inside the recipe's test-time augmentation, if any).
        metrics: the metrics written to ``metrics.json`` (empty when nothing was evaluated).
        history: ``History.history``-style dict over all phases (and ``learning_rate``).
        best_epoch: 1-based global epoch of the best weights (``None`` if none finished).
        status: ``"complete"`` or ``"interrupted"``.
        info: the contents of ``run.json``.
    """

    run_dir: Path
    recipe: Recipe
    split: Split
    model: keras.Model | None
    metrics: dict[str, Any]
    history: dict[str, list[float]]
    best_epoch: int | None
    status: str
    info: dict[str, Any] = field(default_factory=dict)


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`train`; ``result`` holds what was written from the best checkpoint."""

    def __init__(self, result: TrainResult) -> None:
        super().__init__("training interrupted")
        self.result = result


# --------------------------------------------------------------------------- building blocks


def prepare_run_dir(out: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Create ``out``; refuse a non-empty one unless ``overwrite`` (then remove :data:`RUN_FILES` only)."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise CellkitError(f"{path}: exists and is not a folder (expected a new or empty run folder)")
    if path.is_dir() and any(path.iterdir()):
        if not overwrite:
            raise CellkitError(
                f"{path}: run folder exists and is not empty; choose another --out or pass --overwrite "
                "(which replaces the run's files)"
            )
        for name in RUN_FILES:
            (path / name).unlink(missing_ok=True)
    path.mkdir(parents=True, exist_ok=True)
    return path


def build_training_model(classifier: keras.Model, augmentation: str = "none", seed: int | None = None) -> keras.Model:
    """Wrap ``classifier`` for training: ``image -> [augmentation] -> classifier``.

    The augmentation layer acts only when ``training=True``; the classifier (the model that
    is saved) never contains it, so the saved model predicts deterministically. The wrapper
    shares the classifier's weights and is the model that is compiled (the classifier stays
    uncompiled, so its ``.keras`` file holds no optimizer state).
    """
    spec = classifier.inputs[0]
    inputs = keras.Input(shape=tuple(spec.shape[1:]), dtype=spec.dtype, name="image")
    x = inputs
    if augmentation != "none":
        try:
            from cellkit.augment import augmentation_layer
        except ModuleNotFoundError as exc:  # pragma: no cover - the augment module ships with cellkit
            raise CellkitError(
                f"augmentation={augmentation!r} needs cellkit.augment, which is not installed; "
                "use augmentation='none'"
            ) from exc
        x = augmentation_layer(augmentation, seed=seed)(x)
    outputs = classifier(x)
    return keras.Model(inputs, outputs, name="training_model")


def set_trainable(
    classifier: keras.Model, phase: Phase, fine_tune_fraction: float, fine_tune_batch_norm: bool = False
) -> str:
    """Make the phase's part of ``classifier`` trainable; return a one-line description."""
    from cellkit.zoo import fine_tune, freeze_backbone

    if phase.trainable == "head":
        report = freeze_backbone(classifier)
        return f"backbone frozen ({report.total_parameters:,} parameters), head trainable"
    if phase.trainable == "fine_tune":
        return str(fine_tune(classifier, fine_tune_fraction, train_batch_norm=fine_tune_batch_norm))
    classifier.trainable = True
    return "every layer trainable"


def compile_phase(model: keras.Model, phase: Phase, steps: int, label_smoothing: float = 0.0) -> None:
    """Compile ``model`` with the phase's optimizer and schedule over ``steps`` steps.

    XLA compilation (``jit_compile``) is left to Keras (``"auto"``) on a GPU and turned off
    on a CPU-only machine, where XLA's convolutions measured about 2x slower than the
    default kernels for the report's CNNs and compiling costs seconds per phase.
    """
    model.compile(
        optimizer=make_optimizer(phase, steps),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
        metrics=["accuracy"],
        jit_compile="auto" if gpu_available() else False,
    )


def _phase_callbacks(phase: Phase, monitor: str) -> list[keras.callbacks.Callback]:
    out: list[keras.callbacks.Callback] = []
    if phase.early_stopping_patience is not None:
        out.append(keras.callbacks.EarlyStopping(monitor=monitor, patience=phase.early_stopping_patience))
    if phase.reduce_lr_patience is not None:
        out.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor=monitor,
                factor=phase.reduce_lr_factor,
                patience=phase.reduce_lr_patience,
                min_lr=phase.min_learning_rate,
                verbose=0,
            )
        )
    return out


def _describe_phase(phase: Phase) -> str:
    lr = f"{phase.learning_rate:g}"
    if phase.schedule != "constant":
        lr += f" -> {phase.end_learning_rate:g} ({phase.schedule})"
    return f"{phase.optimizer}, learning rate {lr}, up to {phase.epochs} epochs"


# --------------------------------------------------------------------------- train


def train(
    data: Dataset | str | os.PathLike[str],
    recipe: Recipe | None = None,
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
        recipe: the recipe (default ``Recipe()``: the baseline CNN from scratch).
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

    Raises:
        TrainingInterrupted: on Ctrl-C, after writing the artifacts from the best checkpoint.
        DataError, RecipeError: bad data or recipe (before anything is trained).
    """
    recipe = (recipe or Recipe()).resolved()
    dataset = data if isinstance(data, Dataset) else _load(data)
    if dataset.labels is None or len(dataset) == 0:
        raise DataError("training needs labelled images", path=dataset.source)
    num_classes = dataset.num_classes
    if num_classes < 2:
        raise DataError(f"training needs at least 2 classes. Received: {num_classes} class(es)", path=dataset.source)
    class_names = dataset.class_names or tuple(str(i) for i in range(num_classes))
    if split is None:
        split = stratified_split(dataset.labels, val=recipe.val, test=recipe.test, seed=recipe.seed)
    elif split.n != len(dataset):
        raise DataError(f"the split indexes {split.n} images but the data has {len(dataset)}", path=dataset.source)
    if split.train.size == 0:
        raise DataError("the split leaves no training images", path=dataset.source)

    recipe.check_components(dataset.images.shape[1:])
    run_dir = prepare_run_dir(out, overwrite)
    recipe.save(run_dir / "recipe.json")
    recipe.save(run_dir / "recipe.toml")
    split.save(run_dir / "split.json", ids=dataset.ids)
    log = _logger(quiet)
    started = time.time()
    info: dict[str, Any] = {
        "status": "running",
        "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "data": {"source": dataset.source, "images": len(dataset), "class_names": list(class_names),
                 "split": split.sizes()},
        "environment": _environment(),
        "augmentation": describe_policy(recipe.augmentation),
    }
    atomic_write_json(run_dir / "run.json", info)

    monitor = "val_loss" if split.val.size else "loss"
    images, labels = dataset.images, dataset.labels
    weights = class_weight_vector(recipe.class_weight, labels[split.train], num_classes)
    history = HistoryRecorder(run_dir / "history.csv")
    checkpoint: BestCheckpoint | None = None
    precise: PreciseBatchNorm | None = None
    classifier: keras.Model | None = None
    epochs_done = 0
    interrupted = False
    limit = None if time_limit is None else TimeLimit(time_limit)
    with precision_policy(recipe.precision) as precision:
        info["precision"] = precision
        try:
            with distribution_scope(distribute) as dist:
                info["distribution"] = dist.to_dict()
                atomic_write_json(run_dir / "run.json", info)
                # Data-parallel steps need equal shares per device: full training batches only
                # (the last, smaller batch of an epoch is left out; the order changes every
                # epoch) and validation batches divisible by the number of devices (fewer than
                # `replicas` validation images may be left out; the test metrics use them all).
                drop = dist.replicas > 1
                train_batches = ArrayBatches(
                    images, labels, indices=split.train, batch_size=recipe.batch_size, num_classes=num_classes,
                    shuffle=True, seed=recipe.seed, class_weight=weights, mix=recipe.mix, mix_alpha=recipe.mix_alpha,
                    mix_probability=recipe.mix_probability, drop_remainder=drop,
                )
                if len(train_batches) == 0:
                    raise DataError(
                        f"{split.train.size} training images make no full batch of {recipe.batch_size} "
                        f"on {dist.replicas} devices; lower batch_size", path=dataset.source)
                val_batches = None
                if split.val.size:
                    val_batches = ArrayBatches(
                        images, labels, indices=split.val, batch_size=_eval_batch(recipe.batch_size, split.val.size,
                                                                                  dist, drop),
                        num_classes=num_classes, drop_remainder=drop,
                    )
                keras.utils.set_random_seed(recipe.seed)
                from cellkit.zoo import build_classifier

                classifier = build_classifier(
                    recipe.backbone, num_classes=num_classes, input_shape=tuple(images.shape[1:]),
                    weights=recipe.weights, head=recipe.head, high_pass=recipe.high_pass,
                    backbone_options=recipe.backbone_options, normalize=recipe.normalize,
                )
                training_model = build_training_model(classifier, recipe.augmentation, seed=recipe.seed)
                checkpoint = BestCheckpoint(classifier, run_dir / "best.keras", monitor=monitor)
                if recipe.precise_bn:
                    precise = PreciseBatchNorm(classifier, images, split.train, recipe.precise_bn,
                                               batch_size=recipe.batch_size, seed=recipe.seed)
                log(f"training {recipe.backbone} ({recipe.mode}) on {split.train.size} images, validating on "
                    f"{split.val.size}; {precision}, {dist.strategy} x{dist.replicas}")
                info["phases"] = []
                if limit is not None:
                    limit.start()
                for i, phase in enumerate(recipe.phases):
                    if limit is not None and limit.exhausted:
                        log(f"time limit of {time_limit:g} s reached: phase {phase.name} skipped")
                        break
                    trainable = set_trainable(classifier, phase, recipe.fine_tune_fraction,
                                              recipe.fine_tune_batch_norm)
                    log(f"phase {i + 1}/{len(recipe.phases)} {phase.name}: {trainable}; {_describe_phase(phase)}")
                    compile_phase(training_model, phase, len(train_batches) * phase.epochs, recipe.label_smoothing)
                    history.phase = phase.name
                    fit = training_model.fit(
                        train_batches,
                        validation_data=val_batches,
                        initial_epoch=epochs_done,
                        epochs=epochs_done + phase.epochs,
                        callbacks=[*([precise] if precise is not None else []), checkpoint, history,
                                   *_phase_callbacks(phase, monitor), *callbacks,
                                   *([limit] if limit is not None else [])],
                        shuffle=False,
                        verbose=0 if quiet else 1,
                    )
                    ran = len(fit.history.get("loss", []))
                    epochs_done += ran
                    info["phases"].append({"name": phase.name, "epochs_run": ran, "trainable": trainable})
                    checkpoint.restore()
        except KeyboardInterrupt:
            interrupted = True
            log("interrupted: writing the run's files from the best checkpoint")
        except BaseException as exc:
            info.update(status="failed", error=f"{type(exc).__name__}: {exc}", seconds=round(time.time() - started, 1),
                        epochs_run=len(history.rows))
            if checkpoint is not None and checkpoint.has_best:
                info["best_epoch"] = checkpoint.best_epoch + 1
            atomic_write_json(run_dir / "run.json", info)
            raise

        info["training_seconds"] = round(time.time() - started, 1)
        if limit is not None:
            info["time_limit_seconds"] = time_limit
            info["stopped_by_time_limit"] = limit.exhausted
        result = _finish(run_dir, recipe, split, dataset, class_names, classifier, checkpoint, history, info,
                         interrupted=interrupted, started=started, monitor=monitor,
                         quiet=quiet, precise=precise)
    if interrupted:
        raise TrainingInterrupted(result)
    return result


def _finish(
    run_dir: Path, recipe: Recipe, split: Split, dataset: Dataset, class_names: Sequence[str],
    classifier: keras.Model | None, checkpoint: BestCheckpoint | None, history: HistoryRecorder,
    info: dict[str, Any], *, interrupted: bool, started: float, monitor: str, quiet: bool,
    precise: PreciseBatchNorm | None = None,
) -> TrainResult:
    """Restore the best weights and write model, metrics and figures; update ``run.json``."""
    from cellkit.evaluate.plots import plot_confusion_matrix, plot_history

    status = "interrupted" if interrupted else "complete"
    has_best = checkpoint is not None and checkpoint.restore()
    if has_best and precise is not None and classifier is not None:
        precise.recalibrate()  # idempotent after a validation; needed when there was none
    metrics: dict[str, Any] = {}
    final = classifier
    best_epoch = checkpoint.best_epoch + 1 if has_best and checkpoint.best_epoch is not None else None
    if has_best and classifier is not None:
        if recipe.tta != "none":
            from cellkit.inference.tta import with_tta

            final = with_tta(classifier, recipe.tta)
        save_model(final, run_dir / "model.keras")
        subset, idx = ("test", split.test) if split.test.size else ("val", split.val)
        if idx.size:
            batch = max(recipe.batch_size, 256)
            metrics = evaluate_model(final, dataset.images, dataset.labels, class_names, idx, subset=subset,
                                     batch_size=batch)
            if final is not classifier:
                plain = evaluate_model(classifier, dataset.images, dataset.labels, class_names, idx, subset=subset,
                                       batch_size=batch)
                metrics["tta"] = recipe.tta
                metrics["without_tta"] = {k: plain[k] for k in ("accuracy", "f1_weighted", "f1_macro")}
            atomic_write_json(run_dir / "metrics.json", metrics)
            plot_confusion_matrix(metrics["confusion_matrix"], class_names, run_dir / "confusion_matrix.png",
                                  title=f"{recipe.backbone}: {subset} confusion matrix")
    curves = history.history()
    if history.rows:
        plot_history(curves, run_dir / "training_curves.png", title=f"{recipe.backbone} ({recipe.mode})")
    info.update(
        status=status,
        seconds=round(time.time() - started, 1),
        epochs_run=len(history.rows),
        best_epoch=best_epoch,
        monitor=monitor,
        best_value=checkpoint.best if has_best and checkpoint is not None else None,
    )
    if metrics:
        info["metrics"] = {k: metrics[k] for k in ("subset", "accuracy", "precision_weighted", "recall_weighted",
                                                  "f1_weighted", "f1_macro")}
    atomic_write_json(run_dir / "run.json", info)
    if not quiet:
        where = f"{run_dir}" if has_best else f"{run_dir} (no epoch finished: no model written)"
        acc = f"; {metrics['subset']} accuracy {metrics['accuracy']:.4f}" if metrics else ""
        print(f"{status}: {len(history.rows)} epochs, best epoch {best_epoch}{acc} -> {where}", file=sys.stderr)
    return TrainResult(
        run_dir=run_dir, recipe=recipe, split=split, model=final if has_best else None, metrics=metrics,
        history=curves, best_epoch=best_epoch, status=status, info=info,
    )


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
    import json

    from cellkit.inference.saving import load_model
    from cellkit.train.callbacks import read_history
    from cellkit.train.recipe import load_recipe

    folder = Path(run_dir)
    for name in ("run.json", "recipe.json", "split.json", "history.csv"):
        if not (folder / name).is_file():
            raise CellkitError(f"{folder / name}: missing; {folder} is not a finished cellkit run folder")
    try:
        info = json.loads((folder / "run.json").read_text(encoding="utf-8"))
        metrics_path = folder / "metrics.json"
        metrics = json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.is_file() else {}
    except ValueError as exc:
        raise CellkitError(f"{folder}: unreadable run.json or metrics.json ({exc})") from None
    has_model = model and (folder / "model.keras").is_file()
    return TrainResult(
        run_dir=folder, recipe=load_recipe(folder / "recipe.json"), split=Split.load(folder / "split.json"),
        model=load_model(folder / "model.keras") if has_model else None, metrics=metrics,
        history=read_history(folder / "history.csv"), best_epoch=info.get("best_epoch"),
        status=info.get("status", "unknown"), info=info,
    )


# --------------------------------------------------------------------------- helpers


def _load(data: str | os.PathLike[str]) -> Dataset:
    from cellkit.data import load

    return load(data)


def _eval_batch(batch_size: int, n: int, dist: DistributionInfo, drop: bool) -> int:
    """Validation batch size; when data-parallel (``drop``), a multiple of the devices that fits ``n``."""
    if not drop:
        return batch_size
    per = max(1, min(batch_size, n) // dist.replicas)
    return per * dist.replicas


def _logger(quiet: bool):  # noqa: ANN202
    def log(message: str) -> None:
        if not quiet:
            print(message, file=sys.stderr, flush=True)

    return log


def _environment() -> dict[str, Any]:
    from cellkit import __version__

    return {
        "cellkit": __version__,
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }
