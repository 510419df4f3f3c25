"""``cellkit train / evaluate / ensemble / export`` end to end, and ``--distribute`` in subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

import cellkit
from cellkit.cli import main

TRAIN_FLAGS = ["--backbone", "baseline", "--epochs", "1", "--batch-size", "16", "--augmentation", "none", "--quiet"]


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory) -> Path:
    """16 sample images per class at 32x32, as an .npz the CLI can read."""
    ds = cellkit.load("sample")
    idx = np.concatenate([np.flatnonzero(ds.labels == c)[:16] for c in range(ds.num_classes)])
    small = np.stack([cv2.resize(im, (32, 32), interpolation=cv2.INTER_AREA) for im in ds.images[idx]])
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    np.savez(path, images=small, labels=ds.labels[idx], class_names=np.array(ds.class_names))
    return path


@pytest.fixture(scope="module")
def run_dir(tiny_npz, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "baseline"
    assert main(["train", str(tiny_npz), "--out", str(out), "--seed", "5", *TRAIN_FLAGS]) == 0
    return out


def test_train_writes_a_run_with_the_flags_applied(run_dir):
    recipe = json.loads((run_dir / "recipe.json").read_text())
    assert (recipe["backbone"], recipe["seed"], recipe["batch_size"]) == ("baseline", 5, 16)
    assert [p["epochs"] for p in recipe["phases"]] == [1]
    assert json.loads((run_dir / "run.json").read_text())["status"] == "complete"
    assert (run_dir / "model.keras").is_file() and (run_dir / "metrics.json").is_file()


def test_evaluate_on_the_runs_test_split_reproduces_its_metrics(run_dir, tiny_npz, tmp_path, capsys):
    out = tmp_path / "m.json"
    assert main(["evaluate", str(run_dir), str(tiny_npz), "--subset", "test", "--json", str(out)]) == 0
    got = json.loads(out.read_text())
    expected = json.loads((run_dir / "metrics.json").read_text())
    for key in ("accuracy", "f1_weighted", "f1_macro", "images"):
        assert got[key] == pytest.approx(expected[key])
    assert got["confusion_matrix"] == expected["confusion_matrix"] and got["per_class"] == expected["per_class"]
    table = capsys.readouterr().out
    assert "weighted avg" in table and "basophil" in table
    explicit = tmp_path / "m2.json"
    args = ["evaluate", str(run_dir / "model.keras"), str(tiny_npz), "--split-file", str(run_dir / "split.json"),
            "--subset", "test", "--json", str(explicit)]
    assert main(args) == 0
    assert json.loads(explicit.read_text())["accuracy"] == got["accuracy"]


def test_evaluate_robustness_reports_every_corruption_and_a_heatmap(run_dir, tiny_npz, tmp_path, capsys):
    out, png = tmp_path / "r.json", tmp_path / "r.png"
    args = ["evaluate", str(run_dir), str(tiny_npz), "--subset", "test", "--robustness", "--corruptions",
            "defocus_blur,jpeg_compression", "--json", str(out), "--heatmap", str(png), "--quiet"]
    assert main(args) == 0
    rob = json.loads(out.read_text())["robustness"]
    assert set(rob["corruptions"]) == {"defocus_blur", "jpeg_compression"}
    assert all(len(c["accuracy"]) == 5 and c["held_out"] for c in rob["corruptions"].values())
    assert rob["clean_accuracy"] == pytest.approx(json.loads(out.read_text())["accuracy"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_refuses_a_split_of_other_data(run_dir, tmp_path, capsys):
    ds = cellkit.load("sample")
    other = tmp_path / "other.npz"
    np.savez(other, images=ds.images[:40, :32, :32], labels=ds.labels[:40])
    assert main(["evaluate", str(run_dir), str(other), "--subset", "test"]) == 2
    assert "the split indexes 128 images but the dataset has 40" in capsys.readouterr().err
    assert main(["evaluate", str(run_dir / "model.keras"), str(other), "--subset", "test"]) == 2
    assert "--subset needs --split-file" in capsys.readouterr().err


def test_ensemble_of_a_run_with_itself_predicts_like_the_run(run_dir, tiny_npz, tmp_path):
    ens = tmp_path / "ens.keras"
    assert main(["ensemble", str(run_dir), str(run_dir / "model.keras"), "--out", str(ens), "--tta", "--quiet"]) == 0
    assert main(["ensemble", str(run_dir), str(run_dir), "--out", str(tmp_path / "mean.keras"), "--quiet"]) == 0
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert main(["evaluate", str(run_dir), str(tiny_npz), "--json", str(a), "--quiet"]) == 0
    assert main(["evaluate", str(tmp_path / "mean.keras"), str(tiny_npz), "--json", str(b), "--quiet"]) == 0
    assert json.loads(a.read_text())["confusion_matrix"] == json.loads(b.read_text())["confusion_matrix"]
    assert main(["evaluate", str(ens), str(tiny_npz), "--quiet"]) == 0


def test_ensemble_refuses_bad_weights_and_methods(run_dir, tmp_path, capsys):
    out = str(tmp_path / "e.keras")
    assert main(["ensemble", str(run_dir), str(run_dir), "--out", out, "--weights", "1"]) == 2
    assert "--weights needs one value per member (2)" in capsys.readouterr().err
    assert main(["ensemble", str(run_dir), "--out", out, "--method", "median"]) == 2
    assert "method must be one of" in capsys.readouterr().err


def test_export_from_the_command_line(run_dir, tmp_path):
    out = tmp_path / "sub"
    assert main(["export", str(run_dir), "--format", "submission", "--out", str(out), "--keras-only"]) == 0
    info = json.loads((out / "export.json").read_text())
    assert info["class_names"][-1] == "platelet" and info["loader"] == "keras"
    assert "class Model" in (out / "model.py").read_text()
    assert main(["export", str(run_dir), "--out", str(out), "--keras-only"]) == 2  # not empty
    adapting = tmp_path / "adapting"
    assert main(["export", str(run_dir), "--out", str(adapting), "--keras-only", "--adapt-to-batch", "--quiet"]) == 0
    assert json.loads((adapting / "export.json").read_text())["batch_adaptation_prior"] == 16.0  # the default


def test_bad_recipe_is_exit_2_with_the_key_and_file(tiny_npz, tmp_path, capsys):
    recipe = tmp_path / "r.toml"
    recipe.write_text('[[phases]]\nname = "s"\noptimizer = "rmsprop"\n')
    assert main(["train", str(tiny_npz), "--recipe", str(recipe), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert str(recipe) in err and "phases[0].optimizer must be one of" in err
    assert not (tmp_path / "x").exists()
    assert main(["train", str(tiny_npz), "--recipe", "no-such-preset", "--out", str(tmp_path / "x")]) == 2
    assert "unknown recipe preset 'no-such-preset'" in capsys.readouterr().err


def test_existing_run_dir_is_exit_2(run_dir, tiny_npz, capsys):
    assert main(["train", str(tiny_npz), "--out", str(run_dir), *TRAIN_FLAGS]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_unknown_backbone_or_weights_fail_before_anything_is_written(tiny_npz, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", str(tiny_npz), "--out", str(out), "--backbone", "basline", "--quiet"]) == 2
    assert "backbone:" in capsys.readouterr().err
    assert main(["train", str(tiny_npz), "--out", str(out), "--weights", "imagenet", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "weights:" in err and "available: none" in err
    assert not out.exists()


def test_list_recipes(capsys):
    assert main(["train", "--list-recipes"]) == 0
    out = capsys.readouterr().out
    assert "report-transfer" in out and "lion" in out


def test_interrupt_exits_130(monkeypatch, tiny_npz, tmp_path, capsys):
    import cellkit.train as train_module
    from cellkit.data.split import stratified_split
    from cellkit.train import Recipe, TrainingInterrupted, TrainResult

    def fake_train(*args, **kwargs):
        result = TrainResult(tmp_path, Recipe().resolved(), stratified_split([0, 1] * 10), None, {}, {}, 3,
                             "interrupted")
        raise TrainingInterrupted(result)

    monkeypatch.setattr(train_module, "train", fake_train)
    assert main(["train", str(tiny_npz), "--out", str(tmp_path / "r"), "--quiet"]) == 130
    assert "interrupted; files written from the best checkpoint (epoch 3)" in capsys.readouterr().err


# --------------------------------------------------------------------------- --distribute

_TF_TWO_CPUS = textwrap.dedent(
    """
    import sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from cellkit.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def _distributed_run(tiny_npz: Path, out: Path, backend: str) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "CELLKIT_QUIET": "1"}
    args = ["train", str(tiny_npz), "--out", str(out), "--distribute", *TRAIN_FLAGS]
    if backend == "jax":
        env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
        cmd = [sys.executable, "-m", "cellkit", *args]
    else:
        cmd = [sys.executable, "-c", _TF_TWO_CPUS, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "run.json").read_text())


