"""``cellkit train --folds K`` / :func:`cellkit.train_folds`, and ``cellkit inspect --labels-from``."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import cellkit
from cellkit.cli import main
from cellkit.data import Dataset
from cellkit.errors import DataError
from cellkit.train import Recipe, load_folds, train_folds
from cellkit.train.cross_validation import CV_JSON, OOF_NPZ, fold_splits

RECIPE = Recipe(backbone="baseline", batch_size=16, augmentation="none").with_epochs(1)


@pytest.fixture(scope="module")
def tiny() -> Dataset:
    """16 sample images per class at 32x32, the last 6 of class 0 exact copies of its first 6."""
    ds = cellkit.load("sample")
    idx = np.concatenate([np.flatnonzero(ds.labels == c)[:16] for c in range(ds.num_classes)])
    small = np.stack([cv2.resize(im, (32, 32), interpolation=cv2.INTER_AREA) for im in ds.images[idx]])
    small[10:16] = small[0:6]
    return Dataset(small, ds.labels[idx], ds.class_names, ids=[f"im{i:03d}" for i in range(len(idx))])


@pytest.fixture(scope="module")
def cv_dir(tiny, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cv") / "folds"
    train_folds(tiny, RECIPE, out, folds=3, quiet=True)
    return out


def test_folds_partition_the_images_and_keep_duplicates_together(tiny, cv_dir):
    cv = load_folds(cv_dir)
    assert sorted(p.name for p in cv_dir.iterdir()) == ["cv.json", "ensemble.keras", "fold-1", "fold-2", "fold-3",
                                                       "oof.npz"]
    assert (cv.ids == np.asarray(tiny.ids)).all() and (cv.labels == tiny.labels).all()
    assert set(cv.fold.tolist()) == {0, 1, 2}
    np.testing.assert_allclose(cv.probabilities.sum(axis=1), 1.0, atol=1e-4)
    for i in range(6):  # an image and its copy: same fold (their out-of-fold predictions are honest)
        assert cv.fold[i] == cv.fold[10 + i]
    for f in range(3):
        split = json.loads((cv_dir / f"fold-{f + 1}" / "split.json").read_text())
        assert split["splits"]["test"]["indices"] == np.flatnonzero(cv.fold == f).tolist()
    info = json.loads((cv_dir / CV_JSON).read_text())
    assert info["folds"] == 3 and info["duplicate_groups"] >= 6 and len(info["test_accuracy"]) == 3
    assert info["mean_test_accuracy"] == pytest.approx(np.mean(info["test_accuracy"]))
    assert "3 folds: test accuracy" in str(cv)


def test_fold_splits_validate_on_the_other_folds():
    labels = np.repeat(np.arange(4), 25)
    splits = fold_splits(labels, 5, 0.1, 0, None)
    tests = np.concatenate([s.test for s in splits])
    assert sorted(tests.tolist()) == list(range(100))
    for s in splits:
        assert s.n == 100 and not set(s.val) & set(s.test) and len(s.val) == 8


def test_a_folder_without_cv_json_is_refused(cv_dir, tmp_path):
    with pytest.raises(DataError, match="no cv.json"):
        load_folds(tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / CV_JSON).write_text((cv_dir / CV_JSON).read_text())
    with pytest.raises(DataError, match="oof.npz"):
        load_folds(broken)


def test_refuses_a_non_empty_folder_and_one_fold(tiny, cv_dir):
    with pytest.raises(DataError, match="not empty"):
        train_folds(tiny, RECIPE, cv_dir, folds=3, quiet=True)
    with pytest.raises(ValueError, match="folds must be an integer >= 2"):
        train_folds(tiny, RECIPE, cv_dir / "new", folds=1, quiet=True)


def test_cli_folds_and_labels_from(tiny, tmp_path, capsys):
    data = tmp_path / "tiny.npz"
    np.savez(data, images=tiny.images, labels=tiny.labels, class_names=np.array(tiny.class_names),
             ids=np.array(tiny.ids))
    out = tmp_path / "cv"
    flags = ["--backbone", "baseline", "--epochs", "1", "--batch-size", "16", "--augmentation", "none", "--quiet"]
    assert main(["train", str(data), "--out", str(out), "--folds", "2", *flags]) == 0
    assert capsys.readouterr().out == ""  # --quiet
    assert (out / OOF_NPZ).is_file() and json.loads((out / CV_JSON).read_text())["folds"] == 2
    report = tmp_path / "report"
    assert main(["inspect", str(data), "--report", str(report), "--labels-from", str(out), "--quiet"]) == 0
    summary = json.loads((report / "summary.json").read_text())
    assert "label" in summary["issues"]["issues"] and (report / "montage_label.png").is_file()
    header = (report / "issues.csv").read_text().splitlines()[0].split(",")
    assert {"label_score", "is_label_issue", "label_suggested"} <= set(header)
    # bad input: exit 2 and a message naming what was expected
    assert main(["train", str(data), "--out", str(tmp_path / "x"), "--folds", "1", *flags]) == 2
    assert "--folds must be an integer >= 2" in capsys.readouterr().err
    assert main(["inspect", str(data), "--labels-from", str(tmp_path), "--quiet"]) == 2
    assert "no cv.json" in capsys.readouterr().err
