"""PNG figures: confusion matrices and training curves.

Figures are drawn on matplotlib's Agg canvas directly (no ``pyplot``, no global state, no
display needed) and written atomically: a failure never leaves a partial file behind.

Example:
    >>> import tempfile, pathlib
    >>> from cellkit.evaluate.plots import plot_history
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "history.png"
    >>> plot_history({"loss": [1.0, 0.6, 0.4], "val_loss": [1.1, 0.8, 0.7]}, out).name
    'history.png'
    >>> out.read_bytes()[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from cellkit._io import atomic_path

__all__ = ["plot_confusion_matrix", "plot_history"]


def _save(fig: Figure, path: str | os.PathLike[str], dpi: int) -> Path:
    FigureCanvasAgg(fig)
    dest = Path(path)
    with atomic_path(dest, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return dest


def plot_confusion_matrix(
    cm: np.ndarray | Sequence[Sequence[int]],
    class_names: Sequence[str],
    path: str | os.PathLike[str],
    normalize: bool = True,
    title: str | None = None,
    dpi: int = 100,
) -> Path:
    """Draw a confusion matrix (rows: true class, columns: predicted) as a PNG at ``path``.

    With ``normalize`` each row is divided by its total (so the diagonal is per-class
    recall) and cells show the fraction above the count; otherwise cells show counts.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "cm.png"
        >>> plot_confusion_matrix([[5, 1], [2, 7]], ["a", "b"], out).exists()
        True
    """
    counts = np.asarray(cm)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] == 0:
        raise ValueError(f"cm must be a square (k, k) matrix. Received: cm with shape={counts.shape}")
    if not np.issubdtype(counts.dtype, np.number) or not np.isfinite(counts).all() or (counts < 0).any():
        raise ValueError(
            "cm must hold finite non-negative counts. Received: cm with negative or non-finite values"
        )
    k = counts.shape[0]
    names = [str(c) for c in class_names]
    if len(names) != k:
        raise ValueError(f"class_names must name the {k} classes of cm. Received: {len(names)} class_names")
    rows = counts.sum(axis=1, keepdims=True).astype(np.float64)
    shown = (
        np.divide(counts, rows, out=np.zeros((k, k)), where=rows > 0) if normalize else counts.astype(float)
    )

    size = max(4.0, 0.6 * k + 2.5)
    fig = Figure(figsize=(size + 1.0, size), layout="constrained")
    ax = fig.add_subplot()
    vmax = 1.0 if normalize else max(float(shown.max()), 1.0)
    image = ax.imshow(shown, cmap="Blues", vmin=0.0, vmax=vmax, interpolation="nearest")
    fig.colorbar(
        image, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class" if normalize else "count"
    )
    ax.set(
        xticks=np.arange(k),
        yticks=np.arange(k),
        xlabel="predicted class",
        ylabel="true class",
        title=title
        if title is not None
        else ("Confusion matrix (normalised)" if normalize else "Confusion matrix"),
    )
    ax.set_xticklabels(names, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticklabels(names)
    fontsize = 9 if k <= 10 else 6
    for i in range(k):
        for j in range(k):
            value = shown[i, j]
            text = f"{value:.2f}\n({int(counts[i, j])})" if normalize else f"{counts[i, j]:g}"
            colour = "white" if value > 0.6 * vmax else "black"
            ax.text(j, i, text, ha="center", va="center", color=colour, fontsize=fontsize)
    return _save(fig, path, dpi)


def plot_history(
    history: Mapping[str, Sequence[float]],
    path: str | os.PathLike[str],
    title: str | None = None,
    dpi: int = 100,
) -> Path:
    """Plot training curves (a Keras ``History.history`` dict) as a PNG at ``path``.

    One panel per metric; ``name`` and ``val_name`` share a panel (training solid,
    validation dashed). Epochs are numbered from 1; NaN values show as gaps.

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "h.png"
        >>> plot_history({"accuracy": [0.5, 0.7], "val_accuracy": [0.4, 0.6]}, out).name
        'h.png'
    """
    if not isinstance(history, Mapping) or not history:
        raise ValueError(
            f"history must be a non-empty dict of metric name -> list of values. Received: history={history!r}"
        )
    series: dict[str, np.ndarray] = {}
    for name, values in history.items():
        try:
            arr = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"history[{name!r}] must be a list of numbers. Received: {values!r}") from None
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(
                f"history[{name!r}] must be a non-empty list of numbers. Received: shape={arr.shape}"
            )
        series[str(name)] = arr
    panels: dict[str, list[str]] = {}
    for name in series:
        base = name[4:] if name.startswith("val_") and name[4:] else name
        panels.setdefault(base, []).append(name)

    n = len(panels)
    cols = min(n, 3)
    nrows = math.ceil(n / cols)
    fig = Figure(figsize=(4.2 * cols, 3.2 * nrows), layout="constrained")
    axes = fig.subplots(nrows, cols, squeeze=False).ravel()
    for ax, (base, names) in zip(axes, panels.items(), strict=False):
        for name in sorted(names, key=lambda s: s.startswith("val_")):
            y = series[name]
            ax.plot(
                np.arange(1, y.size + 1), y, "--" if name.startswith("val_") else "-", marker=".", label=name
            )
        ax.set(title=base, xlabel="epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if base in ("lr", "learning_rate") and base in series and (series[base] > 0).all():
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes[n:]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    return _save(fig, path, dpi)
