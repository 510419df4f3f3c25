"""Class probabilities of a model for a ``uint8`` image array, batch by batch, on every backend.

:func:`check_input_size` refuses images of another size than the model's input before any
prediction (``cellkit evaluate`` and ``cellkit predict`` name both sizes and suggest ``--size``).

:func:`predict_proba` feeds ``images[indices]`` to ``model.predict_on_batch`` one batch at a
time (each batch gathered still ``uint8``): no float copy of the dataset is ever made; the
models cast to float inside. Training batches (labels, shuffling,
mixing, class weights) are :class:`cellkit.train.pipeline.ArrayBatches`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np

from cellkit._progress import progress
from cellkit.errors import DataError

__all__ = ["check_input_size", "predict_proba"]


def check_batch_source(
    images: np.ndarray, indices: Sequence[int] | np.ndarray | None, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(images, indices as int64)`` checked for batching: a 4-D array, in-range indices, batch_size >= 1.

    Shared by prediction batches here and training batches (:class:`cellkit.train.pipeline.ArrayBatches`).
    """
    if not isinstance(images, np.ndarray) or images.ndim != 4:
        got = f"shape={getattr(images, 'shape', None)}" if isinstance(images, np.ndarray) else type(images).__name__
        raise ValueError(f"images must be an array (n, h, w, c). Received: images with {got}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1. Received: batch_size={batch_size!r}")
    idx = np.arange(images.shape[0], dtype=np.int64) if indices is None else np.asarray(indices, dtype=np.int64)
    if idx.ndim != 1 or (idx.size and (idx.min() < 0 or idx.max() >= len(images))):
        raise ValueError(f"indices must be a 1-D array of image indices in [0, {len(images)}). "
                         f"Received: indices with shape={idx.shape}")
    return images, idx


def predict_proba(model: keras.Model, images: np.ndarray, indices: Sequence[int] | np.ndarray | None = None,
                  batch_size: int = 256, *, progress_desc: str | None = None, quiet: bool = True) -> np.ndarray:
    """Class probabilities ``(n, k)`` of ``model`` for ``images[indices]``, batch by batch (no float copy).

    Each batch ``images[indices[s:s + batch_size]]`` (still ``uint8``) goes to
    ``model.predict_on_batch``: one compiled step per batch and nothing else, no data pipeline
    built per call (``model.predict`` on a generator costs a pipeline per call, which on a slow
    2-core machine made prediction 1.8x the model's own time). ``progress_desc`` shows a bar of
    batches on stderr unless ``quiet``.

    Example:
        >>> import keras, numpy as np
        >>> inp = keras.Input((4, 4, 3)); out = keras.layers.Dense(2, activation="softmax")(
        ...     keras.layers.Flatten()(inp))
        >>> predict_proba(keras.Model(inp, out), np.zeros((5, 4, 4, 3), np.uint8), batch_size=2).shape
        (5, 2)
    """
    images, idx = check_batch_source(images, indices, batch_size)
    if idx.size == 0:
        k = int(model.outputs[0].shape[-1]) if getattr(model, "outputs", None) else 0
        return np.zeros((0, k), dtype=np.float32)
    starts = range(0, idx.size, batch_size)
    if progress_desc is not None and len(starts) > 1:
        starts = progress(starts, desc=progress_desc, total=len(starts), unit="batch", quiet=quiet)
    step = _batch_step(model)
    parts = [np.asarray(step(images[idx[s : s + batch_size]]), dtype=np.float32) for s in starts]
    return np.concatenate(parts)


def _batch_step(model: keras.Model) -> Callable[[np.ndarray], Any]:
    """``model.predict_on_batch``, or under a TensorFlow strategy of several replicas ``model.predict`` of the batch.

    ``predict_on_batch`` gives every replica the whole batch and concatenates their outputs
    (twice the rows on two replicas); ``predict`` splits the batch between them.
    """
    strategy = getattr(model, "distribute_strategy", None)  # TensorFlow's trainer only
    if int(getattr(strategy, "num_replicas_in_sync", 1) or 1) > 1:
        return lambda batch: model.predict(batch, batch_size=len(batch), verbose=0)
    return model.predict_on_batch


def check_input_size(model: keras.Model, images: np.ndarray) -> None:
    """:class:`DataError` if the model's fixed input height/width differ from the images'.

    Checked before predicting: Keras would fail deep inside the first batch instead.
    """
    shape = getattr(model, "input_shape", None)
    if not isinstance(shape, tuple) or len(shape) != 4 or np.ndim(images) != 4:
        return
    mh, mw = shape[1], shape[2]
    h, w = images.shape[1:3]
    if (mh is not None and mh != h) or (mw is not None and mw != w):
        raise DataError(
            f"the model expects {mh}x{mw} (HxW) images but the data are {h}x{w} "
            f"(expected data of the model's size: pass --size {mh}x{mw} / size=({mh}, {mw}) to resize them). "
            f"Received: model input_shape={shape}, images shape={tuple(images.shape)}"
        )
