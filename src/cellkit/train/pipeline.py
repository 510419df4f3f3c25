"""The input pipeline: uint8 images to Keras batch by batch, on every backend.

:class:`ArrayBatches` is a :class:`keras.utils.PyDataset` over a ``uint8`` image array and
an optional subset of its indices: each batch is gathered (a copy of one batch only, still
``uint8``), labels become one-hot ``float32`` and, when class weights are given, each image
gets the weight of its class as a sample weight. The models cast to float inside, so no
float copy of the dataset is ever made.

Training order is reproducible: the order of epoch ``e`` is a permutation drawn from
``numpy.random.default_rng([seed, e])`` -- it depends only on the seed and the epoch, not on
how many batches were read before (Keras reads a couple of batches ahead to learn their
shapes). Batch mixing (CutMix / MixUp from :mod:`cellkit.augment`) is seeded the same way,
per ``(seed, epoch, batch)``. Prediction (images only, in order) is
:func:`cellkit.inference.predict_proba`.

Example:
    >>> import numpy as np
    >>> images = np.zeros((10, 8, 8, 3), np.uint8)
    >>> batches = ArrayBatches(images, np.arange(10) % 2, batch_size=4, num_classes=2)
    >>> len(batches), [b.shape for b in batches[2][:2]]
    (3, [(2, 8, 8, 3), (2, 2)])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from cellkit.errors import DataError
from cellkit.inference.predict import check_batch_source

if TYPE_CHECKING:
    from cellkit.data import Dataset
    from cellkit.data.split import Split
    from cellkit.train.recipe import Recipe

__all__ = ["ArrayBatches", "recipe_batches"]


class ArrayBatches(keras.utils.PyDataset):
    """Batches of a ``uint8`` image array (optionally a subset of it) for ``fit``/``evaluate``/``predict``.

    Args:
        images: ``uint8`` array ``(n, h, w, c)``; never copied whole, never modified.
        labels: ``(n,)`` integer class ids, or ``None`` (batches are then images only).
        indices: the images to use, in this order (default: all); e.g. ``split.train``.
        batch_size: images per batch; the last batch is smaller unless ``drop_remainder``.
        num_classes: width of the one-hot labels (default: ``labels.max() + 1``).
        shuffle: reshuffle ``indices`` every epoch (reproducibly, from ``seed``).
        seed: seeds the shuffling and the mixing.
        class_weight: per-class loss weights ``(num_classes,)``; batches then carry sample
            weights ``labels_onehot @ class_weight`` (so mixed labels get mixed weights).
        mix: ``None``, ``"cutmix"`` or ``"mixup"`` (:func:`cellkit.augment.mix_batch`).
        mix_alpha: Beta parameter of the mixing ratio.
        mix_probability: share of the images of a batch that are mixed.
        drop_remainder: leave out the last, smaller batch (data-parallel training needs
            batches divisible by the number of devices).
        **kwargs: ``workers``, ``use_multiprocessing``, ``max_queue_size`` of ``PyDataset``.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: Sequence[int] | np.ndarray | None = None,
        *,
        indices: Sequence[int] | np.ndarray | None = None,
        batch_size: int = 64,
        num_classes: int | None = None,
        shuffle: bool = False,
        seed: int = 0,
        class_weight: Sequence[float] | np.ndarray | None = None,
        mix: str | None = None,
        mix_alpha: float = 1.0,
        mix_probability: float = 1.0,
        drop_remainder: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.images, self.indices = check_batch_source(images, indices, batch_size)
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        if self.labels is not None and self.labels.shape != (images.shape[0],):
            raise ValueError(f"labels must have shape ({images.shape[0]},). Received: labels with shape={self.labels.shape}")
        if num_classes is None and self.labels is not None:
            num_classes = int(self.labels.max()) + 1 if self.labels.size else 1
        self.num_classes = num_classes
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.class_weight = None if class_weight is None else np.asarray(class_weight, dtype=np.float32)
        if self.class_weight is not None and self.class_weight.shape != (num_classes,):
            raise ValueError(f"class_weight must have shape ({num_classes},). "
                             f"Received: class_weight with shape={self.class_weight.shape}")
        if mix not in (None, "none", "cutmix", "mixup"):
            raise ValueError(f"mix must be None, 'cutmix' or 'mixup'. Received: mix={mix!r}")
        if mix in ("cutmix", "mixup") and self.labels is None:
            raise ValueError("mix needs labels. Received: labels=None")
        self.mix = None if mix in (None, "none") else mix
        self.mix_alpha = float(mix_alpha)
        self.mix_probability = float(mix_probability)
        self.drop_remainder = bool(drop_remainder)
        self.epoch = 0
        self._order = self._epoch_order()

    def _epoch_order(self) -> np.ndarray:
        if not self.shuffle:
            return self.indices
        return self.indices[np.random.default_rng([self.seed, self.epoch]).permutation(self.indices.size)]

    def __len__(self) -> int:
        n = self.indices.size
        return n // self.batch_size if self.drop_remainder else -(-n // self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, ...]:
        if not 0 <= index < len(self):
            raise IndexError(f"batch index out of range. Received: index={index}, batches={len(self)}")
        idx = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        x = self.images[idx]
        if self.labels is None:
            return (x,)
        y = np.zeros((idx.size, self.num_classes), dtype=np.float32)
        y[np.arange(idx.size), self.labels[idx]] = 1.0
        if self.mix is not None:
            from cellkit.augment import mix_batch  # lazily: only recipes that mix need it

            rng = np.random.default_rng([self.seed, self.epoch, index, 1])
            x, y = mix_batch(x, y, method=self.mix, alpha=self.mix_alpha, rng=rng, probability=self.mix_probability)
            y = np.asarray(y, dtype=np.float32)
        if self.class_weight is None:
            return x, y
        return x, y, (y @ self.class_weight).astype(np.float32)

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self._order = self._epoch_order()


def recipe_batches(
    dataset: Dataset, split: Split, recipe: Recipe, *, class_weight: np.ndarray | None = None, replicas: int = 1
) -> tuple[ArrayBatches, ArrayBatches | None]:
    """The training batches of ``dataset`` (shuffled, weighted, mixed as ``recipe`` says) and its validation batches.

    Data-parallel steps (``replicas > 1`` devices) need equal shares per device: full
    training batches only (the last, smaller batch of an epoch is left out; the order
    changes every epoch) and validation batches divisible by ``replicas`` (fewer than
    ``replicas`` validation images may be left out; the test metrics use them all).

    Raises:
        DataError: the training images make no full batch.
    """
    drop = replicas > 1
    images, labels, num_classes = dataset.images, dataset.labels, dataset.num_classes
    train = ArrayBatches(
        images, labels, indices=split.train, batch_size=recipe.batch_size, num_classes=num_classes, shuffle=True,
        seed=recipe.seed, class_weight=class_weight, mix=recipe.mix, mix_alpha=recipe.mix_alpha,
        mix_probability=recipe.mix_probability, drop_remainder=drop,
    )
    if len(train) == 0:
        raise DataError(f"{split.train.size} training images make no full batch of {recipe.batch_size} "
                        f"on {replicas} devices; lower batch_size", path=dataset.source)
    if not split.val.size:
        return train, None
    batch = recipe.batch_size
    if drop:  # a multiple of the devices that fits the validation images
        batch = max(1, min(batch, split.val.size) // replicas) * replicas
    return train, ArrayBatches(images, labels, indices=split.val, batch_size=batch, num_classes=num_classes,
                               drop_remainder=drop)
