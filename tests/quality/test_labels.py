"""Likely label errors: :func:`cellkit.quality.labels.find_label_issues` and the ``"label"`` issue type."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import numpy as np
import pytest

import cellkit
from cellkit.errors import CellkitError, DataError
from cellkit.quality import find_issues
from cellkit.quality.labels import find_label_issues, probabilities_for
from cellkit.quality.report import IssueReport


def _noisy_probabilities(labels: np.ndarray, k: int, flipped: np.ndarray, seed: int = 0) -> np.ndarray:
    """A good model's out-of-fold probabilities: confident in the true class, which for the
    ``flipped`` images is not their given label."""
    rng = np.random.default_rng(seed)
    truth = labels.copy()
    truth[flipped] = (labels[flipped] + 1 + rng.integers(0, k - 1, flipped.size)) % k
    logits = rng.normal(0, 1, (labels.size, k))
    logits[np.arange(labels.size), truth] += 5.0
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def test_finds_the_flipped_labels_and_suggests_their_class():
    k, labels = 8, np.repeat(np.arange(8), 100)
    flipped = np.random.default_rng(1).choice(labels.size, 16, replace=False)
    proba = _noisy_probabilities(labels, k, flipped)
    found = find_label_issues(labels, proba)
    caught = np.flatnonzero(found.is_issue)
    assert set(flipped) <= set(caught) and len(caught) <= 2 * len(flipped)
    assert (found.suggested[flipped] != labels[flipped]).all()
    assert found.score[flipped].max() < np.median(found.score)  # the flipped ones score lowest


def test_bad_shapes_and_values_are_refused():
    with pytest.raises(ValueError, match="probabilities"):
        find_label_issues(np.zeros(3, int), np.full((4, 2), 0.5))
    with pytest.raises(ValueError, match="class indices"):
        find_label_issues(np.array([0, 5]), np.full((2, 2), 0.5))


def test_without_cleanlab_the_message_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "cleanlab", None)
    monkeypatch.setitem(sys.modules, "cleanlab.filter", None)
    with pytest.raises(CellkitError, match=r'pip install "cellkit\[labels\]"'):
        find_label_issues(np.array([0, 1, 0, 1]), np.full((4, 2), 0.5))


@pytest.fixture(scope="module")
def small():
    return cellkit.load("sample")


def test_find_issues_checks_labels_only_when_given_probabilities(small, tmp_path):
    default = find_issues(small, issues="duplicates", quiet=True)
    assert "label_score" not in default.columns
    flipped = np.arange(0, len(small), 40)  # 12 of 480
    proba = _noisy_probabilities(small.labels, small.num_classes, flipped)
    report = find_issues(small, issues=("duplicates", "label"), quiet=True, label_probabilities=proba)
    assert report.issues == ("duplicates", "label")
    flagged = set(np.flatnonzero(report["is_label_issue"]))
    # cleanlab's own result on these probabilities (7 of the 12, none wrong: with 60 images a
    # class, one or two flips leave some classes' noise rates estimated at zero)
    assert flagged <= set(flipped) and len(flagged) >= len(flipped) // 2
    assert set(report.most_suspicious("label", len(flagged)).tolist()) == flagged  # flagged ones first
    report.save(tmp_path / "r")
    again = IssueReport.load(tmp_path / "r")
    np.testing.assert_array_equal(again["label_suggested"], report["label_suggested"])
    with pytest.raises(DataError, match="out-of-fold probabilities"):
        find_issues(small, issues="label", quiet=True)
    unlabelled = cellkit.Dataset(small.images)
    with pytest.raises(DataError, match="labelled images"):
        find_issues(unlabelled, issues="duplicates", quiet=True, label_probabilities=proba)


def test_probabilities_are_matched_by_image_id():
    cv = SimpleNamespace(ids=np.array(["b", "a", "c"]), probabilities=np.eye(3), out="cv")
    np.testing.assert_array_equal(probabilities_for(np.array(["a", "c"]), cv), np.eye(3)[[1, 2]])
    with pytest.raises(DataError, match="no out-of-fold prediction"):
        probabilities_for(np.array(["a", "zz"]), cv)
