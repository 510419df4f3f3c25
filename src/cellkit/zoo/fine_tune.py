"""Transfer learning then fine-tuning: freeze the backbone, later unfreeze its top fraction.

The report unfreezes a percentage of the backbone's parameters (1 % to 30 %, Table 2).
:func:`fine_tune` does that, counting parameters from the output side, to within
:data:`TOLERANCE` of the percentage: a layer too large to fit is passed over and smaller
ones further down fill the share (1 % of ConvNeXt-Tiny is smaller than one of its top
pointwise convolutions, which would make it 8.5 %). It keeps
every ``BatchNormalization`` layer frozen (the Keras transfer-learning guide: a frozen BN
layer runs in inference mode, so fine-tuning does not wreck its statistics).

Recompile the model after either call: Keras reads ``trainable`` when compiling.

Example:
    >>> from cellkit.zoo import build_classifier
    >>> model = build_classifier("compact_resnet")
    >>> freeze_backbone(model).unfrozen_parameters
    0
    >>> report = fine_tune(model, 0.3)
    >>> abs(report.achieved_fraction - 0.3) <= TOLERANCE * 0.3
    True
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import keras
import numpy as np

from cellkit.zoo.classifier import get_backbone_layer

__all__ = ["TOLERANCE", "FineTuneReport", "fine_tune", "freeze_backbone"]

#: :func:`fine_tune` unfreezes between ``(1 - TOLERANCE)`` and ``(1 + TOLERANCE)`` times the
#: requested share of the parameters whenever the backbone has layers small enough for it.
TOLERANCE = 0.25


@dataclass(frozen=True)
class FineTuneReport:
    """What :func:`fine_tune` (or :func:`freeze_backbone`) left trainable in the backbone.

    Attributes:
        requested_fraction: the ``fraction`` asked for (0 for ``freeze_backbone``).
        achieved_fraction: ``unfrozen_parameters / total_parameters``.
        unfrozen_parameters: trainable parameters of the unfrozen backbone layers.
        total_parameters: parameters of the backbone that training could update
            (weights of every layer, batch-norm scales and offsets included; batch-norm
            moving statistics and other non-trainable variables excluded).
        unfrozen_layers: names of the unfrozen layers, from the output side.
        frozen_batch_norm: batch-norm layers within the unfrozen span, kept frozen.
    """

    requested_fraction: float
    achieved_fraction: float
    unfrozen_parameters: int
    total_parameters: int
    unfrozen_layers: tuple[str, ...]
    frozen_batch_norm: tuple[str, ...]

    def __str__(self) -> str:
        return (
            f"unfroze {len(self.unfrozen_layers)} backbone layers: {self.unfrozen_parameters:,} of "
            f"{self.total_parameters:,} parameters ({self.achieved_fraction:.2%}; requested "
            f"{self.requested_fraction:.2%}); {len(self.frozen_batch_norm)} batch-norm layers kept frozen"
        )


def freeze_backbone(model: keras.Model) -> FineTuneReport:
    """Freeze the whole backbone of a :func:`~cellkit.zoo.build_classifier` model (head stays trainable)."""
    backbone = get_backbone_layer(model)
    _set_trainable(backbone, True)
    total = sum(_trainable_count(layer) for layer in _leaf_layers(backbone))
    _set_trainable(backbone, False)
    return FineTuneReport(0.0, 0.0, 0, total, (), ())


def fine_tune(model: keras.Model, fraction: float, *, train_batch_norm: bool = False) -> FineTuneReport:
    """Unfreeze the top ``fraction`` of the backbone's parameters, counted from the output side.

    Layers are unfrozen whole, walking from the backbone's output towards its input, until
    the unfrozen parameters reach ``fraction`` of the total. A layer that would take the
    share beyond ``(1 + TOLERANCE)`` times the request is passed over and the walk goes on
    below it, so the achieved fraction lands within :data:`TOLERANCE` of the request
    whenever the backbone has layers small enough (depthwise convolutions, norms). When
    that walk falls short, the closest of it, the contiguous top layers that reach the
    request, and the single layer nearest in size is taken (compact_resnet has no layer
    set within 25% of 1%: it gets its 18,432-parameter convolution, 1.17%; the report's
    four-layer networks get 4.6% for 1% and 4.6% for 10%, one layer being most of them). Batch-norm layers are skipped and stay
    frozen (inference mode, pretrained statistics: the Keras transfer-learning guide)
    unless ``train_batch_norm``, which unfreezes those within the span too (they then
    normalise with batch statistics in training, as when training from scratch: for long
    fine-tuning of many layers on a domain far from the pretraining one). The head is not
    touched; :attr:`FineTuneReport.achieved_fraction` says what was unfrozen.

    Args:
        model: a classifier from :func:`cellkit.zoo.build_classifier`.
        fraction: in (0, 1].
        train_batch_norm: also unfreeze the batch-norm layers within the unfrozen span.
    """
    if not isinstance(train_batch_norm, bool):
        raise ValueError(f"train_batch_norm must be a bool. Received: train_batch_norm={train_batch_norm!r}")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1]. Received: fraction={fraction!r}")
    backbone = get_backbone_layer(model)
    _set_trainable(backbone, True)
    leaves = list(_leaf_layers(backbone))
    counts = {id(layer): _trainable_count(layer) for layer in leaves}
    total = sum(counts.values())
    for layer in leaves:
        layer.trainable = False
    target = math.ceil(fraction * total)
    chosen, kept_bn = min(
        _candidates(leaves, counts, target, train_batch_norm),
        key=lambda c: abs(math.log(max(sum(counts[id(layer)] for layer in c[0]), 1) / max(target, 1))),
    )  # the first (highest in the network) of the closest to the request
    for layer in chosen:
        layer.trainable = True
    unfrozen = sum(counts[id(layer)] for layer in chosen)
    achieved = unfrozen / total if total else 0.0
    return FineTuneReport(float(fraction), achieved, unfrozen, total, tuple(layer.name for layer in chosen),
                          tuple(kept_bn))


def _candidates(leaves: list[keras.layers.Layer], counts: dict[int, int], target: int,
                train_batch_norm: bool) -> list[tuple[list[keras.layers.Layer], list[str]]]:
    """Selections to choose from: the walk that passes over layers too large for the share
    left, the contiguous top layers, and the single layer closest in size to ``target``."""
    walked = _walk(leaves, counts, target, train_batch_norm, limit=(1.0 + TOLERANCE) * target)
    options = [walked, _walk(leaves, counts, target, train_batch_norm, limit=None)]
    usable = [layer for layer in reversed(leaves) if counts[id(layer)] > 0
              and (train_batch_norm or not isinstance(layer, keras.layers.BatchNormalization))]
    if usable:
        single = min(usable, key=lambda layer: abs(math.log(counts[id(layer)] / max(target, 1))))
        options.append(([single], []))
    return options


def _walk(leaves: list[keras.layers.Layer], counts: dict[int, int], target: int, train_batch_norm: bool,
          limit: float | None) -> tuple[list[keras.layers.Layer], list[str]]:
    """Layers to unfreeze from the output side until ``target`` parameters, none taking the sum past ``limit``."""
    chosen, kept_bn, unfrozen = [], [], 0
    for layer in reversed(leaves):
        if unfrozen >= target:
            break
        count = counts[id(layer)]
        if count == 0:
            continue
        if isinstance(layer, keras.layers.BatchNormalization) and not train_batch_norm:
            kept_bn.append(layer.name)
            continue
        if limit is not None and unfrozen + count > limit:
            continue  # too large for the share left: a smaller layer further down fills it
        chosen.append(layer)
        unfrozen += count
    return chosen, kept_bn


def _set_trainable(model: keras.Model, value: bool) -> None:
    """Set ``trainable`` on ``model``, its nested models and every layer in them, explicitly."""
    model.trainable = value
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            _set_trainable(layer, value)
        else:
            layer.trainable = value


def _leaf_layers(model: keras.Model) -> Iterator[keras.layers.Layer]:
    """Layers of ``model`` in topological order, descending into nested models."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _leaf_layers(layer)
        else:
            yield layer


def _trainable_count(layer: keras.layers.Layer) -> int:
    return int(sum(np.prod(w.shape) for w in layer.trainable_weights))
