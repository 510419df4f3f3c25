"""Ensembles: average class probabilities in NumPy, or build one Keras model of many.

Combination methods (the same in :func:`average_predictions` and in the Keras layer):

- ``"mean"``: arithmetic mean of the probabilities (weighted when ``weights`` are given);
- ``"weighted"``: the same, but ``weights`` (one non-negative number per member) are required;
- ``"geometric"``: (weighted) geometric mean, renormalised to sum to one; probabilities are
  clipped at ``1e-7`` first so that one confident zero does not veto a class;
- ``"vote"``: (weighted) fraction of members whose arg-max is each class; ties are broken
  towards the lower class index by ``argmax``, as in scikit-learn's hard voting.

:func:`build_ensemble` puts the members in one Keras graph that takes images in the
members' common input shape (pixel values as the members expect them, usually 0-255) and
returns the combined probabilities. With ``tta`` each member also sees flipped and/or
rotated copies of the batch and its probabilities are averaged over those views first.
The ensemble saves to a single ``.keras`` file and loads with ``safe_mode=True`` once this
module is imported (its layers are registered under the ``cellkit`` package).

Example:
    >>> import numpy as np
    >>> from cellkit.inference.ensemble import average_predictions
    >>> p1 = np.array([[0.9, 0.1], [0.4, 0.6]])
    >>> p2 = np.array([[0.7, 0.3], [0.8, 0.2]])
    >>> average_predictions([p1, p2]).round(2).tolist()
    [[0.8, 0.2], [0.6, 0.4]]
    >>> average_predictions([p1, p2], method="vote").tolist()
    [[1.0, 0.0], [0.5, 0.5]]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from cellkit.inference.tta import (
    TTA_MODES,
    TestTimeAugmentation,
    ViewAverage,
    check_square,
    num_views,
    parse_tta,
)

__all__ = [
    "METHODS",
    "TTA_MODES",
    "AveragePredictions",
    "TestTimeAugmentation",
    "ViewAverage",
    "average_predictions",
    "build_ensemble",
]

#: Ways to combine the members' probabilities.
METHODS: tuple[str, ...] = ("mean", "weighted", "geometric", "vote")
_EPS = 1e-7


def _check_method(method: str, weights: Sequence[float] | None, n_members: int) -> list[float] | None:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}. Received: method={method!r}")
    if weights is None:
        if method == "weighted":
            raise ValueError("method='weighted' needs weights, one per member. Received: weights=None")
        return None
    w = [float(v) for v in np.asarray(weights, dtype=np.float64).reshape(-1)]
    if len(w) != n_members:
        raise ValueError(
            f"weights must have one value per member ({n_members}). Received: weights={list(weights)}"
        )
    if not all(math.isfinite(v) and v >= 0 for v in w) or sum(w) <= 0:
        raise ValueError(f"weights must be finite, non-negative and not all zero. Received: weights={w}")
    return w


def average_predictions(
    probas_list: Sequence[np.ndarray] | np.ndarray,
    method: str = "mean",
    weights: Sequence[float] | None = None,
) -> np.ndarray:
    """Combine the class probabilities of several models (NumPy).

    Args:
        probas_list: ``m`` arrays of shape ``(n, k)`` (or one array ``(m, n, k)``).
        method: one of :data:`METHODS`.
        weights: optional non-negative weight per member (required by ``"weighted"``).

    Returns:
        ``float64`` array ``(n, k)`` whose rows sum to one.

    Example:
        >>> import numpy as np
        >>> p = [np.array([[0.5, 0.5]]), np.array([[0.9, 0.1]])]
        >>> average_predictions(p, "weighted", weights=[1, 3]).tolist()
        [[0.8, 0.2]]
    """
    if len(probas_list) == 0:
        raise ValueError("probas_list must be m >= 1 arrays of shape (n, k). Received: an empty probas_list")
    try:
        stack = np.stack([np.asarray(p, dtype=np.float64) for p in probas_list])
    except ValueError as exc:
        shapes = [np.shape(p) for p in probas_list]
        raise ValueError(
            f"probas_list must hold arrays of one shape (n, k). Received shapes: {shapes}"
        ) from exc
    if stack.ndim != 3 or stack.shape[0] == 0 or stack.shape[2] == 0:
        raise ValueError(
            f"probas_list must be m >= 1 arrays of shape (n, k). Received: stacked shape={stack.shape}"
        )
    if not np.isfinite(stack).all() or (stack < 0).any():
        raise ValueError(
            "probabilities must be finite and non-negative. Received: negative or non-finite values"
        )
    w = _check_method(method, weights, stack.shape[0])
    wv = np.full(stack.shape[0], 1.0 / stack.shape[0]) if w is None else np.asarray(w) / sum(w)
    if method in ("mean", "weighted"):
        return np.tensordot(wv, stack, axes=1)
    if method == "geometric":
        logp = np.tensordot(wv, np.log(np.clip(stack, _EPS, None)), axes=1)
        out = np.exp(logp - logp.max(axis=-1, keepdims=True))
        return out / out.sum(axis=-1, keepdims=True)
    votes = np.eye(stack.shape[2])[np.argmax(stack, axis=-1)]  # (m, n, k) one-hot
    return np.tensordot(wv, votes, axes=1)


@keras.saving.register_keras_serializable(package="cellkit")
class AveragePredictions(keras.layers.Layer):
    """Combine a list of ``(batch, k)`` probability tensors into one (see :data:`METHODS`).

    Example:
        >>> import numpy as np
        >>> layer = AveragePredictions("mean")
        >>> out = layer([np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])])
        >>> np.asarray(out).tolist()
        [[0.5, 0.5]]
    """

    def __init__(
        self, method: str = "mean", member_weights: Sequence[float] | None = None, **kwargs: Any
    ) -> None:
        kwargs["dtype"] = "float32"  # probabilities: never rounded by a mixed-precision policy (as ViewAverage)
        super().__init__(**kwargs)
        n = len(member_weights) if member_weights is not None else 0
        self.method = method
        self.member_weights = _check_method(method, member_weights, n)

    def call(self, inputs: Sequence[Any]) -> Any:
        probs = [ops.cast(p, "float32") for p in inputs]
        m = len(probs)
        if self.member_weights is not None and len(self.member_weights) != m:
            raise ValueError(
                f"AveragePredictions got {m} inputs but {len(self.member_weights)} member_weights. "
                f"Received: member_weights={self.member_weights}"
            )
        w = (
            [1.0 / m] * m
            if self.member_weights is None
            else [v / sum(self.member_weights) for v in self.member_weights]
        )
        stack = ops.stack(probs, axis=0)  # (m, batch, k)
        wt = ops.reshape(ops.convert_to_tensor(w, dtype="float32"), (m, 1, 1))
        if self.method in ("mean", "weighted"):
            return ops.sum(stack * wt, axis=0)
        if self.method == "geometric":
            logp = ops.sum(ops.log(ops.clip(stack, _EPS, 1e30)) * wt, axis=0)
            return ops.softmax(logp, axis=-1)  # exp and renormalise, numerically stable
        k = stack.shape[-1]
        votes = ops.one_hot(ops.argmax(stack, axis=-1), k, dtype="float32")
        return ops.sum(votes * wt, axis=0)

    def compute_output_shape(self, input_shape: Sequence[tuple[int | None, ...]]) -> tuple[int | None, ...]:
        return tuple(input_shape[0])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "method": self.method, "member_weights": self.member_weights}


def _shape_of(model: keras.Model, attr: str, i: int) -> tuple[int | None, ...]:
    try:
        shape = getattr(model, attr)
    except (AttributeError, ValueError):
        shape = None
    if not isinstance(shape, tuple) or (shape and isinstance(shape[0], tuple)):
        raise ValueError(
            f"models[{i}] ({model.name!r}) must be a built single-input, single-output Keras model. "
            f"Received: {attr}={shape!r}"
        )
    return shape


def build_ensemble(
    models: Sequence[keras.Model],
    method: str = "mean",
    weights: Sequence[float] | None = None,
    tta: bool | str = False,
    name: str = "ensemble",
) -> keras.Model:
    """One Keras model that runs every member on its input and combines their probabilities.

    Args:
        models: built Keras models with the same input shape ``(h, w, c)`` and the same
            ``(k,)`` probability output. They are used as they are (not copied, not modified).
        method: one of :data:`METHODS`.
        weights: optional weight per member (required by ``"weighted"``).
        tta: ``False``, ``True`` (= ``"flips"``) or a TTA specification of :mod:`cellkit.inference.tta`
            (``"d4"``, ``"flips+color"``, ...); each member's probabilities are averaged over
            the views before the members are combined.
        name: name of the returned model.

    Returns:
        A functional ``keras.Model`` ``(batch, h, w, c) -> (batch, k)``.

    Example:
        >>> import keras, numpy as np
        >>> def member():
        ...     return keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(),
        ...                              keras.layers.Dense(3, activation="softmax")])
        >>> ens = build_ensemble([member(), member()], tta="d4")
        >>> ens.predict(np.zeros((2, 8, 8, 3)), verbose=0).shape
        (2, 3)
    """
    members = list(models)
    if not members:
        raise ValueError("models must hold at least one Keras model. Received: models=[]")
    for i, m in enumerate(members):
        if not isinstance(m, keras.Model):
            raise ValueError(f"models[{i}] must be a keras.Model. Received: {type(m).__name__}")
    w = _check_method(method, weights, len(members))
    parsed = parse_tta(tta)

    in_shapes = [_shape_of(m, "input_shape", i) for i, m in enumerate(members)]
    out_shapes = [_shape_of(m, "output_shape", i) for i, m in enumerate(members)]
    if len(set(in_shapes)) != 1 or None in in_shapes[0][1:] or len(in_shapes[0]) != 4:
        raise ValueError(f"members must share one fixed image input shape (h, w, c). Received: {in_shapes}")
    if len(set(out_shapes)) != 1 or len(out_shapes[0]) != 2 or out_shapes[0][1] is None:
        raise ValueError(f"members must share one (batch, classes) output shape. Received: {out_shapes}")
    image_shape = in_shapes[0][1:]
    if parsed is not None:
        check_square(parsed[0], image_shape)

    inputs = keras.Input(shape=image_shape, name="images")
    x = inputs
    if parsed is not None:
        x = TestTimeAugmentation(parsed[0], color=parsed[1], name="tta_views")(x)
    outputs = []
    seen = {"images", "tta_views", "combine", *(f"tta_mean_{i}" for i in range(len(members)))}
    for i, member in enumerate(members):
        if member.name in seen and not any(member is other for other in members[:i]):
            # Keras needs unique names in a graph: wrap a clashing member, leaving it untouched.
            inner = keras.Input(shape=image_shape)
            member = keras.Model(inner, member(inner), name=f"member_{i}_{member.name}")
        seen.add(member.name)
        y = member(x)
        if parsed is not None:
            y = ViewAverage(num_views(tta), name=f"tta_mean_{i}")(y)
        outputs.append(y)
    combined = AveragePredictions(method, w, name="combine")(outputs)
    return keras.Model(inputs, combined, name=name)
