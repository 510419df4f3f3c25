"""The issue-type registry (cellkit.quality.issue_types) and reports saved and loaded."""

from __future__ import annotations

import csv
import json
from typing import Any

import numpy as np
import pytest

import cellkit.quality.issue_types as registry
from cellkit.cli import main
from cellkit.data import Dataset, save_npz
from cellkit.errors import DataError
from cellkit.quality.issue_types import (
    CheckContext,
    IssueType,
    ScoredIssue,
    get_issue_type,
    register_issue_type,
)
from cellkit.quality.report import ISSUE_TYPES, IssueReport, find_issues


class DarkDetector:
    """Scores an image by its mean brightness: dark images (mean < 100) are issues."""

    def fit(self, images: Any) -> DarkDetector:
        self.threshold_ = 100 / 255
        return self

    def score_samples(self, images: Any) -> np.ndarray:
        images = getattr(images, "images", images)
        return images.reshape(len(images), -1).mean(axis=1) / 255


class DarkIssue(ScoredIssue):
    """A new issue type, written as a plugin author would: one class, one registration."""

    name = "dark"
    description = "an under-exposed image"
    removed_by_default = False

    def default_detector(self, context: CheckContext) -> DarkDetector:
        return DarkDetector()


@pytest.fixture
def with_dark(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    return register_issue_type(DarkIssue)


@pytest.fixture(scope="module")
def small(sample) -> Dataset:
    idx = np.arange(0, 480, 8)  # 60 images
    images = sample.images[idx].copy()
    images[[2, 9]] //= 3  # dark
    images[7] = images[4]  # an exact copy
    return Dataset(images, labels=sample.labels[idx], class_names=sample.class_names,
                   ids=tuple(sample.ids[i] for i in idx))


def test_builtin_types_in_report_order():
    assert registry.issue_type_names() == (*ISSUE_TYPES, "label")
    assert ISSUE_TYPES == registry.default_issue_types() == ("superposition", "color_filter", "duplicates")
    assert get_issue_type("label").needs and not get_issue_type("label").removed_by_default
    assert all(isinstance(get_issue_type(k), IssueType) for k in ISSUE_TYPES)
    assert get_issue_type("color_filter").removed_by_default


@pytest.mark.parametrize("bad", ["superposition", "not an identifier", ""])
def test_registration_refuses_taken_or_bad_names(bad, monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    class Bad(DarkIssue):
        name = bad

    with pytest.raises(ValueError, match="new identifier"):
        register_issue_type(Bad)
    with pytest.raises(TypeError, match="IssueType"):
        register_issue_type(object())  # type: ignore[arg-type]


def test_a_new_issue_type_is_one_class_and_one_registration(with_dark, small, tmp_path, capsys):
    report = find_issues(small, issues=("dark", "duplicates"), quiet=True)
    assert list(report.columns)[:5] == ["index", "id", "duplicate_group", "dark_score", "is_dark_issue"]  # registry order
    np.testing.assert_array_equal(np.flatnonzero(report.issue_mask("dark")), [2, 9])
    assert "dark" in str(report) and report.summary()["issues"]["dark"] == 2
    # the command line knows it without being told
    data = tmp_path / "small.npz"
    save_npz(small, data)
    assert main(["inspect", str(data), "--report", str(tmp_path / "r"), "--quiet"]) == 0
    assert (tmp_path / "r" / "montage_dark.png").is_file()
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["issues"]["issues"]["dark"] == 2
    out = tmp_path / "clean.npz"
    assert main(["clean", str(data), "--out", str(out), "--remove", "dark", "--quiet"]) == 0
    with open(out.with_suffix(".removed.csv"), newline="") as fh:
        assert [r["reasons"] for r in csv.DictReader(fh)] == ["dark", "dark"]


def test_save_and_load_round_trip(small, tmp_path):
    report = find_issues(small, quiet=True)
    report.save(tmp_path, extra={"source": "x"})
    back = IssueReport.load(tmp_path)
    assert back.issues == report.issues and back.class_names == report.class_names
    assert back.parameters == json.loads(json.dumps(report.parameters))
    assert list(back.columns) == list(report.columns)
    for name, col in report.columns.items():
        assert back[name].dtype.kind == col.dtype.kind, name
        np.testing.assert_array_equal(back[name], col)
    np.testing.assert_array_equal(back.issue_mask(strong_only=True), report.issue_mask(strong_only=True))
    assert str(back) == str(report)


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (lambda d: (d / "issues.csv").unlink(), "no issues.csv"),
        (lambda d: (d / "summary.json").write_text("{"), "not a cellkit issue report"),
        (lambda d: (d / "summary.json").write_text('{"issues": {"checked": ["blur"], "parameters": {}}}'),
         "not a cellkit issue report"),
        (lambda d: (d / "issues.csv").write_text("index,id\n1\n"), "not a cellkit issue report"),
        (lambda d: (d / "issues.csv").write_bytes(b"\xff\xfe\x00"), "not a cellkit issue report"),
    ],
)
def test_load_names_the_folder_when_it_is_not_a_report(small, tmp_path, damage, match):
    find_issues(small, issues="duplicates", quiet=True).save(tmp_path)
    damage(tmp_path)
    with pytest.raises(DataError, match=match) as info:
        IssueReport.load(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_clean_reuses_an_inspection_instead_of_checking_again(small, tmp_path, monkeypatch, capsys):
    data = tmp_path / "small.npz"
    save_npz(small, data)
    assert main(["inspect", str(data), "--report", str(tmp_path / "r"), "--quiet"]) == 0
    fresh, reused = tmp_path / "fresh.npz", tmp_path / "reused.npz"
    assert main(["clean", str(data), "--out", str(fresh), "--quiet"]) == 0

    def refit(*args, **kwargs):
        raise AssertionError("clean --report must not check the images again")

    monkeypatch.setattr("cellkit.quality.report.find_issues", refit)
    monkeypatch.setattr("cellkit.quality.find_issues", refit, raising=False)
    assert main(["clean", str(data), "--report", str(tmp_path / "r"), "--out", str(reused), "--quiet"]) == 0
    assert fresh.with_suffix(".removed.csv").read_text() == reused.with_suffix(".removed.csv").read_text()


def test_clean_refuses_a_report_of_other_data_or_other_issues(small, sample, tmp_path, capsys):
    data, other = tmp_path / "small.npz", tmp_path / "other.npz"
    save_npz(small, data)
    save_npz(sample.subset(range(40)), other)
    assert main(["inspect", str(other), "--report", str(tmp_path / "r"), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["clean", str(data), "--report", str(tmp_path / "r"), "--out", str(tmp_path / "c.npz")]) == 2
    err = capsys.readouterr().err
    assert "--report" in err and "not those of" in err and "Traceback" not in err
    find_issues(small, issues="duplicates", quiet=True).save(tmp_path / "d")
    assert main(["clean", str(data), "--report", str(tmp_path / "d"), "--out", str(tmp_path / "c.npz"),
                 "--remove", "superposition"]) == 2
    assert "did not check superposition" in capsys.readouterr().err
    assert not (tmp_path / "c.npz").exists()
