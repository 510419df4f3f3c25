"""Robustness evaluation on a tiny dataset whose numbers can be checked by hand."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from cellkit.corrupt.suite import EVALUATION_FAMILIES, corrupt
from cellkit.data import Dataset
from cellkit.errors import DataError
from cellkit.evaluate import robustness
from cellkit.evaluate.robustness import RobustnessReport, evaluate_robustness

# Brightness gains of severities 1..5: down (0.85, 0.72, 0.6, 0.48, 0.36), up (1.1 ... 1.7).
# Dark images (60) stay dark under both; bright ones (200) stay bright going up, and fall
# below the threshold 128 from severity 3 down (200 * 0.6 = 120).
EXPECTED_DOWN = {1: 1.0, 2: 1.0, 3: 0.5, 4: 0.5, 5: 0.5}
EXPECTED_UP = {s: 1.0 for s in range(1, 6)}


@pytest.fixture
def two_levels() -> Dataset:
    images = np.concatenate([np.full((5, 12, 12, 3), 60, np.uint8), np.full((5, 12, 12, 3), 200, np.uint8)])
    return Dataset(images, labels=np.repeat([0, 1], 5), class_names=("dark", "bright"), source="two-levels")


def brightness_labels(images: np.ndarray) -> np.ndarray:
    return (images.mean(axis=(1, 2, 3)) > 128).astype(np.int64)


def brightness_scores(images: np.ndarray) -> np.ndarray:
    m = images.mean(axis=(1, 2, 3))
    return np.stack([128 - m, m - 128], axis=1)


def brightness_model() -> keras.Model:
    """Keras: global average -> Dense(2) with fixed weights computing the same two scores."""
    inputs = keras.Input((None, None, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    dense = keras.layers.Dense(2)
    out = dense(pooled)
    dense.set_weights([np.array([[-1, 1]] * 3, "float32") / 3, np.array([128, -128], "float32")])
    return keras.Model(inputs, out)


@pytest.mark.parametrize("predictor", [brightness_labels, brightness_scores, "keras"])
def test_hand_checked_numbers(two_levels: Dataset, predictor) -> None:  # noqa: ANN001
    model = brightness_model() if predictor == "keras" else predictor
    rep = evaluate_robustness(model, two_levels, corruptions=["brightness_down", "brightness_up"], batch_size=4)
    assert rep.clean_accuracy == 1.0 and rep.n_images == 10
    assert rep.accuracy == {"brightness_down": EXPECTED_DOWN, "brightness_up": EXPECTED_UP}
    assert rep.mean_corruption_accuracy == pytest.approx(17 / 20)  # (3.5 + 5) / 10 cells
    assert rep.relative_drop == pytest.approx(0.15)
    assert rep.corruption_accuracy("brightness_down") == pytest.approx(0.7)
    assert rep.severity_accuracy(3) == pytest.approx(0.75)


def test_default_is_the_held_out_families_and_it_is_seeded(two_levels: Dataset) -> None:
    always_dark = lambda images: np.zeros(len(images), np.int64)  # noqa: E731
    rep = evaluate_robustness(always_dark, two_levels)
    assert rep.corruptions == EVALUATION_FAMILIES and rep.severities == (1, 2, 3, 4, 5)
    assert all(a == 0.5 for by_sev in rep.accuracy.values() for a in by_sev.values())
    assert rep.relative_drop == pytest.approx(0.0)

    seen: list[np.ndarray] = []

    def recording(images: np.ndarray) -> np.ndarray:
        seen.append(images.copy())
        return brightness_labels(images)

    evaluate_robustness(recording, two_levels, corruptions="gaussian_noise", severities=[2], seed=5)
    first = seen[:]
    seen.clear()
    evaluate_robustness(recording, two_levels, corruptions="gaussian_noise", severities=[2], seed=5)
    for a, b in zip(first, seen, strict=True):
        np.testing.assert_array_equal(a, b)
    # the corrupted copy is the suite's corruption with the chunk's generator
    expected = corrupt(two_levels.images, "gaussian_noise", 2, seed=robustness._chunk_rng(5, "gaussian_noise", 0))
    np.testing.assert_array_equal(first[1], expected)


def test_chunks_are_counted_correctly(monkeypatch: pytest.MonkeyPatch, two_levels: Dataset) -> None:
    monkeypatch.setattr(robustness, "CORRUPTION_CHUNK", 3)
    rep = evaluate_robustness(brightness_labels, two_levels, corruptions="brightness_down", batch_size=2)
    assert rep.accuracy["brightness_down"] == EXPECTED_DOWN


def test_tuple_input_and_report_files(tmp_path: Path, two_levels: Dataset) -> None:
    rep = evaluate_robustness(
        brightness_scores, (two_levels.images, two_levels.labels), corruptions="brightness", severities=(1, 3)
    )
    path = rep.to_json(tmp_path / "out" / "robustness.json")
    data = json.loads(path.read_text())
    assert data["clean_accuracy"] == 1.0 and data["severities"] == [1, 3]
    assert data["corruptions"]["brightness_down"]["accuracy"] == {"1": 1.0, "3": 0.5}
    assert data["corruptions"]["brightness_down"]["held_out"] is False
    again = RobustnessReport.from_json(path)
    assert again.accuracy == rep.accuracy and again.mean_corruption_accuracy == rep.mean_corruption_accuracy
    png = rep.plot_heatmap(tmp_path / "heat.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 2000
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left
    text = str(rep)
    assert "brightness_down" in text and "relative drop 12.5%" in text  # (1 - 0.875) / 1


def test_bad_inputs_are_named(tmp_path: Path, two_levels: Dataset) -> None:
    with pytest.raises(DataError, match="needs labels"):
        evaluate_robustness(brightness_labels, Dataset(two_levels.images))
    with pytest.raises(ValueError, match="Keras model or a function"):
        evaluate_robustness(42, two_levels)
    with pytest.raises(ValueError, match=r"scores \(n, k\) or integer labels"):
        evaluate_robustness(lambda x: np.zeros(3), two_levels, corruptions="pixelate")
    with pytest.raises(ValueError, match="severity=7"):
        evaluate_robustness(brightness_labels, two_levels, severities=[7])
    with pytest.raises(ValueError, match="Did you mean"):
        evaluate_robustness(brightness_labels, two_levels, corruptions="pixelation_blur")
    with pytest.raises(ValueError, match="batch_size=0"):
        evaluate_robustness(brightness_labels, two_levels, batch_size=0)
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(DataError, match="not a robustness report"):
        RobustnessReport.from_json(bad)
