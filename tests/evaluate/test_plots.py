"""Tests for cellkit.evaluate.plots: valid PNG output of sensible size, atomic writes, input errors."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from cellkit.evaluate.plots import plot_confusion_matrix, plot_history

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NAMES = ["basophil", "eosinophil", "erythroblast", "ig", "lymphocyte", "monocyte", "neutrophil", "platelet"]


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    assert data.endswith(b"IEND\xaeB`\x82")  # complete file
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.mark.parametrize("normalize", [True, False])
def test_confusion_matrix_png(tmp_path, normalize):
    cm = np.random.default_rng(0).integers(0, 50, (8, 8)) + np.eye(8, dtype=int) * 300
    cm[3] = 0  # a class without samples must not divide by zero
    out = plot_confusion_matrix(cm, NAMES, tmp_path / "cm.png", normalize=normalize)
    assert out == tmp_path / "cm.png"
    width, height = _png_size(out)
    assert 300 <= width <= 2000 and 300 <= height <= 2000
    assert out.stat().st_size > 10_000  # real content, not a blank canvas
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cm.png"]


def test_history_png(tmp_path):
    history = {
        "loss": [1.2, 0.8, 0.5, 0.4],
        "val_loss": [1.3, 0.9, float("nan"), 0.7],
        "accuracy": [0.4, 0.6, 0.7, 0.8],
        "val_accuracy": [0.3, 0.5, 0.6, 0.65],
        "learning_rate": [1e-3, 1e-3, 5e-4, 1e-4],
    }
    out = plot_history(history, tmp_path / "sub" / "history.png", title="run 1")
    width, height = _png_size(out)
    assert width > height > 200 and width <= 3000
    assert out.stat().st_size > 10_000


def test_writes_replace_an_existing_file(tmp_path):
    dest = tmp_path / "cm.png"
    dest.write_bytes(b"old")
    plot_confusion_matrix([[1, 0], [0, 1]], ["a", "b"], dest)
    _png_size(dest)


def test_failure_while_saving_leaves_no_file(tmp_path, monkeypatch):
    def broken(self, fname, *args, **kwargs):
        with open(fname, "wb") as fh:  # a half-written PNG...
            fh.write(PNG_SIGNATURE + b"partial")
        raise OSError("disk full")  # ...then the writer dies

    monkeypatch.setattr(Figure, "savefig", broken)
    with pytest.raises(OSError, match="disk full"):
        plot_confusion_matrix([[3, 1], [0, 2]], ["a", "b"], tmp_path / "cm.png")
    with pytest.raises(OSError, match="disk full"):
        plot_history({"loss": [1.0, 0.5]}, tmp_path / "h.png")
    assert list(tmp_path.iterdir()) == []


def test_failure_keeps_the_previous_file(tmp_path, monkeypatch):
    dest = tmp_path / "cm.png"
    plot_confusion_matrix([[3, 1], [0, 2]], ["a", "b"], dest)
    before = dest.read_bytes()

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(FigureCanvasAgg, "print_png", broken)
    with pytest.raises(RuntimeError, match="boom"):
        plot_confusion_matrix([[9, 9], [9, 9]], ["a", "b"], dest)
    assert dest.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cm.png"]


@pytest.mark.parametrize(
    ("cm", "names", "match"),
    [
        (np.zeros((2, 3)), ["a", "b"], r"square \(k, k\) matrix. Received: cm with shape=\(2, 3\)"),
        (np.zeros((0, 0)), [], "square"),
        ([[1, -1], [0, 1]], ["a", "b"], "non-negative"),
        ([[1, 0], [0, 1]], ["a"], "class_names must name the 2 classes of cm. Received: 1 class_names"),
    ],
)
def test_bad_confusion_matrix_input(tmp_path, cm, names, match):
    with pytest.raises(ValueError, match=match):
        plot_confusion_matrix(cm, names, tmp_path / "cm.png")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("history", "match"),
    [
        ({}, "history must be a non-empty dict"),
        ({"loss": []}, r"history\['loss'\] must be a non-empty list of numbers"),
        ({"loss": ["a", "b"]}, r"history\['loss'\] must be a list of numbers"),
        ([1.0, 2.0], "history must be a non-empty dict"),
    ],
)
def test_bad_history_input(tmp_path, history, match):
    with pytest.raises(ValueError, match=match):
        plot_history(history, tmp_path / "h.png")
    assert list(tmp_path.iterdir()) == []
