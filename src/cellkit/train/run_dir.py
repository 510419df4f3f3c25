"""The run folder of :func:`cellkit.train.train`: where each file goes, and ``run.json``.

A run writes one folder; every file is written atomically:

=========================  ===========================================================
``recipe.json``, ``.toml``  the resolved recipe (mode and phases filled in)
``split.json``             the stratified split (indices and image ids)
``run.json``               status (running / complete / interrupted / failed), timing
                           (``training_seconds``: the phases; ``seconds``: the whole run),
                           precision, distribution, versions, hardware, best epoch
``history.csv``            one row per epoch: phase, losses, metrics, learning rate
``best.keras``             the best model so far (lowest validation loss), rewritten at
                           every improvement: Ctrl-C or a crash never loses it
``model.keras``            the final model: the best weights over the whole run (inside the recipe's
                           test-time augmentation when ``tta`` is set: :mod:`cellkit.inference.tta`)
``metrics.json``           test metrics (:mod:`cellkit.evaluate.report`)
``confusion_matrix.png``   test confusion matrix
``training_curves.png``    loss, accuracy and learning rate per epoch
=========================  ===========================================================

An existing, non-empty folder is refused unless ``overwrite=True`` (then only the files
above are replaced; anything else in the folder is left alone). Writing in place rather
than to a temporary folder renamed at the end is deliberate: the best checkpoint of an
interrupted or crashed run stays where the run was asked to write, and ``run.json`` says
whether the run completed.

:class:`RunDir` is the only writer of ``run.json``: it keeps the run's record
(:attr:`RunDir.info`) and rewrites the file whenever the record changes.

Example:
    >>> import json, tempfile
    >>> run = RunDir.create(tempfile.mkdtemp())
    >>> run.model_keras.name, run.run_json.name
    ('model.keras', 'run.json')
    >>> _ = run.update(status="running", epochs_run=0)
    >>> json.loads(run.run_json.read_text())
    {'status': 'running', 'epochs_run': 0}
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cellkit._io import atomic_write_json
from cellkit.errors import CellkitError

if TYPE_CHECKING:
    import keras

    from cellkit.data import Dataset
    from cellkit.data.split import Split
    from cellkit.train.recipe import Recipe

__all__ = ["COMPLETE", "FAILED", "INTERRUPTED", "RUNNING", "RUN_FILES", "RunDir", "TrainResult"]

#: The files a run writes (and ``overwrite`` replaces).
RUN_FILES: tuple[str, ...] = (
    "recipe.json",
    "recipe.toml",
    "split.json",
    "run.json",
    "history.csv",
    "best.keras",
    "model.keras",
    "metrics.json",
    "confusion_matrix.png",
    "training_curves.png",
)
#: The statuses of ``run.json``.
RUNNING, COMPLETE, INTERRUPTED, FAILED = "running", "complete", "interrupted", "failed"
#: The files :func:`cellkit.train.load_run` needs.
_REQUIRED: tuple[str, ...] = ("run.json", "recipe.json", "split.json", "history.csv")
#: The test metrics copied into ``run.json``.
_SUMMARY: tuple[str, ...] = ("subset", "accuracy", "precision_weighted", "recall_weighted", "f1_weighted", "f1_macro")


@dataclass(frozen=True)
class TrainResult:
    """What :func:`cellkit.train.train` produced (and :meth:`RunDir.load` reads back).

    Attributes:
        run_dir: the run folder.
        recipe: the resolved recipe that was run.
        split: the train / validation / test split.
        model: the final inference model, as saved in ``model.keras`` (best weights; no
            training augmentation; inside the recipe's test-time augmentation, if any).
        metrics: the metrics written to ``metrics.json`` (empty when nothing was evaluated).
        history: ``History.history``-style dict over all phases (and ``learning_rate``).
        best_epoch: 1-based global epoch of the best weights (``None`` if none finished).
        status: ``"complete"`` or ``"interrupted"``.
        info: the contents of ``run.json``.
    """

    run_dir: Path
    recipe: Recipe
    split: Split
    model: keras.Model | None
    metrics: dict[str, Any]
    history: dict[str, list[float]]
    best_epoch: int | None
    status: str
    info: dict[str, Any] = field(default_factory=dict)


class _File:
    """A file of the run folder: ``run_dir.model_keras`` is ``run_dir.path / "model.keras"``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, run: RunDir | None, owner: type | None = None) -> Any:
        return self if run is None else run.path / self.name


