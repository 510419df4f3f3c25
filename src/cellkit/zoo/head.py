"""The classification head of the report: pooling, dense 64, batch norm, dropout, softmax.

Example:
    >>> HeadConfig.from_value({"units": 128}).units
    128
    >>> HeadConfig().pooling
    'max'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import keras

__all__ = ["HeadConfig", "apply_head"]

_POOLINGS = ("avg", "max")


@dataclass(frozen=True)
class HeadConfig:
    """How the head turns a backbone's feature map into class probabilities.

    Attributes:
        units: units of the hidden dense layer (the report settled on one layer of 64);
            ``0`` for none (pooling -> dropout -> softmax).
        dropout: dropout rate before the output layer (the report does not give its value).
        batch_norm: batch normalisation after the hidden dense layer.
        pooling: ``"max"`` (the report's choice, "to capture fine details") or ``"avg"``.
        activation: activation of the hidden dense layer.
        batch_norm_momentum: momentum of the batch-norm moving statistics; 0.9 (PyTorch's
            default) rather than Keras' 0.99, whose statistics lag behind in short runs.
    """

    units: int = 64
    dropout: float = 0.3
    batch_norm: bool = True
    pooling: str = "max"
    activation: str = "relu"
    batch_norm_momentum: float = 0.9

    def __post_init__(self) -> None:
        if isinstance(self.units, bool) or not isinstance(self.units, int) or self.units < 0:
            raise ValueError(f"units must be an int >= 0. Received: units={self.units!r}")
        if not isinstance(self.dropout, (int, float)) or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1). Received: dropout={self.dropout!r}")
        if self.pooling not in _POOLINGS:
            raise ValueError(f"pooling must be one of {_POOLINGS}. Received: pooling={self.pooling!r}")
        if (
            not isinstance(self.batch_norm_momentum, (int, float))
            or not 0.0 <= self.batch_norm_momentum < 1.0
        ):
            raise ValueError(
                f"batch_norm_momentum must be in [0, 1). Received: batch_norm_momentum={self.batch_norm_momentum!r}"
            )
        if not isinstance(self.batch_norm, bool):
            raise ValueError(f"batch_norm must be a bool. Received: batch_norm={self.batch_norm!r}")

    @classmethod
    def from_value(cls, value: HeadConfig | Mapping[str, Any] | None) -> HeadConfig:
        """Accept a ``HeadConfig``, a dict of its fields, or ``None`` (the defaults)."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            fields = {f.name for f in dataclasses.fields(cls)}
            unknown = sorted(set(value) - fields)
            if unknown:
                raise ValueError(
                    f"unknown head option(s) {unknown}; expected some of {sorted(fields)}. Received: head={dict(value)!r}"
                )
            return cls(**value)
        raise TypeError(f"head must be a HeadConfig, a dict or None. Received: head={value!r}")


def apply_head(features: Any, num_classes: int, config: HeadConfig) -> Any:
    """Apply the head to a symbolic feature map ``(n, h, w, c)`` (or pooled ``(n, c)``).

    Returns the symbolic ``(n, num_classes)`` softmax probabilities, computed in float32
    (also under a mixed-precision policy). Layer names start with ``head_``.
    """
    x = features
    if len(x.shape) == 4:
        pool = (
            keras.layers.GlobalMaxPooling2D
            if config.pooling == "max"
            else keras.layers.GlobalAveragePooling2D
        )
        x = pool(name=f"head_{config.pooling}_pool")(x)
    elif len(x.shape) != 2:
        raise ValueError(
            f"backbone features must be (n, h, w, c) or (n, c). Received: shape={tuple(x.shape)}"
        )
    if config.units:
        x = keras.layers.Dense(config.units, use_bias=not config.batch_norm, name="head_dense")(x)
        if config.batch_norm:
            x = keras.layers.BatchNormalization(momentum=config.batch_norm_momentum, name="head_bn")(x)
        x = keras.layers.Activation(config.activation, name=f"head_{config.activation}")(x)
    if config.dropout:
        x = keras.layers.Dropout(config.dropout, name="head_dropout")(x)
    x = keras.layers.Dense(num_classes, name="head_logits")(x)
    return keras.layers.Activation("softmax", dtype="float32", name="probabilities")(x)
