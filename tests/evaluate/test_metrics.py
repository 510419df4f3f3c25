"""Tests for cellkit.evaluate.metrics against hand-computed values (scikit-learn's definitions)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cellkit.evaluate.metrics import (
    accuracy,
    classification_report,
    confusion_matrix,
    f1_score,
    format_report,
    per_class_metrics,
    precision,
    recall,
)

# Four classes; class 3 is never predicted (precision 0/0 -> 0).
Y_TRUE = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])
Y_PRED = np.array([0, 1, 0, 1, 1, 2, 0, 2, 1, 2])
CM = [[2, 1, 0, 0], [0, 2, 0, 0], [1, 1, 2, 0], [0, 0, 1, 0]]
PREC = [2 / 3, 1 / 2, 2 / 3, 0.0]
REC = [2 / 3, 1.0, 1 / 2, 0.0]
F1 = [2 / 3, 2 / 3, 4 / 7, 0.0]
SUPPORT = [3, 2, 4, 1]


def test_confusion_matrix_rows_are_true_classes():
    cm = confusion_matrix(Y_TRUE, Y_PRED)
    assert cm.dtype == np.int64
    assert cm.tolist() == CM
    assert confusion_matrix(Y_TRUE, Y_PRED, num_classes=6).shape == (6, 6)


def test_per_class_values_by_hand():
    table = per_class_metrics(Y_TRUE, Y_PRED)
    np.testing.assert_allclose(table["precision"], PREC)
    np.testing.assert_allclose(table["recall"], REC)
    np.testing.assert_allclose(table["f1"], F1)
    assert table["support"].tolist() == SUPPORT


def test_weighted_and_macro_averages_by_hand():
    assert accuracy(Y_TRUE, Y_PRED) == pytest.approx(0.6)
    assert precision(Y_TRUE, Y_PRED) == pytest.approx(17 / 30)
    assert recall(Y_TRUE, Y_PRED) == pytest.approx(0.6)  # weighted recall == accuracy
    assert f1_score(Y_TRUE, Y_PRED) == pytest.approx(59 / 105)
    assert precision(Y_TRUE, Y_PRED, average="macro") == pytest.approx(11 / 24)
    assert recall(Y_TRUE, Y_PRED, average="macro") == pytest.approx(13 / 24)
    assert f1_score(Y_TRUE, Y_PRED, average="macro") == pytest.approx(10 / 21)
    np.testing.assert_allclose(f1_score(Y_TRUE, Y_PRED, average=None), F1)


def test_macro_ignores_classes_absent_from_both_true_and_pred():
    # num_classes=6 adds two empty classes; scikit-learn's default label set ignores them.
    assert f1_score(Y_TRUE, Y_PRED, average="macro", num_classes=6) == pytest.approx(10 / 21)
    assert f1_score(Y_TRUE, Y_PRED, average=None, num_classes=6).shape == (6,)


def test_probabilities_are_turned_into_argmax_labels():
    probs = np.eye(4)[Y_PRED] * 0.7 + 0.075
    assert accuracy(Y_TRUE, probs) == pytest.approx(0.6)
    assert confusion_matrix(Y_TRUE, probs).tolist() == CM
    # num_classes comes from the probability columns even if a class never occurs.
    assert confusion_matrix([0, 1], np.array([[0.9, 0.05, 0.05], [0.2, 0.7, 0.1]])).shape == (3, 3)


def test_perfect_and_all_wrong_predictions():
    y = np.array([0, 1, 2, 2])
    assert f1_score(y, y) == 1.0 and precision(y, y, average="macro") == 1.0
    wrong = (y + 1) % 3
    assert f1_score(y, wrong) == 0.0 and accuracy(y, wrong) == 0.0


def test_classification_report_dict_and_text():
    names = ["a", "b", "c", "d"]
    rep = classification_report(Y_TRUE, Y_PRED, class_names=names)
    assert rep["c"] == {
        "precision": pytest.approx(2 / 3),
        "recall": 0.5,
        "f1-score": pytest.approx(4 / 7),
        "support": 4,
    }
    assert rep["d"]["precision"] == 0.0
    assert rep["accuracy"] == pytest.approx(0.6)
    assert rep["weighted avg"]["f1-score"] == pytest.approx(59 / 105)
    assert rep["macro avg"]["recall"] == pytest.approx(13 / 24)
    assert rep["macro avg"]["support"] == 10
    assert rep["confusion_matrix"] == CM
    json.dumps(rep)  # plain Python values only
    text = format_report(rep, digits=3)
    lines = text.splitlines()
    assert lines[0].split() == ["precision", "recall", "f1-score", "support"]
    assert lines[2].split() == ["a", "0.667", "0.667", "0.667", "3"]
    assert any(line.split() == ["accuracy", "0.600", "10"] for line in lines)
    assert any(line.split()[:3] == ["weighted", "avg", "0.567"] for line in lines)


def test_report_without_names_uses_indices():
    rep = classification_report([0, 1, 1], [0, 1, 0])
    assert set(rep) >= {"0", "1", "accuracy"}


def test_empty_input_gives_zeros():
    assert accuracy([], []) == 0.0
    assert f1_score(np.array([], int), np.array([], int)) == 0.0


@pytest.mark.parametrize(
    ("y_true", "y_pred", "kwargs", "match"),
    [
        ([0, 1], [0], {}, r"same length. Received: len\(y_true\)=2, len\(y_pred\)=1"),
        ([[0, 1]], [0, 1], {}, r"y_true must be a 1-D array"),
        ([0.5, 1.0], [0, 1], {}, "y_true must hold integer class indices"),
        ([0, 1], [0.2, 0.8], {}, "pass probabilities as a 2-D array"),
        ([0, -1], [0, 1], {}, r"y_true must be non-negative class indices. Received: min\(y_true\)=-1"),
        ([0, 3], [0, 1], {"num_classes": 2}, "labels go up to 3 but num_classes=2"),
        ([0, 1], np.ones((2, 3)), {"num_classes": 2}, "3 probability columns but num_classes=2"),
        ([0, 1], np.ones((2, 2, 2)), {}, "y_pred must be labels"),
    ],
)
def test_bad_inputs_are_rejected(y_true, y_pred, kwargs, match):
    with pytest.raises(ValueError, match=match):
        confusion_matrix(y_true, y_pred, **kwargs)


def test_bad_average_and_names():
    with pytest.raises(
        ValueError, match="average must be 'weighted', 'macro' or None. Received: average='micro'"
    ):
        f1_score([0], [0], average="micro")
    with pytest.raises(ValueError, match="class_names must be unique"):
        classification_report([0, 1], [0, 1], class_names=["x", "x"])
    with pytest.raises(ValueError, match="class_names must be unique and not one of"):
        classification_report([0, 1], [0, 1], class_names=["accuracy", "x"])
    with pytest.raises(ValueError, match="labels go up to 2 but num_classes=2"):
        classification_report([0, 2], [0, 1], class_names=["a", "b"])


def test_roc_auc_matches_pairwise_definition():
    from cellkit.evaluate.metrics import roc_auc

    rng = np.random.default_rng(0)
    pos = rng.random(60) < 0.3
    score = np.round(rng.random(60), 1) + pos * 0.2  # ties on purpose
    pairs = [(a > b) + 0.5 * (a == b) for a in score[pos] for b in score[~pos]]
    assert roc_auc(pos, score) == pytest.approx(np.mean(pairs))
    assert roc_auc(pos, -score) == pytest.approx(1 - np.mean(pairs))
    with pytest.raises(ValueError, match="both classes"):
        roc_auc(np.zeros(3, bool), np.arange(3))
