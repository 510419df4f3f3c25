"""Hardware choices of a run: mixed precision and data-parallel distribution.

* :func:`precision_policy` sets Keras's global dtype policy for the duration of a run:
  ``"mixed_float16"`` when asked (``"mixed"``) or, with ``"auto"``, only when a GPU is
  present; ``"float32"`` otherwise. The previous policy is restored afterwards.
* :func:`distribution_scope` runs the block data-parallel over every local device:
  ``tf.distribute.MirroredStrategy`` on the TensorFlow backend (GPUs, else the logical
  CPUs), ``keras.distribution.DataParallel`` on JAX. TensorFlow is imported only there,
  lazily: cellkit never imports it at module level.

Example:
    >>> with precision_policy("float32") as policy:
    ...     policy
    'float32'
    >>> with distribution_scope(False) as info:
    ...     info.strategy, info.replicas
    ('none', 1)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import keras

from cellkit.errors import CellkitError

__all__ = ["DistributionInfo", "distribution_scope", "gpu_available", "precision_policy"]


def gpu_available() -> bool:
    """Whether the current Keras backend sees a GPU."""
    backend = keras.backend.backend()
    try:
        if backend == "torch":
            import torch

            return bool(torch.cuda.is_available())
        return len(keras.distribution.list_devices("gpu")) > 0
    except (RuntimeError, ValueError, ImportError, AttributeError, NotImplementedError):
        return False


@contextlib.contextmanager
def precision_policy(precision: str = "auto") -> Iterator[str]:
    """Set the global dtype policy for a run; yield its name; restore the previous one.

    Args:
        precision: ``"auto"`` (mixed float16 on a GPU, else float32), ``"mixed"`` or ``"float32"``.
    """
    if precision not in ("auto", "mixed", "float32"):
        raise ValueError(f"precision must be 'auto', 'mixed' or 'float32'. Received: precision={precision!r}")
    mixed = precision == "mixed" or (precision == "auto" and gpu_available())
    name = "mixed_float16" if mixed else "float32"
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield name
    finally:
        keras.config.set_dtype_policy(previous)


@dataclass(frozen=True)
class DistributionInfo:
    """How a run is distributed: ``strategy`` name, number of ``replicas``, the ``devices``."""

    strategy: str
    replicas: int
    devices: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {"strategy": self.strategy, "replicas": self.replicas, "devices": list(self.devices)}


@contextlib.contextmanager
def distribution_scope(enabled: bool) -> Iterator[DistributionInfo]:
    """Build, compile and fit models inside this block to train data-parallel when ``enabled``.

    Raises:
        CellkitError: ``enabled`` on a backend without data-parallel support here (PyTorch).
    """
    if not enabled:
        yield DistributionInfo("none", 1)
        return
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf  # the one place cellkit imports TensorFlow: lazily, TF backend only

        devices = [d.name for d in tf.config.list_logical_devices("GPU")] or [
            d.name for d in tf.config.list_logical_devices("CPU")
        ]
        strategy = tf.distribute.MirroredStrategy(devices=devices)
        with strategy.scope():
            yield DistributionInfo("MirroredStrategy", int(strategy.num_replicas_in_sync), tuple(devices))
    elif backend == "jax":
        devices = keras.distribution.list_devices()
        previous = keras.distribution.distribution()
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        try:
            yield DistributionInfo("DataParallel", len(devices), tuple(str(d) for d in devices))
        finally:
            keras.distribution.set_distribution(previous)
    else:
        raise CellkitError(
            "--distribute supports the tensorflow and jax backends (set KERAS_BACKEND). "
            f"Received: backend={backend!r}"
        )