@pytest.mark.slow
def test_distribute_mirrored_strategy_on_two_logical_cpus(tiny_npz, tmp_path):
    info = _distributed_run(tiny_npz, tmp_path / "tf", "tensorflow")
    assert info["distribution"]["strategy"] == "MirroredStrategy" and info["distribution"]["replicas"] == 2
    assert info["status"] == "complete" and info["environment"]["backend"] == "tensorflow"


@pytest.mark.slow
def test_distribute_data_parallel_on_two_jax_devices(tiny_npz, tmp_path):
    pytest.importorskip("jax")
    info = _distributed_run(tiny_npz, tmp_path / "jax", "jax")
    assert info["distribution"] == {"strategy": "DataParallel", "replicas": 2, "devices": ["cpu:0", "cpu:1"]}
    assert info["status"] == "complete" and info["environment"]["backend"] == "jax"


def test_split_file_reuses_another_runs_split(run_dir, tiny_npz, tmp_path):
    out = tmp_path / "same-split"
    args = ["train", str(tiny_npz), "--out", str(out), "--split-file", str(run_dir / "split.json"), "--seed", "9"]
    assert main([*args, *TRAIN_FLAGS, "--time-limit", "10"]) == 0
    first = json.loads((run_dir / "split.json").read_text())["splits"]
    again = json.loads((out / "split.json").read_text())["splits"]
    assert first == again
    assert json.loads((out / "run.json").read_text())["time_limit_seconds"] == 600


def test_train_refuses_a_split_of_other_data_with_the_same_count(run_dir, tiny_npz, tmp_path, capsys):
    with np.load(tiny_npz) as z:
        arrays = dict(z)
    shuffled = tmp_path / "shuffled.npz"
    order = np.random.default_rng(0).permutation(arrays["images"].shape[0])
    np.savez(shuffled, images=arrays["images"][order], labels=arrays["labels"][order],
             class_names=arrays["class_names"], ids=np.array([f"other-{i}" for i in range(order.size)]))
    out = tmp_path / "never"
    args = ["train", str(shuffled), "--out", str(out), "--split-file", str(run_dir / "split.json")]
    assert main([*args, *TRAIN_FLAGS]) == 2
    assert "image ids of the split differ from the dataset's" in capsys.readouterr().err
    assert not out.exists()
