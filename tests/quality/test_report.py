"""find_issues and IssueReport (cellkit.quality.report)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

import cellkit.quality.report as report_mod
from cellkit.corrupt.color import BLUE_FILTER_GAINS, color_filter
from cellkit.data import Dataset
from cellkit.quality.color import ColorFilterDetector, background_chroma, color_features
from cellkit.quality.report import ISSUE_TYPES, IssueReport, find_issues


class FakeDetector:
    """Same interface as the real detectors: dark images (mean < 100) are issues."""

    def __init__(self, fitted: bool = False) -> None:
        self.fit_calls = 0
        if fitted:
            self.threshold_ = 100 / 255

    def fit(self, images):
        self.fit_calls += 1
        self.threshold_ = 100 / 255
        return self

    def score_samples(self, images):
        images = getattr(images, "images", images)
        return images.reshape(len(images), -1).mean(axis=1) / 255

    def __repr__(self) -> str:
        return "FakeDetector()"


@pytest.fixture(scope="module")
def data(sample) -> Dataset:
    """40 sample images, 3 of them darkened (fake issues), plus exact/brightened copies."""
    base = sample.subset(np.arange(0, 480, 12))  # 40 images, 5 per class
    images = base.images.copy()
    images[[3, 17, 30]] //= 3  # dark: flagged by FakeDetector
    copies = np.concatenate([images[[5, 6]], np.clip(images[[5]].astype(int) + 8, 0, 255).astype(np.uint8)])
    return Dataset(
        np.concatenate([images, copies]),
        labels=np.r_[base.labels, base.labels[[5, 6, 5]]],
        class_names=base.class_names,
        ids=base.ids + ("copy-5", "copy-6", "bright-5"),
    )


@pytest.fixture(scope="module")
def report(data) -> IssueReport:
    return find_issues(data, superposition_detector=FakeDetector(), color_detector=FakeDetector(), quiet=True)


def test_columns_lengths_and_dtypes(report, data):
    assert list(report.columns) == [
        "index",
        "id",
        "superposition_score",
        "is_superposition_issue",
        "color_filter_score",
        "is_color_filter_issue",
        "duplicate_group",
        "label",
        "class_name",
    ]
    assert len(report) == len(data) == 43
    assert all(len(c) == 43 for c in report.columns.values())
    assert report["index"].dtype == np.int64 and report["duplicate_group"].dtype == np.int64
    assert report["superposition_score"].dtype == np.float64 and report["is_color_filter_issue"].dtype == bool
    assert report["id"].dtype.kind == "U" and report["id"][40] == "copy-5"
    np.testing.assert_array_equal(report["label"], data.labels)
    assert report["class_name"][0] == data.class_names[data.labels[0]]
    np.testing.assert_array_equal(np.flatnonzero(report["is_superposition_issue"]), [3, 17, 30])
    assert report.issues == ISSUE_TYPES


def test_duplicate_groups_and_mask(report):
    g = report["duplicate_group"]
    assert g[5] >= 0 and g[5] == g[40] == g[42] and g[6] >= 0 and g[6] == g[41] and g[5] != g[6]
    assert np.sum(g >= 0) == 5
    mask = report.issue_mask("duplicates")
    assert mask.sum() == 3  # one kept per group
    # image 42 (brightened copy) is the most typical of its group under the fake scores
    reps = report.duplicate_representatives()
    assert set(reps.tolist()) == {42, 6}
    assert not mask[42] and mask[5] and mask[40]


def test_summary_counts_match_masks(report, data):
    s = report.summary()
    assert s["n_images"] == 43
    for kind in ISSUE_TYPES:
        assert s["issues"][kind] == report.issue_mask(kind).sum()
        assert sum(row[kind] for row in s["by_class"].values()) == s["issues"][kind]
    assert s["any_issue"] == report.issue_mask().sum() == report.issue_mask(list(ISSUE_TYPES)).sum()
    assert sum(row["n_images"] for row in s["by_class"].values()) == 43
    assert set(s["by_class"]) == set(data.class_names)
    assert s["duplicates"] == {"n_groups": 2, "n_images_in_groups": 5, "n_redundant": 3}
    assert s["parameters"]["superposition_threshold"] == pytest.approx(100 / 255)
    assert s["parameters"]["duplicate_radius"] == 4


def test_most_suspicious(report):
    top = report.most_suspicious("superposition", 3)
    assert sorted(top.tolist()) == [3, 17, 30]
    scores = report["color_filter_score"][report.most_suspicious("color_filter", None)]
    assert np.all(np.diff(scores) >= 0) and len(scores) == 43
    assert report.most_suspicious("duplicates", None).tolist() == [5, 40, 41]
    assert report.most_suspicious("superposition", 0).shape == (0,)
    with pytest.raises(ValueError, match="checked in this report.*Received: 'blur'"):
        report.most_suspicious("blur")
    with pytest.raises(ValueError, match="k=-1"):
        report.most_suspicious("superposition", -1)


def test_str_is_a_readable_report(report):
    text = str(report)
    assert "Issues in 43 images" in text and "lower = more likely an issue" in text
    for kind in ISSUE_TYPES:
        assert kind in text
    assert "2 groups, 5 images" in text and "copy-5" in text and "basophil" in text


def test_csv_round_trip(report, tmp_path):
    path = tmp_path / "out" / "issues.csv"
    report.to_csv(path)
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(report) and list(rows[0]) == list(report.columns)
    for name, col in report.columns.items():
        values = [r[name] for r in rows]
        if col.dtype == bool:
            np.testing.assert_array_equal(np.array(values) == "True", col)
        elif col.dtype.kind == "f":
            np.testing.assert_array_equal(np.array(values, float), col)  # exact: repr
        elif col.dtype.kind == "i":
            np.testing.assert_array_equal(np.array(values, np.int64), col)
        else:
            assert values == col.tolist()


def test_failed_csv_write_leaves_nothing(report, tmp_path, monkeypatch):
    path = tmp_path / "issues.csv"
    path.write_text("previous\n")
    calls = {"n": 0}
    real_cell = report_mod.csv_cell

    def failing_cell(value):
        calls["n"] += 1
        if calls["n"] > 50:
            raise RuntimeError("disk full")
        return real_cell(value)

    monkeypatch.setattr(report_mod, "csv_cell", failing_cell)
    with pytest.raises(RuntimeError, match="disk full"):
        report.to_csv(path)
    assert path.read_text() == "previous\n"  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["issues.csv"]  # no temporary left
    with pytest.raises(RuntimeError):
        report.to_csv(tmp_path / "new.csv")
    assert not (tmp_path / "new.csv").exists()


def test_prefitted_detectors_are_used_as_is(data):
    sup, col = FakeDetector(fitted=True), FakeDetector()
    find_issues(
        data,
        superposition_detector=sup,
        color_detector=col,
        issues=("superposition", "color_filter"),
        quiet=True,
    )
    assert sup.fit_calls == 0 and col.fit_calls == 1


def test_issue_subset_and_unlabelled_array(data):
    r = find_issues(data.images, issues="duplicates", quiet=True)
    assert list(r.columns) == ["index", "id", "duplicate_group"]
    assert r["id"][:3].tolist() == ["0", "1", "2"]
    assert r.issue_mask().sum() == 3 and "by_class" not in r.summary()
    with pytest.raises(ValueError, match=r"checked in this report, \('duplicates',\)"):
        r.issue_mask("superposition")
    with pytest.raises(ValueError, match="checked in this report"):
        r.most_suspicious("color_filter")
    assert "Issues in 43 images" in str(r)


@pytest.mark.parametrize("issues", [(), ("blur",), ("duplicates", "duplicates")])
def test_bad_issue_names(data, issues):
    with pytest.raises(ValueError, match="`issues` must be distinct names"):
        find_issues(data, issues=issues, quiet=True)


def test_report_validation():
    with pytest.raises(ValueError, match="same length"):
        IssueReport({"index": np.arange(3), "duplicate_group": np.zeros(2, np.int64)}, ["duplicates"])
    with pytest.raises(ValueError, match="needs the columns"):
        IssueReport({"index": np.arange(3)}, ["color_filter"])


def test_find_issues_with_the_real_detectors(sample):
    """The real detectors end to end on a small dataset with planted issues."""
    from cellkit.quality.superposition import SuperpositionDetector

    base = sample.subset(np.arange(0, 480, 5))  # 96 images
    blue = background_chroma(color_features(base.images))[:, 0] < 0.1  # the sample's own blue casts
    clean = np.flatnonzero(~blue)
    planted = clean[:4]
    images = base.images.copy()
    images[planted] = color_filter(images[planted], BLUE_FILTER_GAINS)
    images = np.concatenate([images, images[clean[10:12]]])  # two exact copies
    ds = Dataset(images, labels=np.r_[base.labels, base.labels[clean[10:12]]], class_names=base.class_names)
    sup = SuperpositionDetector(random_state=0, max_iter=15, hidden_units=4, synthetic_ratio=0.5)
    r = find_issues(
        ds, superposition_detector=sup, color_detector=ColorFilterDetector(random_state=0), quiet=True
    )
    assert hasattr(sup, "threshold_")  # it was fitted on the data
    for kind in ("superposition", "color_filter"):
        s = r[f"{kind}_score"]
        assert s.shape == (98,) and np.all((s >= 0) & (s <= 1))
        np.testing.assert_array_equal(
            r[f"is_{kind}_issue"], s < r.summary()["parameters"][f"{kind}_threshold"]
        )
    flagged = np.flatnonzero(r["is_color_filter_issue"])
    expected = np.union1d(planted, np.flatnonzero(blue))
    np.testing.assert_array_equal(flagged, expected)
    g = r["duplicate_group"]
    assert g[clean[10]] == g[96] >= 0 and g[clean[11]] == g[97] >= 0
    assert r.summary()["duplicates"]["n_groups"] == 2
