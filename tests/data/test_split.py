"""Tests for cellkit.data.split: properties (hypothesis), sizes, errors, persistence."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cellkit.data.dataset import Dataset
from cellkit.data.split import SPLIT_NAMES, Split, stratified_kfold, stratified_split
from cellkit.errors import DataError
from strategies import group_arrays, label_arrays, seeds

PROPS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])  # example count: the profile

labels_st = label_arrays(num_classes=7)
fraction_st = st.sampled_from([0.0, 0.05, 0.08, 0.1, 0.2, 0.25, 0.3, 1 / 3])


def _parts(split: Split) -> list[np.ndarray]:
    return [getattr(split, name) for name in SPLIT_NAMES]


def _assert_partition(parts: list[np.ndarray], n: int) -> None:
    joined = np.concatenate(parts)
    assert joined.size == n
    assert np.array_equal(np.sort(joined), np.arange(n))
    for p in parts:
        assert p.dtype == np.int64
        assert np.all(np.diff(p) > 0)  # sorted, no repeats


def _assert_stratified(labels: np.ndarray, part: np.ndarray) -> None:
    """Each class count is within one image of n_c * len(part) / n (exact integer check)."""
    n = labels.size
    classes, counts = np.unique(labels, return_counts=True)
    got = np.array([(labels[part] == c).sum() for c in classes])
    assert np.all(np.abs(got * n - counts * part.size) < n), (got, counts * part.size / n)


# --------------------------------------------------------------------------- properties


@PROPS
@given(labels=labels_st, val=fraction_st, test=fraction_st, seed=seeds())
def test_split_is_a_stratified_partition_of_the_requested_sizes(labels, val, test, seed):
    n = labels.size
    assume(math.ceil(val * n - 1e-9) + math.ceil(test * n - 1e-9) < n)
    split = stratified_split(labels, val=val, test=test, seed=seed)
    _assert_partition(_parts(split), n)
    assert split.sizes() == {
        "train": n - math.ceil(val * n - 1e-9) - math.ceil(test * n - 1e-9),
        "val": math.ceil(val * n - 1e-9),
        "test": math.ceil(test * n - 1e-9),
    }
    for part in _parts(split):
        _assert_stratified(labels, part)


@PROPS
@given(labels=labels_st, seed=seeds())
def test_same_seed_gives_the_same_split(labels, seed):
    a = stratified_split(labels, val=0.1, test=0.2, seed=seed)
    b = stratified_split(labels, val=0.1, test=0.2, seed=seed)
    assert a == b
    assert a.seed == seed


@PROPS
@given(
    labels=labels_st,
    groups=group_arrays(12),
    seed=seeds(1000),
)
def test_groups_never_straddle_two_parts(labels, groups, seed):
    n = labels.size
    g = groups[:n]
    assume(math.ceil(0.1 * n - 1e-9) + math.ceil(0.2 * n - 1e-9) < n)
    split = stratified_split(labels, val=0.1, test=0.2, seed=seed, groups=g)
    _assert_partition(_parts(split), n)
    where = np.empty(n, dtype=np.int64)
    for i, part in enumerate(_parts(split)):
        where[part] = i
    for gid in np.unique(g[g >= 0]):
        assert np.unique(where[g == gid]).size == 1


@PROPS
@given(labels=labels_st, k=st.integers(2, 6), seed=seeds(1000))
def test_kfold_partitions_with_balanced_classes(labels, k, seed):
    n = labels.size
    assume(k <= n)
    folds = stratified_kfold(labels, n_splits=k, seed=seed)
    assert len(folds) == k
    tests = [te for _, te in folds]
    _assert_partition(tests, n)
    sizes = [te.size for te in tests]
    assert max(sizes) - min(sizes) <= 1
    for train, test in folds:
        assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(n))
        for c in np.unique(labels):
            per_fold = (labels[test] == c).sum()
            n_c = (labels == c).sum()
            assert n_c // k <= per_fold <= -(-n_c // k)


@PROPS
@given(
    labels=labels_st,
    groups=group_arrays(8),
    seed=seeds(1000),
)
def test_kfold_groups_never_straddle(labels, groups, seed):
    n = labels.size
    g = groups[:n]
    folds = stratified_kfold(labels, n_splits=3, seed=seed, groups=g)
    tests = [te for _, te in folds]
    _assert_partition(tests, n)
    fold_of = np.empty(n, dtype=np.int64)
    for i, te in enumerate(tests):
        fold_of[te] = i
    for gid in np.unique(g[g >= 0]):
        assert np.unique(fold_of[g == gid]).size == 1


# --------------------------------------------------------------------------- examples


def test_default_is_72_8_20_and_exactly_stratified_on_pbc_counts():
    # Class sizes of the cleaned pbc96 dataset (8 classes, 14,528 images).
    counts = [1035, 2649, 1318, 2461, 1032, 1207, 2830, 1996]
    labels = np.repeat(np.arange(8), counts)
    split = stratified_split(labels, seed=0)
    assert split.sizes() == {"train": 10459, "val": 1163, "test": 2906}
    for part in _parts(split):
        _assert_stratified(labels, part)


def test_counts_are_accepted_like_scikit_learn():
    labels = np.repeat([0, 1, 2], [40, 30, 30])
    split = stratified_split(labels, val=10, test=25, seed=3)
    assert split.sizes() == {"train": 65, "val": 10, "test": 25}
    assert split.val_size == 10 and split.test_size == 25


def test_val_zero_gives_an_empty_validation_part():
    split = stratified_split(np.arange(20) % 2, val=0, test=0.5, seed=0)
    assert split.val.size == 0 and split.test.size == 10


def test_different_seeds_give_different_splits():
    labels = np.arange(1000) % 4
    tests = {tuple(stratified_split(labels, seed=s).test) for s in range(5)}
    assert len(tests) == 5


def test_generator_seed_is_reproducible_and_recorded_as_none():
    labels = np.arange(200) % 5
    a = stratified_split(labels, seed=np.random.default_rng(7))
    b = stratified_split(labels, seed=np.random.default_rng(7))
    assert a == b and a.seed is None


def test_stratification_does_not_depend_on_label_values():
    labels = np.array(["b", "a", "c"] * 30)
    split = stratified_split(labels, val=0.1, test=0.2, seed=0)
    _assert_partition(_parts(split), labels.size)
    assert sorted(np.unique(labels[split.test], return_counts=True)[1]) == [6, 6, 6]
    big = stratified_split(np.array([10**12, -5] * 50), seed=0)  # sparse / negative labels
    _assert_partition(_parts(big), 100)


def test_a_singleton_class_lands_in_exactly_one_part():
    labels = np.array([0] * 50 + [1])
    split = stratified_split(labels, seed=0)
    assert sum(int((labels[p] == 1).sum()) for p in _parts(split)) == 1
    for part in _parts(split):
        _assert_stratified(labels, part)


def test_input_labels_are_not_modified():
    labels = np.array([2, 1, 0] * 20)
    before = labels.copy()
    stratified_split(labels, seed=0)
    stratified_kfold(labels, seed=0)
    assert np.array_equal(labels, before)


def test_groups_keep_duplicates_together_with_close_stratification():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 2000)
    groups = np.full(2000, -1)
    groups[:400] = np.arange(400) // 4  # 100 groups of four (mixed labels)
    split = stratified_split(labels, seed=1, groups=groups)
    for part, frac in zip(_parts(split), (0.72, 0.08, 0.2), strict=True):
        assert abs(part.size - frac * 2000) <= 4
        exp = np.bincount(labels, minlength=4) * part.size / 2000
        assert np.abs(np.bincount(labels[part], minlength=4) - exp).max() <= 4


def test_many_classes_are_still_within_one_image():
    labels = np.random.default_rng(1).integers(0, 700, 20_000)
    split = stratified_split(labels, val=0.13, test=0.17, seed=2)
    for part in _parts(split):
        _assert_stratified(labels, part)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"val": 0.5, "test": 0.5}, "leave no training samples.*val=0.5, test=0.5"),
        ({"val": 0.6, "test": 0.6}, "leave no training samples"),
        ({"test": -0.1}, r"test as a fraction must be in \[0, 1\). Received: test=-0.1"),
        ({"val": 1.0}, "val as a fraction must be in"),
        ({"test": float("nan")}, "test as a fraction"),
        ({"test": 100}, r"test as a count must be in \[0, 10\).*Received: test=100"),
        ({"val": -1}, "val as a count"),
        ({"test": "0.2"}, "test must be a fraction in .* or an int count. Received: test='0.2'"),
        ({"test": True}, "test must be a fraction"),
    ],
)
def test_bad_sizes_are_rejected_with_a_clear_message(kwargs, match):
    with pytest.raises(ValueError, match=match):
        stratified_split(np.arange(10) % 2, **kwargs)


def test_bad_labels_and_groups_are_rejected():
    with pytest.raises(ValueError, match=r"labels must be a 1-D array. Received: labels with shape=\(2, 2\)"):
        stratified_split(np.zeros((2, 2), int))
    with pytest.raises(ValueError, match="labels is empty"):
        stratified_split([])
    with pytest.raises(ValueError, match=r"groups must be an int array of shape \(4,\)"):
        stratified_split([0, 1, 0, 1], val=0, test=0.25, groups=[0, 1])
    with pytest.raises(
        ValueError, match=r"n_splits must be an int in \[2, n_samples=4\]. Received: n_splits=5"
    ):
        stratified_kfold([0, 1, 0, 1], n_splits=5)


# --------------------------------------------------------------------------- Split value


def test_split_json_round_trip_with_ids(tmp_path):
    labels = np.arange(30) % 3
    split = stratified_split(labels, seed=4)
    ids = [f"img{i}.jpg" for i in range(30)]
    path = tmp_path / "split.json"
    split.save(path, ids=ids)
    obj = json.loads(path.read_text())
    assert obj["seed"] == 4 and obj["val_size"] == 0.08 and obj["test_size"] == 0.2
    assert obj["splits"]["test"]["ids"] == [ids[i] for i in split.test]
    assert Split.load(path) == split
    assert [p.name for p in tmp_path.iterdir()] == ["split.json"]  # no temporary left


def test_split_load_reports_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "other"}')
    with pytest.raises(DataError, match=r"bad.json: not a cellkit split"):
        Split.load(bad)
    bad.write_text("{")
    with pytest.raises(DataError, match="bad.json: not valid JSON"):
        Split.load(bad)


def test_split_rejects_overlap_and_is_read_only():
    with pytest.raises(DataError, match="disjoint and together cover"):
        Split(train=np.array([0, 1]), val=np.array([1]), test=np.array([2]))
    with pytest.raises(DataError, match="disjoint and together cover"):
        Split(train=np.array([0, 1]), val=np.array([3]), test=np.array([4]))
    src = np.array([3, 0, 2])
    split = Split(train=src, val=np.array([1]), test=np.array([], dtype=np.int64))
    assert split.train.tolist() == [0, 2, 3] and src.tolist() == [3, 0, 2]
    with pytest.raises(ValueError):
        split.train[0] = 5


def test_subsets_returns_datasets():
    ds = Dataset(np.zeros((20, 4, 4, 3), np.uint8), labels=np.arange(20) % 2, class_names=("a", "b"))
    split = stratified_split(ds.labels, val=0.1, test=0.2, seed=0)
    parts = split.subsets(ds)
    assert {k: len(v) for k, v in parts.items()} == split.sizes()
    assert parts["test"].ids == tuple(str(i) for i in split.test)
    with pytest.raises(DataError, match="split indexes 20 samples but the dataset has 3"):
        split.subsets(ds.subset([0, 1, 2]))


# --------------------------------------------------------------------------- command line


def _npz(tmp_path, labelled: bool = True):
    from cellkit.data import save_npz

    labels = np.repeat(np.arange(3), [20, 12, 8])
    ds = Dataset(
        np.random.default_rng(0).integers(0, 256, (40, 8, 8, 3), dtype=np.uint8),
        labels=labels if labelled else None,
        class_names=("a", "b", "c") if labelled else (),
        ids=[f"cell_{i:02d}.png" for i in range(40)],
    )
    return save_npz(ds, tmp_path / "cells.npz"), labels


def test_cli_split_writes_indices_and_ids(tmp_path, capsys):
    from cellkit.cli import main

    data, labels = _npz(tmp_path)
    out = tmp_path / "out"
    assert main(["split", str(data), "--out", str(out), "--test", "0.25", "--val", "4", "--seed", "3"]) == 0
    doc = json.loads((out / "split.json").read_text())
    expected = stratified_split(labels, val=4, test=0.25, seed=3)
    assert Split.from_dict(doc) == expected
    assert doc["seed"] == 3 and doc["val_size"] == 4 and doc["test_size"] == 0.25
    assert doc["class_names"] == ["a", "b", "c"] and doc["group_duplicates"] is False
    test = doc["splits"]["test"]
    assert test["ids"] == [f"cell_{i:02d}.png" for i in expected.test]
    assert test["class_counts"] == {"a": 5, "b": 3, "c": 2}
    assert sorted(p.name for p in out.iterdir()) == ["split.json"]
    assert "train 26 (65.0%), val 4 (10.0%), test 10 (25.0%)" in capsys.readouterr().out


def test_cli_split_groups_duplicates(tmp_path, monkeypatch):
    import sys
    import types

    from cellkit.cli import main

    data, _ = _npz(tmp_path)
    calls = []

    def duplicate_groups(images):
        calls.append(images.shape)
        groups = np.full(len(images), -1, dtype=np.int64)
        groups[[0, 21, 39]] = 0  # one group spanning three classes
        groups[[1, 2]] = 1
        return groups

    fake = types.ModuleType("cellkit.quality.duplicates")
    fake.duplicate_groups = duplicate_groups
    monkeypatch.setitem(sys.modules, "cellkit.quality.duplicates", fake)
    for seed in range(4):
        out = tmp_path / f"out{seed}"
        assert (
            main(["split", str(data), "--out", str(out), "--group-duplicates", "--seed", str(seed), "-q"])
            == 0
        )
        doc = json.loads((out / "split.json").read_text())
        assert doc["group_duplicates"] is True and doc["duplicate_groups"] == 2
        where = {i: part for part in SPLIT_NAMES for i in doc["splits"][part]["indices"]}
        assert where[0] == where[21] == where[39] and where[1] == where[2]
    assert calls == [(40, 8, 8, 3)] * 4


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--test", "0.7", "--val", "0.3"], "leave no training samples"),
        (["--test", "-0.2"], "test as a fraction must be in"),
    ],
)
def test_cli_split_bad_sizes_exit_2_without_output(tmp_path, capsys, extra, message):
    from cellkit.cli import main

    data, _ = _npz(tmp_path)
    assert main(["split", str(data), "--out", str(tmp_path / "out"), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cli_split_bad_input_exit_2(tmp_path, capsys):
    from cellkit.cli import main

    assert main(["split", str(tmp_path / "missing.npz"), "--out", str(tmp_path / "o")]) == 2
    assert main(["split", "sample", "--out", str(tmp_path / "o"), "--test", "abc"]) == 2
    assert (
        "expected a fraction such as 0.2 or a count such as 300. Received: 'abc'" in capsys.readouterr().err
    )
    data, _ = _npz(tmp_path, labelled=False)
    assert main(["split", str(data), "--out", str(tmp_path / "o")]) == 2
    assert "needs labelled data" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
