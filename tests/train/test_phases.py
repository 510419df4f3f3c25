"""fit_phase: one phase of a recipe fit on its own, from public imports only (no runner)."""

from __future__ import annotations

import cv2
import keras
import numpy as np
import pytest

import cellkit
from cellkit.errors import CellkitError
from cellkit.train import (
    ArrayBatches,
    Phase,
    PhaseResult,
    balanced_class_weights,
    build_training_model,
    fit_phase,
)
from cellkit.zoo import build_classifier, get_backbone_layer


@pytest.fixture(scope="module")
def tiny() -> tuple[np.ndarray, np.ndarray, int]:
    """8 sample images per class, downsized to 32x32."""
    ds = cellkit.load("sample")
    idx = np.concatenate([np.flatnonzero(ds.labels == c)[:8] for c in range(ds.num_classes)])
    images = np.stack([cv2.resize(im, (32, 32), interpolation=cv2.INTER_AREA) for im in ds.images[idx]])
    return images, ds.labels[idx], ds.num_classes


def test_fit_phase_fine_tunes_a_model_for_one_epoch_on_its_own(tiny):
    images, labels, k = tiny
    keras.utils.set_random_seed(0)
    classifier = build_classifier("baseline", num_classes=k, input_shape=(32, 32, 3))
    backbone = get_backbone_layer(classifier)
    before = [w.copy() for w in backbone.get_weights()]
    batches = ArrayBatches(images, labels, batch_size=16, num_classes=k, shuffle=True, seed=0,
                           class_weight=balanced_class_weights(labels, k))
    phase = Phase("fine_tune", "fine_tune", epochs=1, optimizer="lion", learning_rate=1e-4, final_learning_rate=5e-6)

    result = fit_phase(classifier, phase, batches, fine_tune_fraction=0.5)

    assert isinstance(result, PhaseResult) and result.phase == phase
    assert result.epochs_run == 1 and len(result.history["loss"]) == 1 and np.isfinite(result.history["loss"][0])
    assert "unfroze" in result.trainable
    changed = [not np.array_equal(a, b) for a, b in zip(before, backbone.get_weights(), strict=True)]
    assert any(changed) and not all(changed)  # the top half of the backbone trained, the rest stayed frozen


def test_fit_phase_validates_logs_and_numbers_epochs_after_earlier_phases(tiny):
    images, labels, k = tiny
    classifier = build_classifier("baseline", num_classes=k, input_shape=(32, 32, 3))
    model = build_training_model(classifier, "light", seed=0)
    train = ArrayBatches(images, labels, indices=np.arange(0, len(images), 2), batch_size=16, num_classes=k)
    val = ArrayBatches(images, labels, indices=np.arange(1, len(images), 2), batch_size=16, num_classes=k)

    class Epochs(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seen: list[int] = []

        def on_epoch_end(self, epoch, logs=None):
            self.seen.append(epoch)

    epochs, lines = Epochs(), []
    phase = Phase("scratch", epochs=2, optimizer="adamw", learning_rate=1e-3, final_learning_rate=1e-5)
    result = fit_phase(model, phase, train, val, classifier=classifier, initial_epoch=3, callbacks=[epochs],
                       log=lines.append)
    assert lines == ["scratch: every layer trainable; adamw, learning rate 0.001 -> 1e-05 (cosine), up to 2 epochs"]
    assert epochs.seen == [3, 4]
    assert {"loss", "val_loss", "accuracy", "val_accuracy"} <= set(result.history)
    assert result.epochs_run == 2


def test_fit_phase_needs_batches_with_a_length(tiny):
    images, labels, k = tiny
    classifier = build_classifier("baseline", num_classes=k, input_shape=(32, 32, 3))
    with pytest.raises(CellkitError, match="train_data must have a length"):
        fit_phase(classifier, Phase("scratch", epochs=1), iter([(images, labels)]))
