"""Predicting new images: flat folders, the predictions table, its quality flags, ``cellkit predict``."""

from __future__ import annotations

import csv
import json
import os
import warnings
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest

import cellkit
from cellkit.cli import main
from cellkit.data import Dataset, DataWarning
from cellkit.errors import DataError
from cellkit.inference import Predictions, PredictionWarning, predict_dataset, predict_proba
from cellkit.inference.saving import save_model, saved_class_names
from cellkit.inference.tta import with_tta

SIZE = 32
CLASSES = ("red", "blue")


def _images(n: int, seed: int = 0, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """``n`` RGB images, reddish (label 0) and bluish (label 1) in turn, with noise; and their labels."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    base = np.where(labels[:, None] == 0, [170, 90, 60], [60, 90, 170]) + rng.integers(-40, 40, (n, 3))
    images = base[:, None, None, :] + rng.normal(0, 25, (n, size, size, 3))
    return np.clip(images, 0, 255).astype(np.uint8), labels


def _classifier(size: int = SIZE) -> keras.Model:
    """A tiny classifier whose weights are set, not fitted: red minus blue decides (fast, deterministic)."""
    inp = keras.Input((size, size, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(inp))
    dense = keras.layers.Dense(2, activation="softmax")
    model = keras.Model(inp, dense(x))
    dense.set_weights([np.array([[12, -12], [0, 0], [-12, 12]], np.float32), np.zeros(2, np.float32)])
    return model


def _write_png(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR) if img.ndim == 3 else img)


def _flat_folder(root: Path, images: np.ndarray) -> Path:
    for i, img in enumerate(images):
        _write_png(root / f"cell_{i:03d}.png", img)
    return root


@pytest.fixture(scope="module")
def model() -> keras.Model:
    return _classifier()


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory, model) -> Path:
    """A run folder as ``cellkit train`` leaves it, as far as predicting goes: model.keras and run.json."""
    folder = tmp_path_factory.mktemp("run")
    save_model(model, folder / "model.keras")
    (folder / "run.json").write_text(json.dumps({"status": "complete", "data": {"class_names": list(CLASSES)}}))
    return folder


@pytest.fixture(scope="module")
def flat(tmp_path_factory) -> Path:
    """A flat folder of 24 new images (no class sub-folders)."""
    return _flat_folder(tmp_path_factory.mktemp("new") / "cells", _images(24)[0])


# -- loading a flat folder ------------------------------------------------------------------------


def test_flat_folder_loads_as_an_unlabelled_dataset(tmp_path):
    images, _ = _images(5)
    root = _flat_folder(tmp_path / "cells", images)
    (root / "cell_damaged.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    (root / ".hidden.png").write_bytes(b"ignored")
    with pytest.warns(DataWarning, match="cell_damaged.png"):
        ds = cellkit.load(root)
    assert ds.labels is None and ds.class_names == () and ds.num_classes == 0
    assert ds.ids == tuple(f"cell_{i:03d}.png" for i in range(5))
    assert ds.images.shape == (5, SIZE, SIZE, 3)
    np.testing.assert_array_equal(ds.images, images)
    assert [Path(p).name for p, _ in ds.problems] == ["cell_damaged.png"]
    with pytest.raises(DataError, match="cell_damaged.png"):
        cellkit.load(root, strict=True)


def test_flat_folder_takes_size_and_convert_like_a_class_folder(tmp_path):
    images, _ = _images(3)
    root = _flat_folder(tmp_path / "cells", images)
    _write_png(root / "cell_gray.png", images[0, ..., 0])
    _write_png(root / "cell_big.png", cv2.resize(images[1], (48, 40)))
    with pytest.warns(DataWarning, match="cell_big.png.*differs") as record:
        ds = cellkit.load(root)
    assert "grayscale" in str(record[0].message) and len(ds) == 3
    resized = cellkit.load(root, size=(16, 16), convert=True)
    assert resized.images.shape == (5, 16, 16, 3) and resized.problems == ()
    assert "cell_gray.png" in resized.ids


def test_images_beside_class_folders_are_refused(tmp_path):
    images, _ = _images(3)
    _flat_folder(tmp_path / "mixed" / "a", images)
    _write_png(tmp_path / "mixed" / "stray.png", images[0])
    with pytest.raises(DataError, match=r"mixed: holds both image files at its top level \(stray.png\) and "
                                        r"sub-folders \(a\)"):
        cellkit.load(tmp_path / "mixed")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("nothing here")
    with pytest.raises(DataError, match="no class sub-folders and no image files"):
        cellkit.load(tmp_path / "empty")
    with pytest.raises(DataError, match="class_names given, but the folder has no class sub-folders"):
        cellkit.load(tmp_path / "mixed" / "a", class_names=("a",))


# -- the predictions ------------------------------------------------------------------------------


def test_predictions_are_the_argmax_of_predict_proba(model):
    images, labels = _images(30, seed=1)
    ds = Dataset(images, ids=[f"img{i}" for i in range(30)])
    preds = predict_dataset(model, ds, quality=False, batch_size=7)
    proba = predict_proba(model, images)
    np.testing.assert_allclose(preds.probabilities, proba, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(preds.probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert list(preds["predicted"]) == [f"class_{i}" for i in proba.argmax(axis=1)]
    np.testing.assert_allclose(preds["confidence"], proba.max(axis=1), rtol=1e-6)
    assert list(preds["id"]) == list(ds.ids)
    assert np.mean(proba.argmax(axis=1) == labels) > 0.9  # the tiny classifier does classify
    assert "label" not in preds.columns and "trust" not in preds.columns and not preds.quality_checked
    np.testing.assert_array_equal(preds["low_confidence"], preds["confidence"] < 0.5)


def test_progress_bar_path_gives_the_same_predictions(model):
    images, _ = _images(30, seed=2)
    quiet = predict_dataset(model, images, quality=False, batch_size=8)
    shown = predict_dataset(model, images, quality=False, batch_size=8, quiet=False)
    np.testing.assert_array_equal(quiet.probabilities, shown.probabilities)


def test_tta_averages_the_views(model):
    images, _ = _images(6, seed=3)
    preds = predict_dataset(model, images, tta="d4", quality=False)
    np.testing.assert_allclose(preds.probabilities, predict_proba(with_tta(model, "d4"), images), rtol=1e-5)
    with pytest.raises(ValueError, match="tta"):
        predict_dataset(model, images, tta="d5", quality=False)


def test_tta_that_rotates_refuses_non_square_images():
    inp = keras.Input((16, 32, 3))
    wide = keras.Model(inp, keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(inp)))
    images = np.zeros((4, 16, 32, 3), np.uint8)
    with pytest.raises(DataError, match="must be square.*16x32"):
        predict_dataset(wide, images, tta="rot90", quality=False)
    assert len(predict_dataset(wide, images, tta="flips", quality=False)) == 4


def test_quality_columns_with_20_images_or_more(model):
    images, labels = _images(24, seed=4)
    images[:3] = np.clip(images[:3].astype(int) * [1.0, 1.6, 0.4], 0, 255).astype(np.uint8)  # colour cast
    preds = predict_dataset(model, Dataset(images), seed=0)
    assert preds.quality_checked
    for name in ("superposition_score", "is_superposition_issue", "color_filter_score", "is_color_filter_issue",
                 "color_filter_strength", "low_confidence", "trust"):
        assert name in preds.columns and len(preds[name]) == 24
    report = cellkit.find_issues(Dataset(images), issues=("superposition", "color_filter"), random_state=0,
                                 quiet=True)
    np.testing.assert_array_equal(preds["is_color_filter_issue"], report["is_color_filter_issue"])
    np.testing.assert_array_equal(preds["superposition_score"], report["superposition_score"])


def test_quality_columns_left_out_below_20_images_with_a_warning(model):
    images, _ = _images(19, seed=5)
    with pytest.warns(PredictionWarning, match="quality columns left out: 19 images are too few.*at least 20"):
        preds = predict_dataset(model, images)
    assert not preds.quality_checked
    assert not any(c in preds.columns for c in ("superposition_score", "is_color_filter_issue", "trust"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not predict_dataset(model, images, quality=False).quality_checked  # no warning when not asked


def test_trust_is_false_when_any_flag_is_set(model):
    images, _ = _images(24, seed=6)
    images[:4] = np.clip(images[:4].mean(axis=-1, keepdims=True), 0, 255).astype(np.uint8)  # grey: unsure
    preds = predict_dataset(model, images, min_confidence=0.9)
    flags = preds["is_superposition_issue"] | preds["is_color_filter_issue"] | preds["low_confidence"]
    np.testing.assert_array_equal(preds["trust"], ~flags)
    np.testing.assert_array_equal(preds["low_confidence"], preds["confidence"] < 0.9)
    assert preds["low_confidence"].any() and preds["trust"].any()  # both kinds of rows are exercised
    assert preds.summary()["not_trusted"] == int(flags.sum())
    everything = predict_dataset(model, images, min_confidence=1.0)
    assert not everything["trust"].any()


def test_labelled_data_adds_label_and_correct(model, run_folder):
    images, labels = _images(12, seed=7)
    ds = Dataset(images, labels=labels, class_names=CLASSES)
    preds = predict_dataset(model, ds, quality=False)
    assert list(preds.columns)[:5] == ["id", "predicted", "confidence", "label", "correct"]
    assert list(preds["label"]) == [CLASSES[i] for i in labels]
    np.testing.assert_array_equal(preds["correct"], preds["label"] == preds["predicted"])
    assert preds.summary()["accuracy"] == pytest.approx(float(preds["correct"].mean()))
    # the data's classes in another order: matched by name to the model's (from its run folder)
    swapped = Dataset(images, labels=1 - labels, class_names=CLASSES[::-1])
    again = predict_dataset(run_folder, swapped, quality=False)
    assert list(again["label"]) == list(preds["label"])
    np.testing.assert_array_equal(again["correct"], preds["correct"])
    with pytest.raises(DataError, match=r"classes \['green'\] are not among the model's classes"):
        predict_dataset(run_folder, Dataset(images, labels=labels, class_names=("red", "green")), quality=False)


def test_class_names_from_the_run_folder_else_numbered(model, run_folder, tmp_path):
    images, _ = _images(4)
    assert saved_class_names(run_folder) == CLASSES
    assert predict_dataset(run_folder, images, quality=False).class_names == CLASSES
    assert "prob_red" in predict_dataset(run_folder, images, quality=False).columns
    bare = save_model(model, tmp_path / "bare.keras")
    assert saved_class_names(bare) is None
    assert predict_dataset(bare, images, quality=False).class_names == ("class_0", "class_1")
    (tmp_path / "metrics.json").write_text(json.dumps({"class_names": ["x", "y", "z"]}))  # wrong count: ignored
    assert predict_dataset(bare, images, quality=False).class_names == ("class_0", "class_1")
    named = predict_dataset(model, images, quality=False, class_names=("p", "q"))
    assert named.class_names == ("p", "q") and set(named["predicted"]) <= {"p", "q"}


def test_paths_are_loaded(run_folder, flat):
    preds = predict_dataset(str(run_folder), flat)
    assert len(preds) == 24 and preds.quality_checked and preds.source == str(flat)
    assert preds.class_names == CLASSES and list(preds["id"]) == sorted(p.name for p in flat.iterdir())
    with pytest.raises(ValueError, match="`dataset` must be a cellkit Dataset or a uint8 array"):
        predict_dataset(run_folder, [1, 2, 3])


def test_model_size_mismatch_names_both_sizes(model):
    with pytest.raises(DataError, match="expects 32x32.*data are 48x48.*--size 32x32"):
        predict_dataset(model, np.zeros((3, 48, 48, 3), np.uint8), quality=False)


def test_table_access_rows_and_repr(model):
    images, _ = _images(3)
    preds = predict_dataset(model, Dataset(images, ids=["a", "b", "c"]), quality=False)
    assert len(preds) == 3 and preds[1]["id"] == "b" and preds[-1]["id"] == "c"
    rows = preds.to_rows()
    assert [r["id"] for r in rows] == ["a", "b", "c"] and isinstance(rows[0]["confidence"], float)
    assert isinstance(rows[0]["low_confidence"], bool)
    assert repr(preds).startswith("Predictions(n=3, classes=['class_0', 'class_1'], quality=False")
    with pytest.raises(KeyError, match="no column 'nope'"):
        preds["nope"]
    with pytest.raises(IndexError):
        preds[3]
    with pytest.raises(ValueError, match="same length"):
        Predictions({"id": np.array(["a"]), "predicted": np.array([]), "confidence": np.array([])}, ())


def test_csv_round_trip(model, tmp_path):
    images, labels = _images(24, seed=8)
    preds = predict_dataset(model, Dataset(images, labels=labels, class_names=CLASSES))
    out = tmp_path / "p.csv"
    preds.to_csv(out)
    with open(out, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == list(preds.columns) and len(rows) == 25
    header, body = rows[0], rows[1:]
    for j, name in enumerate(header):
        col, text = preds[name], [r[j] for r in body]
        if col.dtype == bool:
            assert text == [str(bool(v)) for v in col]
        elif np.issubdtype(col.dtype, np.floating):
            np.testing.assert_array_equal(np.asarray(text, dtype=np.float64).astype(col.dtype), col)
        else:
            assert text == [str(v) for v in col]
    assert [p.name for p in tmp_path.iterdir()] == ["p.csv"]  # no temporary file left


def test_public_names():
    assert cellkit.predict is predict_dataset
    assert "predict" in dir(cellkit) and cellkit.Predictions is Predictions
    assert cellkit.inference.predict_dataset is predict_dataset


# -- cellkit predict ------------------------------------------------------------------------------


def test_cli_on_a_flat_folder(run_folder, flat, tmp_path, capsys):
    out = tmp_path / "predictions.csv"
    assert main(["predict", str(run_folder), str(flat), "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert f"24 images of {flat} predicted by {run_folder / 'model.keras'} -> {out}" in stdout
    assert "not to trust:" in stdout and "red" in stdout and "blue" in stdout
    with open(out, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["id"] for r in rows] == sorted(p.name for p in flat.iterdir())
    assert {r["predicted"] for r in rows} == set(CLASSES)
    assert all(r["trust"] in ("True", "False") for r in rows)
    counts = {c: sum(r["predicted"] == c for r in rows) for c in CLASSES}
    for c, k in counts.items():
        assert any(line.split()[:2] == [c, str(k)] for line in stdout.splitlines())


def test_cli_quiet_prints_nothing_and_options(run_folder, flat, tmp_path, capsys):
    out = tmp_path / "p.csv"
    argv = ["predict", str(run_folder), str(flat), "--out", str(out), "--tta", "flips", "--batch-size", "5",
            "--no-quality", "--quiet"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    with open(out, newline="", encoding="utf-8") as fh:
        header = next(csv.reader(fh))
    assert "trust" not in header and "is_superposition_issue" not in header and "low_confidence" in header


def test_cli_on_an_ensemble_and_few_images(model, tmp_path, capsys):
    from cellkit.inference import build_ensemble

    ensemble = save_model(build_ensemble([model, _classifier()]), tmp_path / "ensemble.keras")
    data = tmp_path / "few.npz"
    images, labels = _images(6)
    np.savez(data, images=images, labels=labels, class_names=np.array(CLASSES))
    out = tmp_path / "out" / "p.csv"
    assert main(["predict", str(ensemble), str(data), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "warning:" in captured.err and "6 images are too few" in captured.err
    assert "accuracy 1.0000" in captured.out and "quality flags not checked" in captured.out
    assert out.is_file()


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["{model}", "{data}", "--out", "{tmp}/p.txt"], ("p.txt", "ending in .csv")),
        (["{model}", "{data}", "--out", "{data}/p.csv"], ("--out lies inside the input folder",)),
        (["{model}", "{data}", "--out", "{tmp}/p.csv", "--size", "48x48"], ("32x32", "48x48", "--size")),
        (["{model}", "{data}", "--out", "{tmp}/p.csv", "--batch-size", "0"], ("--batch-size",)),
        (["{model}", "{data}", "--out", "{tmp}/p.csv", "--min-confidence", "2"], ("--min-confidence",)),
        (["{model}", "{mixed}", "--out", "{tmp}/p.csv"], ("mixed", "top level", "sub-folders")),
        (["{tmp}/none.keras", "{data}", "--out", "{tmp}/p.csv"], ("none.keras", "no such model")),
        (["{model}", "{data}", "--out", "{tmp}/p.csv", "--tta", "d5"], ("--tta", "d5")),
    ],
    ids=["suffix", "inside-input", "size", "batch", "min-confidence", "mixed", "no-model", "tta"],
)
def test_cli_bad_input_exits_2_and_writes_nothing(args, expect, run_folder, flat, tmp_path, capsys):
    mixed = tmp_path / "in" / "mixed"
    _flat_folder(mixed / "a", _images(2)[0])
    _write_png(mixed / "stray.png", _images(1)[0][0])
    work = tmp_path / "work"
    work.mkdir()
    before = sorted(os.listdir(flat))
    argv = [a.format(model=run_folder, data=flat, tmp=work, mixed=mixed) for a in args]
    assert main(["predict", *argv]) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    for token in expect:
        assert token in captured.err, captured.err
    assert list(work.iterdir()) == [] and sorted(os.listdir(flat)) == before


@pytest.mark.parametrize("command", ["train", "evaluate", "split"])
def test_commands_that_need_labels_refuse_a_flat_folder(command, run_folder, flat, tmp_path, capsys):
    argv = {
        "train": ["train", str(flat), "--out", str(tmp_path / "run"), "--backbone", "baseline", "--epochs", "1"],
        "evaluate": ["evaluate", str(run_folder), str(flat)],
        "split": ["split", str(flat), "--out", str(tmp_path / "split")],
    }[command]
    assert main([*argv, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{flat}: cellkit {command} needs labelled data" in err and "cellkit predict" in err
    assert list(tmp_path.iterdir()) == []
