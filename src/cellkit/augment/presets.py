"""Recipe presets for robustness to acquisition shift.

:data:`ROBUST_PRESET` holds the settings of ``--recipe robust``: the strong augmentation
policy, CutMix on half the images of each batch, label smoothing 0.1 and a longer
schedule than ``compact`` (strong augmentation and mixing slow down fitting the training
set), sized to 45 minutes of a 2-core CPU; pass ``--epochs`` for more on faster hardware. Its keys are
fields of :class:`cellkit.train.recipe.Recipe` (``augmentation``, ``mix``, ``mix_alpha``,
``mix_probability``, ``label_smoothing``) plus two settings of the training phases
(``epochs``, ``early_stopping_patience``). Check a model trained with it with
:func:`cellkit.evaluate.robustness.evaluate_robustness`, on the held-out corruption families.

Example:
    >>> from cellkit.augment.presets import ROBUST_PRESET
    >>> ROBUST_PRESET["augmentation"], ROBUST_PRESET["label_smoothing"]
    ('strong', 0.1)
"""

from __future__ import annotations

from typing import Any

__all__ = ["ROBUST_PRESET", "ROBUST_PHASE_KEYS"]

#: Settings of the ``robust`` recipe.
ROBUST_PRESET: dict[str, Any] = {
    "augmentation": "strong",  # cellkit.augment.augmentation_layer(policy=...)
    "mix": "cutmix",  # cellkit.augment.mix_batch(method=...); "mixup" and "none" also work
    "mix_alpha": 1.0,  # Beta(alpha, alpha): uniform mixing ratios
    "mix_probability": 0.5,  # share of the images of a batch that are mixed
    "label_smoothing": 0.1,  # of the cross-entropy (not also in mix_batch)
    # per phase; a 2-core CPU in mixed bfloat16 runs all 32 in 36 minutes (68 s per epoch with fused batch
    # norm and the fused strong-policy ops; 92 s before them), inside the 45-minute budget
    "epochs": 32,
    "early_stopping_patience": 15,
}

#: The keys of :data:`ROBUST_PRESET` that set the training phases, not the recipe itself.
ROBUST_PHASE_KEYS: tuple[str, ...] = ("epochs", "early_stopping_patience")