class RunDir:
    """A run folder: the path of each of its files, and its ``run.json`` record.

    Args:
        path: the folder (:meth:`create` makes it; the constructor writes nothing).

    Attributes:
        path: the folder.
        info: the record written to ``run.json`` (empty until the run starts).
    """

    recipe_json = _File("recipe.json")
    recipe_toml = _File("recipe.toml")
    split_json = _File("split.json")
    run_json = _File("run.json")
    history_csv = _File("history.csv")
    best_keras = _File("best.keras")
    model_keras = _File("model.keras")
    metrics_json = _File("metrics.json")
    confusion_matrix_png = _File("confusion_matrix.png")
    training_curves_png = _File("training_curves.png")

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.info: dict[str, Any] = {}
        self._started = time.time()

    @classmethod
    def create(cls, path: str | os.PathLike[str], *, overwrite: bool = False) -> RunDir:
        """Create the folder; refuse a non-empty one unless ``overwrite`` (then remove :data:`RUN_FILES` only)."""
        folder = Path(path)
        if folder.exists() and not folder.is_dir():
            raise CellkitError(f"{folder}: exists and is not a folder (expected a new or empty run folder)")
        if folder.is_dir() and any(folder.iterdir()):
            if not overwrite:
                raise CellkitError(
                    f"{folder}: run folder exists and is not empty; choose another --out or pass --overwrite "
                    "(which replaces the run's files)"
                )
            for name in RUN_FILES:
                (folder / name).unlink(missing_ok=True)
        folder.mkdir(parents=True, exist_ok=True)
        return cls(folder)

    # ------------------------------------------------------------------ run.json

    def update(self, **fields: Any) -> dict[str, Any]:
        """Add ``fields`` to the record and rewrite ``run.json`` atomically; return the record."""
        self.info.update(fields)
        atomic_write_json(self.run_json, self.info)
        return self.info

    def elapsed(self) -> float:
        """Seconds since :meth:`start`, to a tenth."""
        return round(time.time() - self._started, 1)

    def start(self, recipe: Recipe, dataset: Dataset, split: Split, class_names: Sequence[str]) -> None:
        """Write the recipe, the split and a ``run.json`` with status ``"running"``; start the clock."""
        from cellkit.augment import describe_policy

        recipe.save(self.recipe_json)
        recipe.save(self.recipe_toml)
        split.save(self.split_json, ids=dataset.ids)
        self._started = time.time()
        self.info.clear()
        self.update(
            status=RUNNING,
            started=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            data={"source": dataset.source, "images": len(dataset), "class_names": list(class_names),
                  "split": split.sizes()},
            environment=_environment(),
            augmentation=describe_policy(recipe.augmentation),
        )

    def add_phase(self, name: str, epochs_run: int, trainable: str) -> None:
        """Record a finished phase: its name, the epochs it ran and what it trained."""
        self.update(phases=[*self.info.get("phases", []), {"name": name, "epochs_run": epochs_run,
                                                            "trainable": trainable}])

    def end_training(self, time_limit: float | None = None, stopped_by_time_limit: bool = False) -> None:
        """Record the training time (and the time limit, if the run had one)."""
        limit = {} if time_limit is None else {"time_limit_seconds": time_limit,
                                               "stopped_by_time_limit": stopped_by_time_limit}
        self.update(training_seconds=self.elapsed(), **limit)

    def fail(self, error: BaseException, *, epochs_run: int, best_epoch: int | None) -> None:
        """Record a crash: status ``"failed"``, the error, the time and the best epoch so far."""
        best = {} if best_epoch is None else {"best_epoch": best_epoch}
        self.update(status=FAILED, error=f"{type(error).__name__}: {error}", seconds=self.elapsed(),
                    epochs_run=epochs_run, **best)

    def finish(
        self, status: str, *, epochs_run: int, best_epoch: int | None, monitor: str, best_value: float | None,
        metrics: dict[str, Any],
    ) -> None:
        """Record the end of the run (``"complete"`` or ``"interrupted"``) and a summary of ``metrics``."""
        summary = {"metrics": {k: metrics[k] for k in _SUMMARY}} if metrics else {}
        self.update(status=status, seconds=self.elapsed(), epochs_run=epochs_run, best_epoch=best_epoch,
                    monitor=monitor, best_value=best_value, **summary)

    # ------------------------------------------------------------------ other files

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        """Write ``metrics.json`` atomically."""
        atomic_write_json(self.metrics_json, metrics)

    def load(self, *, model: bool = True) -> TrainResult:
        """The finished run in this folder, as :func:`cellkit.train.train` returned it (:func:`cellkit.train.load_run`).

        Raises:
            CellkitError: a file of the run is missing or is not valid JSON.
        """
        from cellkit.data.split import Split
        from cellkit.inference.saving import load_model
        from cellkit.train.callbacks import read_history
        from cellkit.train.recipe_io import load_recipe

        for name in _REQUIRED:
            if not (self.path / name).is_file():
                raise CellkitError(f"{self.path / name}: missing; {self.path} is not a finished cellkit run folder")
        try:
            self.info = json.loads(self.run_json.read_text(encoding="utf-8"))
            metrics = json.loads(self.metrics_json.read_text(encoding="utf-8")) if self.metrics_json.is_file() else {}
        except ValueError as exc:
            raise CellkitError(f"{self.path}: unreadable run.json or metrics.json ({exc})") from None
        return TrainResult(
            run_dir=self.path, recipe=load_recipe(self.recipe_json), split=Split.load(self.split_json),
            model=load_model(self.model_keras) if model and self.model_keras.is_file() else None, metrics=metrics,
            history=read_history(self.history_csv), best_epoch=self.info.get("best_epoch"),
            status=self.info.get("status", "unknown"), info=self.info,
        )


def _environment() -> dict[str, Any]:
    import keras
    import numpy as np

    from cellkit import __version__

    return {
        "cellkit": __version__,
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }
