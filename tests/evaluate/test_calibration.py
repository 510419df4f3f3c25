"""Calibration (issue 20, item 3): the ECE, temperature scaling saved in the model, AUC and log-loss.

NumPy checks run on synthetic predictions whose calibration is known by construction; the
model checks use tiny Keras models (a few Dense weights) and run on the backend of the
session (``KERAS_BACKEND``); the save / load round trip runs in fresh interpreters on
TensorFlow and JAX.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from cellkit.cli import main
from cellkit.evaluate import (
    calibrate_model,
    calibration_bins,
    calibration_summary,
    expected_calibration_error,
    fit_temperature,
    format_metrics,
    log_loss,
    metrics_from_predictions,
    plot_reliability_diagram,
    roc_auc,
    roc_auc_ovr,
)
from cellkit.inference import (
    TemperatureScaling,
    apply_temperature,
    build_ensemble,
    save_model,
    with_temperature,
    with_tta,
)

PNG = b"\x89PNG\r\n\x1a\n"


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _calibrated(n: int, k: int = 4, scale: float = 2.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels drawn from their own softmax: perfectly calibrated by construction."""
    rng = np.random.default_rng(seed)
    logits = scale * rng.normal(size=(n, k))
    labels = (_softmax(logits).cumsum(axis=1) < rng.random((n, 1))).sum(axis=1)
    return logits, np.minimum(labels, k - 1)


# ----------------------------------------------------------------------------- ECE


def test_ece_of_perfectly_calibrated_probabilities_is_near_zero():
    logits, labels = _calibrated(100_000)
    assert expected_calibration_error(labels, _softmax(logits)) < 0.01


def test_ece_of_an_over_confident_model_is_large():
    logits, labels = _calibrated(100_000)
    over = _softmax(4.0 * logits)  # the same ranking, four times too sure
    ece = expected_calibration_error(labels, over)
    assert ece > 0.15
    # the ECE is the confidence minus the accuracy when every bin is over-confident
    top = over.max(axis=1)
    accuracy = float((over.argmax(1) == labels).mean())
    assert ece == pytest.approx(top.mean() - accuracy, abs=0.01)


def test_bin_table_matches_a_direct_count():
    rng = np.random.default_rng(1)
    proba = _softmax(rng.normal(size=(500, 3)) * 3)
    proba[0] = [1.0, 0.0, 0.0]  # confidence 1: the last bin
    proba[1] = [0.4, 0.4, 0.2]  # on the edge 6/15: bin 5, (5/15, 6/15]
    labels = rng.integers(0, 3, 500)
    table = calibration_bins(labels, proba, bins=15)
    conf, correct = proba.max(1), proba.argmax(1) == labels
    assert table["count"].sum() == 500 and table["count"][-1] >= 1
    assert table["lower"][0] == 0 and table["upper"][-1] == 1
    for b in range(15):
        members = (conf > b / 15) & (conf <= (b + 1) / 15) if b else conf <= 1 / 15
        assert table["count"][b] == members.sum()
        if members.any():
            assert table["accuracy"][b] == pytest.approx(correct[members].mean())
            assert table["confidence"][b] == pytest.approx(conf[members].mean())
    weighted = (table["count"] * np.abs(table["gap"])).sum() / 500
    assert expected_calibration_error(labels, proba) == pytest.approx(weighted)
    assert expected_calibration_error([], np.zeros((0, 3))) == 0.0


@pytest.mark.parametrize(
    ("labels", "proba", "match"),
    [([0, 1], [[0.5, 0.5]], "one label per row"), ([0, 3], [[0.5, 0.5], [0.5, 0.5]], "class indices"),
     ([0], [[np.nan, 1.0]], "finite"), ([0], [0.5, 0.5], "shape")],
)
def test_bad_inputs_are_refused(labels, proba, match):
    with pytest.raises(ValueError, match=match):
        expected_calibration_error(labels, proba)


def test_the_numpy_functions_import_neither_keras_nor_matplotlib():
    code = (
        "import sys, numpy as np\n"
        "from cellkit.evaluate import calibration_summary, expected_calibration_error, fit_temperature, roc_auc_ovr\n"
        "from cellkit.inference import apply_temperature\n"
        "p = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]); y = np.array([0, 1, 1])\n"
        "fit_temperature(p, y); calibration_summary(p, y, p, y); roc_auc_ovr(y, p); apply_temperature(p, 2.0)\n"
        "heavy = sorted(m for m in ('keras', 'tensorflow', 'jax', 'matplotlib') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_reliability_diagram_is_a_png(tmp_path):
    logits, labels = _calibrated(2000)
    out = plot_reliability_diagram(labels, _softmax(3 * logits), tmp_path / "r.png")
    assert out.read_bytes()[:8] == PNG
    assert [p.name for p in tmp_path.iterdir()] == ["r.png"]  # no temporary file left


# ----------------------------------------------------------------------------- temperature


@pytest.mark.parametrize("true_t", [2.5, 0.5])
def test_fit_temperature_recovers_a_known_temperature_from_logits(true_t):
    logits, labels = _calibrated(30_000, seed=2)
    fit = fit_temperature(true_t * logits, labels)
    assert fit.from_logits
    assert fit.temperature == pytest.approx(true_t, rel=0.05)
    assert fit.nll_after < fit.nll_before and fit.images == 30_000


def test_fit_temperature_recovers_it_from_probabilities_too():
    logits, labels = _calibrated(30_000, seed=3)
    fit = fit_temperature(_softmax(2.5 * logits), labels)
    assert not fit.from_logits
    assert fit.temperature == pytest.approx(2.5, rel=0.05)


def test_fit_temperature_is_robust_to_probabilities_of_exactly_zero_and_one():
    proba = np.array([[1.0, 0.0, 0.0]] * 30 + [[0.0, 1.0, 0.0]] * 10 + [[0.2, 0.3, 0.5]] * 5)
    labels = np.r_[[0] * 25, [2] * 5, [1] * 10, [2] * 5]  # 5 confident ones are wrong: p(true) = 0
    fit = fit_temperature(proba, labels)
    assert np.isfinite([fit.temperature, fit.nll_before, fit.nll_after]).all()
    assert fit.temperature > 1 and fit.nll_after < fit.nll_before
    calibrated = apply_temperature(proba, fit.temperature)
    assert np.isfinite(calibrated).all() and (calibrated.argmax(1) == proba.argmax(1)).all()


def test_calibration_summary_fits_on_one_part_and_measures_another():
    logits, labels = _calibrated(20_000, seed=4)
    over = _softmax(3.0 * logits)
    s = calibration_summary(over[:5000], labels[:5000], over[5000:], labels[5000:])
    assert s["temperature"] == pytest.approx(3.0, rel=0.1)
    assert s["ece_after"] < 0.02 < 0.1 < s["ece_before"]
    assert s["log_loss_after"] < s["log_loss_before"]
    assert s["calibration"]["fit_images"] == 5000 and s["calibration"]["eval_images"] == 15_000
    json.dumps(s)


def test_the_layer_computes_what_apply_temperature_computes():
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(6, 4)).astype("float32") * 4
    proba = _softmax(logits).astype("float32")
    proba[0] = [1.0, 0.0, 0.0, 0.0]
    for t in (0.5, 2.5):
        out = keras.ops.convert_to_numpy(TemperatureScaling(t)(proba))
        np.testing.assert_allclose(out, apply_temperature(proba, t), atol=1e-6)
        out = keras.ops.convert_to_numpy(TemperatureScaling(t, from_logits=True)(logits))
        np.testing.assert_allclose(out, logits / t, rtol=1e-6)
    with pytest.raises(ValueError, match="temperature"):
        TemperatureScaling(0.0)


# ----------------------------------------------------------------------------- models


def _classifier(seed: int = 0, softmax: bool = True, size: int = 8) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inp = keras.Input((size, size, 3))
    x = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inp))
    out = keras.layers.Dense(3, activation="softmax" if softmax else None)(keras.layers.Dense(8)(x))
    return keras.Model(inp, out, name=f"clf{seed}")


@pytest.fixture(scope="module")
def images() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(6)
    labels = np.arange(60) % 3
    x = rng.integers(0, 120, (60, 8, 8, 3)).astype(np.uint8)
    x[np.arange(60), :, :, labels] += 100
    return x, labels


@pytest.mark.parametrize("kind", ["plain", "logits", "tta", "ensemble"])
def test_calibrated_model_keeps_the_arg_max(kind, images):
    x, y = images
    model = {
        "plain": lambda: _classifier(),
        "logits": lambda: _classifier(softmax=False),
        "tta": lambda: with_tta(_classifier(), "d4"),
        "ensemble": lambda: build_ensemble([_classifier(0), _classifier(1)], tta="flips"),
    }[kind]()
    calibrated, info = calibrate_model(model, x, y, indices=np.arange(30), batch_size=16)
    p, q = model.predict(x, verbose=0), calibrated.predict(x, verbose=0)
    assert (p.argmax(1) == q.argmax(1)).all()
    assert info["from_logits"] == (kind == "logits") and info["images"] == 30
    assert isinstance(calibrated.layers[-1], TemperatureScaling)
    assert calibrated.layers[-1].temperature == pytest.approx(info["temperature"])
    np.testing.assert_allclose(q, apply_temperature(p, info["temperature"], kind == "logits"), atol=1e-5)


def test_calibrating_twice_multiplies_the_temperatures(images):
    x, _ = images
    model = _classifier()
    twice = with_temperature(with_temperature(model, 2.0), 1.5)
    assert sum(isinstance(layer, TemperatureScaling) for layer in twice.layers) == 1
    assert twice.layers[-1].temperature == pytest.approx(3.0)
    np.testing.assert_allclose(twice.predict(x, verbose=0), with_temperature(model, 3.0).predict(x, verbose=0),
                               atol=1e-6)


_SAVE = """
    import sys
    import keras, numpy as np
    from cellkit.evaluate import calibrate_model
    from cellkit.inference import build_ensemble, save_model, with_tta

    folder = sys.argv[1]
    def clf(seed):
        keras.utils.set_random_seed(seed)
        inp = keras.Input((8, 8, 3))
        x = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inp))
        return keras.Model(inp, keras.layers.Dense(3, activation="softmax")(x), name=f"clf{seed}")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (12, 8, 8, 3)).astype("uint8")
    y = np.arange(12) % 3
    for name, model in [("plain", clf(0)), ("tta", with_tta(clf(0), "flips")),
                        ("ensemble", build_ensemble([clf(0), clf(1)]))]:
        calibrated, info = calibrate_model(model, x, y)
        save_model(calibrated, f"{folder}/{name}.keras")
        np.save(f"{folder}/{name}.npy", calibrated.predict(x, verbose=0))
    np.save(f"{folder}/x.npy", x)
    print("saved")
"""

_LOAD = """
    import json, sys
    import cellkit
    import keras, numpy as np

    folder = sys.argv[1]
    x = np.load(f"{folder}/x.npy")
    out = {}
    for name in ("plain", "tta", "ensemble"):
        model = keras.models.load_model(f"{folder}/{name}.keras")
        np.testing.assert_allclose(model.predict(x, verbose=0), np.load(f"{folder}/{name}.npy"), atol=1e-6)
        out[name] = type(model.layers[-1]).__name__
    print(json.dumps({"backend": keras.backend.backend(), "last": out}))
"""


def _fresh(code: str, backend: str, folder: Path) -> str:
    if backend == "jax" and importlib.util.find_spec("jax") is None:
        pytest.skip("JAX is not installed")
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code), str(folder)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_calibrated_models_round_trip_with_plain_keras_after_import_cellkit(backend, tmp_path):
    assert _fresh(_SAVE, backend, tmp_path) == "saved"
    out = json.loads(_fresh(_LOAD, backend, tmp_path))
    assert out == {"backend": backend, "last": dict.fromkeys(("plain", "tta", "ensemble"), "TemperatureScaling")}


# ----------------------------------------------------------------------------- metrics dict


def test_metrics_dict_has_auc_log_loss_and_ece():
    logits, labels = _calibrated(3000, k=3, seed=7)
    proba = _softmax(3 * logits)
    m = metrics_from_predictions(labels, proba, ["a", "b", "c"])
    assert m["log_loss"] == pytest.approx(-np.mean(np.log(proba[np.arange(3000), labels])))
    assert m["ece"] == pytest.approx(expected_calibration_error(labels, proba)) and m["ece_bins"] == 15
    per_class = [roc_auc(labels == c, proba[:, c]) for c in range(3)]
    assert list(m["auc_per_class"].values()) == pytest.approx(per_class)
    assert m["auc_macro"] == pytest.approx(np.mean(per_class))
    text = format_metrics(m)
    assert f"{m['auc_macro']:.4f} (macro, one-vs-rest)" in text and f"ECE {m['ece']:.4f}" in text
    assert f"log-loss {m['log_loss']:.4f}" in text and " auc" in text.splitlines()[0]
    json.dumps(m)
    # logits give the same metrics as their probabilities
    same = metrics_from_predictions(labels, 3 * logits, ["a", "b", "c"])
    for key in ("accuracy", "log_loss", "ece", "auc_macro"):
        assert same[key] == pytest.approx(m[key])


def test_auc_of_a_class_no_image_has_is_none_and_left_out_of_the_macro():
    auc = roc_auc_ovr([0, 0, 1, 1], [[0.9, 0.05, 0.05], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.4, 0.5, 0.1]])
    assert auc == {"macro": 1.0, "per_class": [1.0, 1.0, None]}
    m = metrics_from_predictions([0, 0, 1, 1], np.array([[0.9, 0.05, 0.05], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1],
                                                         [0.4, 0.5, 0.1]]), ["a", "b", "c"])
    assert m["auc_per_class"]["c"] is None and "-" in format_metrics(m).splitlines()[3]
    assert log_loss([0], [[0.0, 1.0]]) == pytest.approx(-np.log(1e-7))


def test_format_metrics_reads_an_older_metrics_dict_without_the_new_keys():
    m = metrics_from_predictions([0, 1], np.eye(2), ["a", "b"])
    for key in ("log_loss", "ece", "ece_bins", "auc_macro", "auc_per_class"):
        del m[key]
    lines = format_metrics(m).splitlines()
    assert lines[-1].startswith("weighted avg") and " auc" not in lines[0]


# ----------------------------------------------------------------------------- command line


@pytest.fixture(scope="module")
def cli_files(tmp_path_factory, images) -> dict[str, Path]:
    """A tiny model (8x8 inputs, 3 classes), its labelled data, a split, and a run-like folder."""
    root = tmp_path_factory.mktemp("calibrate")
    x, y = images
    data = root / "cells.npz"
    np.savez(data, images=x, labels=y, class_names=np.array(["a", "b", "c"]))
    model = save_model(_classifier(), root / "model.keras")
    assert main(["split", str(data), "--out", str(root / "split"), "--val", "0.3", "--test", "0.3", "--quiet"]) == 0
    run = root / "run"
    run.mkdir()
    (run / "model.keras").write_bytes(model.read_bytes())
    (run / "split.json").write_bytes((root / "split" / "split.json").read_bytes())
    return {"root": root, "data": data, "model": model, "split": root / "split" / "split.json", "run": run}


def test_cli_calibrate_a_run_folder_fits_on_its_val_part_and_reports_test(cli_files, tmp_path, capsys):
    out = tmp_path / "calibrated.keras"
    assert main(["calibrate", str(cli_files["run"]), str(cli_files["data"]), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "fitted on val (18 images" in text and "ECE before" in text and "NLL after" in text
    rows = {line.split()[0]: line.split() for line in text.splitlines() if line.split()[:1] in (["val"], ["test"])}
    assert rows["val"][1] == "18" and rows["test"][1] == "18"
    from cellkit.inference import load_model

    calibrated = load_model(out)
    assert isinstance(calibrated.layers[-1], TemperatureScaling)
    x = np.load(cli_files["data"])["images"]
    original = load_model(cli_files["model"])
    assert (calibrated.predict(x, verbose=0).argmax(1) == original.predict(x, verbose=0).argmax(1)).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calibrated.keras"]


def test_cli_calibrate_without_a_split_fits_on_all_images(cli_files, tmp_path, capsys):
    out = tmp_path / "c.keras"
    assert main(["calibrate", str(cli_files["model"]), str(cli_files["data"]), "--out", str(out), "--quiet"]) == 0
    assert capsys.readouterr().out == "" and out.is_file()
    args = ["calibrate", str(cli_files["model"]), str(cli_files["data"]), "--out", str(tmp_path / "d.keras"),
            "--split-file", str(cli_files["split"]), "--subset", "train"]
    assert main(args) == 0
    assert "fitted on train (24 images" in capsys.readouterr().out


def test_cli_evaluate_reports_calibration_and_draws_the_figures(cli_files, tmp_path, capsys):
    rel, cm, js = tmp_path / "rel.png", tmp_path / "cm.png", tmp_path / "m.json"
    args = ["evaluate", str(cli_files["run"]), str(cli_files["data"]), "--subset", "test", "--reliability", str(rel),
            "--confusion", str(cm), "--json", str(js)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "log-loss" in text and "ECE" in text and "(macro, one-vs-rest)" in text
    assert rel.read_bytes()[:8] == PNG and cm.read_bytes()[:8] == PNG
    metrics = json.loads(js.read_text())
    assert {"auc_macro", "auc_per_class", "log_loss", "ece"} <= set(metrics) and metrics["images"] == 18


@pytest.mark.parametrize(
    ("argv", "expect"),
    [
        (["evaluate", "{model}", "{data}", "--reliability", "{data}"], ("--reliability", "input")),
        (["evaluate", "{model}", "{data}", "--confusion", "{tmp}/cm.jpg"], ("--confusion", ".png")),
        (["evaluate", "{model}", "{data}", "--confusion", "{tmp}/a.png", "--reliability", "{tmp}/a.png"],
         ("--reliability", "same file")),
        (["calibrate", "{model}", "{data}", "--out", "{model}"], ("--out", "input")),
        (["calibrate", "{model}", "{data}", "--out", "{tmp}/c.h5"], ("--out", ".keras")),
        (["calibrate", "{model}", "{data}", "--out", "{tmp}/c.keras", "--subset", "val"], ("--subset", "split")),
        (["calibrate", "{model}", "{data}", "--out", "{tmp}/c.keras", "--batch-size", "0"], ("--batch-size",)),
    ],
    ids=lambda a: " ".join(a) if isinstance(a, list) else None,
)
def test_cli_bad_outputs_are_refused_before_any_work(argv, expect, cli_files, tmp_path, capsys):
    before = sorted(p.name for p in cli_files["root"].iterdir())
    code = main([a.format(model=cli_files["model"], data=cli_files["data"], tmp=tmp_path) for a in argv] + ["--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert all(token in err for token in expect), err
    assert list(tmp_path.iterdir()) == [] and sorted(p.name for p in cli_files["root"].iterdir()) == before


def test_cli_calibrate_refuses_an_empty_subset(cli_files, tmp_path, capsys):
    from cellkit.data.split import Split

    split = Split.load(cli_files["split"])
    empty = tmp_path / "split.json"
    Split(np.sort(np.r_[split.train, split.val]), np.zeros(0, np.int64), split.test).save(
        empty, ids=[str(i) for i in range(split.n)])
    out = tmp_path / "c.keras"
    assert main(["calibrate", str(cli_files["model"]), str(cli_files["data"]), "--out", str(out), "--split-file",
                 str(empty)]) == 2
    assert "val part is empty" in capsys.readouterr().err and not out.exists()


# ----------------------------------------------------------------------------- training


def test_training_records_the_temperature_without_changing_the_saved_model(tmp_path):
    import cellkit
    from cellkit.data import Dataset
    from cellkit.inference import load_model
    from cellkit.train import Phase, Recipe, train

    ds = cellkit.load("sample")
    idx = np.concatenate([np.flatnonzero(ds.labels == c)[:10] for c in range(ds.num_classes)])
    small = Dataset(ds.images[idx, ::4, ::4], ds.labels[idx], ds.class_names, tuple(ds.ids[i] for i in idx))
    recipe = Recipe(backbone="baseline", augmentation="none", batch_size=16, val=0.25, test=0.25,
                    phases=(Phase("scratch", epochs=1, optimizer="adamw", learning_rate=1e-3),))
    result = train(small, recipe, tmp_path / "run", quiet=True)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["temperature"] > 0 and 0 <= metrics["ece_before"] <= 1 and 0 <= metrics["ece_after"] <= 1
    assert metrics["ece_before"] == pytest.approx(metrics["ece"])
    assert metrics["calibration"]["fit_subset"] == "val" and metrics["calibration"]["eval_subset"] == "test"
    assert metrics["calibration"]["fit_images"] == result.split.val.size
    assert metrics["calibration"]["eval_images"] == result.split.test.size == metrics["images"]
    saved = load_model(tmp_path / "run" / "model.keras")
    assert not any(isinstance(layer, TemperatureScaling) for layer in saved._flatten_layers())
