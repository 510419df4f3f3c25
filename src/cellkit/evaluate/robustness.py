"""Robustness to acquisition shift: accuracy of a classifier under each corruption and severity.

:func:`evaluate_robustness` corrupts a labelled dataset with every corruption at every
severity (seeded, :mod:`cellkit.corrupt.suite`), classifies each copy and returns a
:class:`RobustnessReport`: clean accuracy, accuracy per corruption x severity, the mean
corruption accuracy over the whole grid and its relative drop from the clean accuracy,
``(clean - mean) / clean``. By default only the corruptions held out from training-time
augmentation are used (:data:`~cellkit.corrupt.suite.EVALUATION_FAMILIES`): robustness
is measured on shifts the model was not trained to absorb.

Example:
    >>> import numpy as np
    >>> from cellkit.data import Dataset
    >>> from cellkit.evaluate.robustness import evaluate_robustness
    >>> x = np.concatenate([np.full((5, 16, 16, 3), 60, np.uint8), np.full((5, 16, 16, 3), 200, np.uint8)])
    >>> ds = Dataset(x, labels=np.repeat([0, 1], 5))
    >>> bright = lambda images: (images.mean(axis=(1, 2, 3)) > 128).astype(int)  # labels, not scores
    >>> rep = evaluate_robustness(bright, ds, corruptions=["brightness_down"])
    >>> rep.clean_accuracy, [rep.accuracy["brightness_down"][s] for s in range(1, 6)]
    (1.0, [1.0, 1.0, 0.5, 0.5, 0.5])
"""

from __future__ import annotations

import json
import math
import os
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cellkit._io import atomic_path, atomic_write_json
from cellkit._progress import progress
from cellkit.corrupt._batch import check_batch, check_severity
from cellkit.corrupt.suite import CORRUPTIONS, EVALUATION_FAMILIES, FAMILY_OF, SEVERITIES, resolve_corruptions
from cellkit.data import Dataset
from cellkit.errors import DataError

__all__ = ["CORRUPTION_CHUNK", "RobustnessReport", "evaluate_robustness"]

#: Images corrupted together; chunk ``i`` of corruption ``name`` draws from the generator
#: seeded with ``(seed, crc32(name), i)``, the same at every severity.
CORRUPTION_CHUNK = 1024


@dataclass(frozen=True)
class RobustnessReport:
    """Accuracy of one classifier on a clean dataset and on its corrupted copies.

    Attributes:
        clean_accuracy: accuracy on the unmodified images.
        accuracy: ``accuracy[corruption][severity]``.
        n_images: images evaluated (each corrupted copy has as many).
        seed: the corruption seed.
        source: the dataset's ``source``.
    """

    clean_accuracy: float
    accuracy: dict[str, dict[int, float]]
    n_images: int
    seed: int = 0
    source: str = "<array>"
    held_out: tuple[str, ...] = field(default=EVALUATION_FAMILIES)

    @property
    def corruptions(self) -> tuple[str, ...]:
        return tuple(self.accuracy)

    @property
    def severities(self) -> tuple[int, ...]:
        return tuple(sorted({s for by_sev in self.accuracy.values() for s in by_sev}))

    @property
    def mean_corruption_accuracy(self) -> float:
        """Mean accuracy over every corruption x severity cell."""
        cells = [a for by_sev in self.accuracy.values() for a in by_sev.values()]
        return float(np.mean(cells)) if cells else math.nan

    @property
    def relative_drop(self) -> float:
        """``(clean - mean corruption accuracy) / clean``: 0 is perfectly robust, 1 is chance lost entirely."""
        if self.clean_accuracy == 0:
            return math.nan
        return (self.clean_accuracy - self.mean_corruption_accuracy) / self.clean_accuracy

    def corruption_accuracy(self, name: str) -> float:
        """Mean accuracy of one corruption over its severities."""
        return float(np.mean(list(self.accuracy[name].values())))

    def severity_accuracy(self, severity: int) -> float:
        """Mean accuracy over the corruptions at one severity."""
        return float(np.mean([by_sev[severity] for by_sev in self.accuracy.values() if severity in by_sev]))

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "n_images": self.n_images,
            "seed": self.seed,
            "severities": list(self.severities),
            "clean_accuracy": self.clean_accuracy,
            "mean_corruption_accuracy": self.mean_corruption_accuracy,
            "relative_drop": self.relative_drop,
            "corruptions": {
                name: {
                    "family": FAMILY_OF.get(name, ""),
                    "held_out": name in self.held_out,
                    "mean_accuracy": self.corruption_accuracy(name),
                    "accuracy": {str(s): a for s, a in by_sev.items()},
                }
                for name, by_sev in self.accuracy.items()
            },
        }

    def to_json(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_dict` as JSON, atomically; returns the path."""
        atomic_write_json(path, self.to_dict())
        return Path(path)

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> RobustnessReport:
        """Read a report written by :meth:`to_json`."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            accuracy = {
                name: {int(s): float(a) for s, a in entry["accuracy"].items()}
                for name, entry in data["corruptions"].items()
            }
            held = tuple(name for name, entry in data["corruptions"].items() if entry.get("held_out"))
            return cls(
                clean_accuracy=float(data["clean_accuracy"]),
                accuracy=accuracy,
                n_images=int(data["n_images"]),
                seed=int(data.get("seed", 0)),
                source=str(data.get("source", "<array>")),
                held_out=held,
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DataError(f"not a robustness report written by RobustnessReport.to_json: {exc}", path=path) from exc

    def __str__(self) -> str:
        sev = self.severities
        width = max([len(n) for n in self.accuracy] + [10])
        lines = [
            f"robustness on {self.source} ({self.n_images} images, seed {self.seed})",
            f"  clean accuracy            {self.clean_accuracy:.4f}",
            f"  mean corruption accuracy  {self.mean_corruption_accuracy:.4f}"
            f"  (relative drop {100 * self.relative_drop:.1f}%)",
            "  " + "corruption".ljust(width) + "".join(f"  sev {s}" for s in sev) + "   mean",
        ]
        for name, by_sev in self.accuracy.items():
            cells = "".join(f"  {by_sev[s]:.3f}" if s in by_sev else "      -" for s in sev)
            lines.append(f"  {name.ljust(width)}{cells}  {self.corruption_accuracy(name):.3f}")
        return "\n".join(lines)

    def plot_heatmap(self, path: str | os.PathLike[str]) -> Path:
        """Save a corruption x severity heat map of the accuracy as PNG (atomically; Agg, no pyplot)."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        names, sev = list(self.accuracy), list(self.severities)
        grid = np.array([[self.accuracy[n].get(s, np.nan) for s in sev] for n in names], dtype=float)
        fig = Figure(figsize=(1.4 + 0.75 * (len(sev) + 1), 1.0 + 0.36 * max(len(names), 1)), dpi=110)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        full = np.column_stack([grid, np.nanmean(grid, axis=1) if len(names) else grid[:, :0]])
        im = ax.imshow(full, cmap="RdYlGn", vmin=0.0, vmax=1.0, aspect="auto")
        for (i, j), value in np.ndenumerate(full):
            if np.isfinite(value):
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8,
                        color="black" if 0.25 < value < 0.85 else "white")
        ax.set_xticks(range(len(sev) + 1), [*(str(s) for s in sev), "mean"])
        ax.set_yticks(range(len(names)), [f"{n}{'' if n in self.held_out else ' (aug.)'}" for n in names])
        ax.set_xlabel("severity")
        ax.axvline(len(sev) - 0.5, color="white", linewidth=2)
        ax.set_title(
            f"clean {self.clean_accuracy:.3f} | mean corrupted {self.mean_corruption_accuracy:.3f} "
            f"| drop {100 * self.relative_drop:.1f}%",
            fontsize=9,
        )
        fig.colorbar(im, ax=ax, fraction=0.05, pad=0.02, label="accuracy")
        fig.tight_layout()
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, format="png")
        return Path(path)


Predictor = Callable[[np.ndarray], np.ndarray]


def _as_predictor(model_or_fn: Any, batch_size: int) -> Predictor:
    predict = getattr(model_or_fn, "predict", None)
    if callable(predict) and hasattr(model_or_fn, "layers"):  # a Keras model

        def keras_predict(images: np.ndarray) -> np.ndarray:
            return np.asarray(predict(images.astype(np.float32), batch_size=batch_size, verbose=0))

        return keras_predict
    if callable(model_or_fn):

        def fn_predict(images: np.ndarray) -> np.ndarray:
            out = []
            for start in range(0, images.shape[0], batch_size):
                out.append(np.asarray(model_or_fn(images[start : start + batch_size])))
            return np.concatenate(out) if out else np.zeros((0,), np.int64)

        return fn_predict
    raise ValueError(
        "`model_or_predict_fn` must be a Keras model or a function images -> probabilities. "
        f"Received: model_or_predict_fn={type(model_or_fn).__name__}"
    )


def _labels_from(output: np.ndarray, n: int) -> np.ndarray:
    output = np.asarray(output)
    if output.ndim == 2 and output.shape[0] == n:
        return output.argmax(axis=1)
    if output.ndim == 1 and output.shape[0] == n and np.issubdtype(output.dtype, np.integer):
        return output.astype(np.int64)
    raise ValueError(
        f"the model must return scores (n, k) or integer labels (n,) for n={n} images. "
        f"Received: output of shape {output.shape}, dtype {output.dtype}"
    )


def _as_dataset(dataset: Any) -> Dataset:
    if isinstance(dataset, Dataset):
        ds = dataset
    elif isinstance(dataset, tuple) and len(dataset) == 2:
        ds = Dataset(check_batch(np.asarray(dataset[0])), labels=np.asarray(dataset[1]))
    else:
        raise ValueError(
            "`dataset` must be a cellkit Dataset or an (images, labels) tuple. "
            f"Received: dataset={type(dataset).__name__}"
        )
    if ds.labels is None:
        raise DataError("robustness needs labels; the dataset is unlabelled", path=ds.source)
    if len(ds) == 0:
        raise DataError("the dataset holds no images", path=ds.source)
    return ds


def _chunk_rng(seed: int, name: str, chunk: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(name.encode()), int(chunk)])


def _accuracy_grid(
    predict: Callable[[np.ndarray], np.ndarray],
    images: np.ndarray,
    labels: np.ndarray,
    names: Sequence[str],
    severities: Sequence[int],
    corrupt_chunk: Callable[[np.ndarray, str, int, int, int], np.ndarray],
    desc: str,
    quiet: bool,
) -> tuple[float, dict[str, dict[int, float]]]:
    """Clean accuracy and accuracy per corruption x severity, in chunks of ``CORRUPTION_CHUNK``.

    ``corrupt_chunk(batch, name, severity, chunk_index, first_image_index)`` corrupts one chunk;
    shared by this suite and :mod:`cellkit.evaluate.external`.
    """
    n = len(labels)

    def accuracy_of(name: str | None, severity: int = 1) -> float:
        correct = 0
        for c, start in enumerate(range(0, n, CORRUPTION_CHUNK)):
            batch = images[start : start + CORRUPTION_CHUNK]
            if name is not None:
                batch = corrupt_chunk(batch, name, severity, c, start)
            pred = _labels_from(predict(batch), batch.shape[0])
            correct += int(np.sum(pred == labels[start : start + CORRUPTION_CHUNK]))
        return correct / n

    clean = accuracy_of(None)
    accuracy: dict[str, dict[int, float]] = {name: {} for name in names}
    cells = [(name, s) for name in names for s in severities]
    for name, s in progress(cells, desc=desc, total=len(cells), unit="cell", quiet=quiet):
        accuracy[name][s] = accuracy_of(name, s)
    return clean, accuracy


def evaluate_robustness(
    model_or_predict_fn: Any,
    dataset: Dataset | tuple[np.ndarray, np.ndarray],
    corruptions: str | Sequence[str] = EVALUATION_FAMILIES,
    severities: Sequence[int] = SEVERITIES,
    seed: int = 0,
    batch_size: int = 256,
    *,
    quiet: bool = True,
) -> RobustnessReport:
    """Accuracy of a classifier on ``dataset`` clean and under each corruption and severity.

    Args:
        model_or_predict_fn: a Keras model (``predict`` is called on float32 images 0-255,
            then argmax), or a function ``uint8 images (n, h, w, 3) -> scores (n, k)`` (or
            integer labels ``(n,)``), called on batches of ``batch_size``.
        dataset: a labelled :class:`~cellkit.data.Dataset` or ``(images, labels)``.
        corruptions: corruption names, families or groups (``"evaluation"``,
            ``"augmentation"``, ``"all"``), a list or a comma-separated string.
        severities: which of 1..5.
        seed: corruption seed (the same seed gives the same corrupted images).
        batch_size: images per prediction batch.
        quiet: no progress bar.
    """
    ds = _as_dataset(dataset)
    names = resolve_corruptions(corruptions)
    sevs = tuple(dict.fromkeys(check_severity(s) for s in severities))
    if not sevs:
        raise ValueError(f"`severities` must name at least one of 1..5. Received: severities={severities!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be an integer >= 1. Received: batch_size={batch_size!r}")
    predict = _as_predictor(model_or_predict_fn, batch_size)
    images, labels = ds.images, ds.labels
    n = len(ds)

    def corrupt_chunk(batch: np.ndarray, name: str, severity: int, chunk: int, start: int) -> np.ndarray:
        return CORRUPTIONS[name](batch, severity, _chunk_rng(seed, name, chunk))

    clean, accuracy = _accuracy_grid(predict, images, labels, names, sevs, corrupt_chunk, "robustness", quiet)
    return RobustnessReport(
        clean_accuracy=clean, accuracy=accuracy, n_images=n, seed=int(seed), source=ds.source
    )
