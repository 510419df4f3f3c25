"""Fit one phase of a recipe: :func:`fit_phase`, usable without the runner.

A :class:`~cellkit.train.Phase` says what is trainable and how it is optimised.
:func:`fit_phase` makes that part of the model trainable (:func:`set_trainable`: the head on
a frozen backbone, the top ``fine_tune_fraction`` of the backbone, or everything), compiles
the model with the phase's optimizer and learning-rate schedule (:func:`compile_phase`),
adds the phase's early stopping and reduce-on-plateau, and fits it. :func:`cellkit.train.train`
runs its phases through it; a notebook or script can fine-tune a model the same way.

What the phase does not decide comes with its arguments, as in a run: class weights with
the batches (:class:`~cellkit.train.ArrayBatches` ``class_weight``), mixed precision with the
model (build it inside :func:`~cellkit.train.precision_policy`), augmentation with the model
that is fit (:func:`build_training_model`).

Example:
    >>> import keras, numpy as np
    >>> from cellkit.train import ArrayBatches, Phase, fit_phase
    >>> model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Rescaling(1 / 255),
    ...                           keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")])
    >>> images = np.random.default_rng(0).integers(0, 256, (32, 8, 8, 3), dtype=np.uint8)
    >>> batches = ArrayBatches(images, np.arange(32) % 2, batch_size=8, num_classes=2, shuffle=True, seed=0)
    >>> result = fit_phase(model, Phase("scratch", epochs=2, optimizer="adamw", learning_rate=1e-3), batches)
    >>> result.trainable, result.epochs_run, len(result.history["loss"])
    ('every layer trainable', 2, 2)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import keras

from cellkit.errors import CellkitError
from cellkit.train.devices import gpu_available
from cellkit.train.optim import make_optimizer
from cellkit.train.recipe import Phase

__all__ = ["PhaseResult", "build_training_model", "compile_phase", "fit_phase", "set_trainable"]


@dataclass(frozen=True)
class PhaseResult:
    """What :func:`fit_phase` did.

    Attributes:
        phase: the phase that was fit.
        trainable: one line saying what was trainable (also printed in the run's log).
        history: the phase's ``History.history``: one value per epoch for each logged metric.
    """

    phase: Phase
    trainable: str
    history: dict[str, list[float]] = field(default_factory=dict)

    @property
    def epochs_run(self) -> int:
        """Epochs the phase ran (fewer than ``phase.epochs`` after early stopping or a time limit)."""
        return len(self.history.get("loss", []))


def fit_phase(
    model: keras.Model,
    phase: Phase,
    train_data: Any,
    val_data: Any = None,
    *,
    classifier: keras.Model | None = None,
    fine_tune_fraction: float = 0.1,
    fine_tune_batch_norm: bool = False,
    label_smoothing: float = 0.0,
    initial_epoch: int = 0,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    monitor: str | None = None,
    verbose: int | str = 0,
    log: Callable[[str], None] | None = None,
) -> PhaseResult:
    """Make the phase's part of the model trainable, compile the model for the phase and fit it.

    Args:
        model: the model to fit (a zoo classifier, or :func:`build_training_model`'s wrapper
            of one); compiled here, so it may have been compiled for another phase before.
        phase: what is trainable, the optimizer, the schedule, the epochs, early stopping
            and reduce-on-plateau.
        train_data: batches with a length (batches per epoch), such as
            :class:`~cellkit.train.ArrayBatches`: ``(images, one-hot labels[, sample
            weights])``. Fit with ``shuffle=False``: the batches shuffle themselves.
        val_data: validation batches, or ``None``.
        classifier: the zoo classifier inside ``model`` whose backbone ``"head"`` and
            ``"fine_tune"`` phases freeze (default: ``model`` itself).
        fine_tune_fraction: fraction of the backbone's parameters that a ``"fine_tune"``
            phase unfreezes (:func:`cellkit.zoo.fine_tune`).
        fine_tune_batch_norm: a ``"fine_tune"`` phase also trains the batch-norm layers of
            the unfrozen span.
        label_smoothing: of the categorical cross-entropy.
        initial_epoch: epochs already run before this phase (epoch numbers go on across
            the phases of a run).
        callbacks: Keras callbacks for this ``fit``, run before the phase's own early
            stopping and reduce-on-plateau.
        monitor: what early stopping and reduce-on-plateau watch (default: ``"val_loss"``
            with validation data, else ``"loss"``).
        verbose: Keras's ``verbose`` of ``fit`` (0: silent).
        log: called once, before fitting, with one line: the phase's name, what is
            trainable, the optimizer and the learning rate.

    Returns:
        a :class:`PhaseResult` with the phase's history.
    """
    classifier = model if classifier is None else classifier
    trainable = set_trainable(classifier, phase, fine_tune_fraction, fine_tune_batch_norm)
    if log is not None:
        log(f"{phase.name}: {trainable}; {_describe(phase)}")
    try:
        steps = len(train_data) * phase.epochs
    except TypeError:
        raise CellkitError(
            f"train_data must have a length (batches per epoch), as ArrayBatches has. Received: {type(train_data)}"
        ) from None
    compile_phase(model, phase, steps, label_smoothing)
    monitor = monitor or ("val_loss" if val_data is not None else "loss")
    fit = model.fit(
        train_data,
        validation_data=val_data,
        initial_epoch=initial_epoch,
        epochs=initial_epoch + phase.epochs,
        callbacks=[*callbacks, *_phase_callbacks(phase, monitor)],
        shuffle=False,
        verbose=verbose,
    )
    return PhaseResult(phase=phase, trainable=trainable, history=dict(fit.history))


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


def _describe(phase: Phase) -> str:
    lr = f"{phase.learning_rate:g}"
    if phase.schedule != "constant":
        lr += f" -> {phase.end_learning_rate:g} ({phase.schedule})"
    return f"{phase.optimizer}, learning rate {lr}, up to {phase.epochs} epochs"
