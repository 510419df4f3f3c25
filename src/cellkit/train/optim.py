"""Optimizers, learning-rate schedules and class weights of a recipe's phase.

Example:
    >>> from cellkit.train.recipe import Phase
    >>> phase = Phase("transfer", "head", epochs=10, optimizer="lion", learning_rate=5e-4,
    ...               final_learning_rate=1e-5)
    >>> schedule = make_schedule(phase, steps=100)
    >>> round(float(schedule(0)), 6), round(float(schedule(100)), 6)
    (0.0005, 1e-05)
    >>> type(make_optimizer(phase, steps=100)).__name__
    'Lion'
    >>> balanced_class_weights([0, 0, 0, 1], num_classes=2).tolist()
    [0.6666666666666666, 2.0]
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from cellkit.train.recipe import Phase, RecipeError

__all__ = ["balanced_class_weights", "class_weight_vector", "make_optimizer", "make_schedule"]


def make_schedule(phase: Phase, steps: int) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """The phase's learning rate: a float (``"constant"``) or a schedule over ``steps`` steps.

    ``"cosine"`` is :class:`keras.optimizers.schedules.CosineDecay` with
    ``alpha = final / initial``; ``"exponential"`` is
    :class:`keras.optimizers.schedules.ExponentialDecay` with
    ``decay_rate = final / initial`` over ``decay_steps = steps``. Both reach
    ``phase.end_learning_rate`` at step ``steps`` (the end of the phase's last epoch).
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1. Received: steps={steps!r}")
    start, end = phase.learning_rate, phase.end_learning_rate
    if phase.schedule == "constant":
        return start
    if phase.schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(start, decay_steps=steps, alpha=end / start)
    if phase.schedule == "exponential":
        return keras.optimizers.schedules.ExponentialDecay(start, decay_steps=steps, decay_rate=end / start)
    raise RecipeError(f"unknown schedule. Received: schedule={phase.schedule!r}")  # pragma: no cover


def make_optimizer(phase: Phase, steps: int) -> keras.optimizers.Optimizer:
    """A fresh Keras optimizer for ``phase`` whose learning rate follows :func:`make_schedule`."""
    lr = make_schedule(phase, steps)
    kwargs = {} if phase.weight_decay is None else {"weight_decay": phase.weight_decay}
    name = phase.optimizer
    if name == "lion":
        return keras.optimizers.Lion(learning_rate=lr, **kwargs)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate=lr, **kwargs)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=lr, **kwargs)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=lr, momentum=phase.momentum, **kwargs)
    raise RecipeError(f"unknown optimizer. Received: optimizer={name!r}")  # pragma: no cover


def balanced_class_weights(labels: Sequence[int] | np.ndarray, num_classes: int) -> np.ndarray:
    """scikit-learn's ``"balanced"`` weights ``n / (k * n_c)``; 0 for a class absent from ``labels``.

    ``k`` counts the classes present, so the weighted number of samples stays ``n``.
    """
    y = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(y, minlength=num_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(num_classes, dtype=np.float64)
    weights[present] = y.size / (present.sum() * counts[present])
    return weights


def class_weight_vector(
    mode: str | Sequence[float], labels: Sequence[int] | np.ndarray, num_classes: int
) -> np.ndarray | None:
    """The per-class loss weights of a recipe's ``class_weight`` (``None`` for ``"none"``)."""
    if isinstance(mode, str):
        if mode == "none":
            return None
        if mode == "balanced":
            return balanced_class_weights(labels, num_classes)
        raise RecipeError(f"class_weight must be 'balanced', 'none' or a list. Received: class_weight={mode!r}")
    weights = np.asarray(mode, dtype=np.float64)
    if weights.shape != (num_classes,):
        raise RecipeError(
            f"class_weight lists {weights.size} weights but the data has {num_classes} classes. "
            f"Received: class_weight={list(mode)!r}"
        )
    return weights
