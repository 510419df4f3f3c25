"""Callbacks of a training run: the best checkpoint and the history, both written atomically.

* :class:`BestCheckpoint` keeps the weights with the best monitored value (validation loss)
  over the whole run -- across phases -- in memory and on disk (``best.keras``, the
  inference model without augmentation or optimizer, written atomically), so Ctrl-C or a
  crash never loses the best model trained so far.
* :class:`TimeLimit` stops training when the next epoch would end past a wall-clock budget
  (``cellkit train --time-limit``), shared by all phases of a run.
* :class:`HistoryRecorder` appends one row per epoch (global epoch number, phase, every
  logged metric, the learning rate) and rewrites ``history.csv`` atomically.

Example:
    >>> import tempfile, pathlib
    >>> rec = HistoryRecorder(pathlib.Path(tempfile.mkdtemp()) / "history.csv")
    >>> rec.phase = "scratch"
    >>> rec.on_epoch_end(0, {"loss": 1.5, "val_loss": 1.7})
    >>> print(rec.path.read_text().splitlines()[1])
    1,scratch,1.5,1.7
"""

from __future__ import annotations

import csv
import io
import math
import os
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

from cellkit._io import atomic_path, atomic_write_text

__all__ = ["BestCheckpoint", "HistoryRecorder", "TimeLimit", "read_history"]


class BestCheckpoint(keras.callbacks.Callback):
    """Save ``target`` to ``path`` whenever ``monitor`` improves (lower is better).

    Args:
        target: the model to save and restore (the inference model, which shares its
            weights with the model being trained).
        path: the ``.keras`` file, written atomically at each improvement; ``None`` keeps
            the best weights in memory only.
        monitor: a key of the epoch logs (``"val_loss"``; ``"loss"`` when there is no
            validation data).

    Attributes:
        best: the best value seen (``inf`` before the first epoch).
        best_epoch: its 0-based global epoch (``None`` before the first epoch).
    """

    def __init__(self, target: keras.Model, path: str | os.PathLike[str] | None, monitor: str = "val_loss") -> None:
        super().__init__()
        self.target = target
        self.path = None if path is None else Path(path)
        self.monitor = monitor
        self.best = math.inf
        self.best_epoch: int | None = None
        self.best_weights: list[np.ndarray] | None = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is None:
            raise KeyError(
                f"BestCheckpoint monitors {self.monitor!r} but the epoch logs have {sorted(logs or {})}"
            )
        value = float(value)
        if not math.isfinite(value) or value >= self.best:
            return
        self.best, self.best_epoch = value, int(epoch)
        self.best_weights = [np.array(w, copy=True) for w in self.target.get_weights()]
        if self.path is not None:
            with atomic_path(self.path, suffix=".keras") as tmp:
                self.target.save(tmp)

    @property
    def has_best(self) -> bool:
        return self.best_weights is not None

    def restore(self) -> bool:
        """Put the best weights back into ``target``; ``False`` when there are none yet."""
        if self.best_weights is None:
            return False
        self.target.set_weights(self.best_weights)
        return True


class HistoryRecorder(keras.callbacks.Callback):
    """Record every epoch's logs with the phase and learning rate; rewrite ``path`` (CSV) each epoch.

    Set :attr:`phase` before each ``fit``. Epochs are numbered from 1 over the whole run.
    """

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        super().__init__()
        self.path = None if path is None else Path(path)
        self.phase = ""
        self.rows: list[dict[str, Any]] = []

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        row: dict[str, Any] = {"epoch": int(epoch) + 1, "phase": self.phase}
        for key, value in (logs or {}).items():
            row[key] = float(value)
        if "learning_rate" not in row:
            lr = _current_learning_rate(self.model)
            if lr is not None:
                row["learning_rate"] = lr
        self.rows.append(row)
        if self.path is not None:
            atomic_write_text(self.path, self.to_csv())

    @property
    def columns(self) -> list[str]:
        cols: list[str] = []
        for row in self.rows:
            cols += [k for k in row if k not in cols]
        return cols

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.columns, lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: _fmt(v) for k, v in row.items()})
        return buf.getvalue()

    def history(self) -> dict[str, list[float]]:
        """Numeric columns as a ``History.history``-style dict (missing values are NaN)."""
        return {
            col: [float(row.get(col, math.nan)) for row in self.rows]
            for col in self.columns
            if col not in ("epoch", "phase")
        }


def read_history(path: str | os.PathLike[str]) -> dict[str, list[float]]:
    """The ``History.history``-style dict of a ``history.csv`` written by :class:`HistoryRecorder`."""
    recorder = HistoryRecorder(None)
    with open(path, encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            recorder.rows.append({k: (v if k == "phase" else float(v) if v else math.nan) for k, v in row.items()})
    return recorder.history()


def _fmt(value: Any) -> Any:
    return repr(value) if isinstance(value, float) else value


def _current_learning_rate(model: keras.Model | None) -> float | None:
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return None
    try:
        return float(keras.ops.convert_to_numpy(optimizer.learning_rate))
    except (TypeError, ValueError, AttributeError):  # pragma: no cover - exotic optimizers
        return None


class TimeLimit(keras.callbacks.Callback):
    """Stop training before an epoch that would end after ``seconds`` since :meth:`start`.

    The estimate is the longest epoch so far. Within an epoch, training stops after the
    first batch that ends past the budget: an epoch longer than the whole budget (a large
    network on a CPU) ends early instead of overrunning it; Keras still validates and
    records that partial epoch. One instance serves every phase of a run: :attr:`exhausted`
    tells the runner to skip the remaining phases.
    """

    def __init__(self, seconds: float) -> None:
        super().__init__()
        if not math.isfinite(seconds) or seconds <= 0:
            raise ValueError(f"seconds must be a positive number. Received: seconds={seconds!r}")
        self.seconds = float(seconds)
        self.started = time.monotonic()
        self.longest_epoch = 0.0
        self.exhausted = False
        self._epoch_start = self.started

    def start(self) -> None:
        self.started = time.monotonic()

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch_start = time.monotonic()

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if time.monotonic() - self.started > self.seconds:
            self.exhausted = True
            self.model.stop_training = True

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        now = time.monotonic()
        self.longest_epoch = max(self.longest_epoch, now - self._epoch_start)
        if now - self.started + self.longest_epoch > self.seconds:
            self.exhausted = True
            self.model.stop_training = True
