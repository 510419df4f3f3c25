"""Training runs: the pipeline, the run folder, determinism, checkpoints, interrupts, two phases."""

from __future__ import annotations

import csv
import json

import cv2
import keras
import numpy as np
import pytest

import cellkit
from cellkit.augment import describe_policy
from cellkit.data import Dataset
from cellkit.data.split import Split, stratified_split
from cellkit.errors import CellkitError
from cellkit.train import (
    ArrayBatches,
    BestCheckpoint,
    Phase,
    Recipe,
    TrainingInterrupted,
    build_training_model,
    load_model,
    load_recipe,
    load_run,
    precision_policy,
    predict_proba,
    train,
)
from cellkit.train.run_dir import RUN_FILES

ARTIFACTS = {
    "recipe.json", "recipe.toml", "split.json", "run.json", "history.csv", "best.keras", "model.keras",
    "metrics.json", "confusion_matrix.png", "training_curves.png",
}


@pytest.fixture(scope="module")
def tiny() -> Dataset:
    """16 sample images per class, downsized to 32x32: real cells, fast to train on."""
    ds = cellkit.load("sample")
    idx = np.concatenate([np.flatnonzero(ds.labels == c)[:16] for c in range(ds.num_classes)])
    small = np.stack([cv2.resize(im, (32, 32), interpolation=cv2.INTER_AREA) for im in ds.images[idx]])
    return Dataset(small, ds.labels[idx], ds.class_names, tuple(ds.ids[i] for i in idx), source="tiny")


def _recipe(epochs: int = 1, **changes) -> Recipe:
    base = Recipe(
        backbone="baseline", augmentation="none", batch_size=16, seed=3,
        phases=(Phase("scratch", epochs=epochs, optimizer="adamw", learning_rate=3e-3),),
    )
    return base.replace(**changes) if changes else base


@pytest.fixture(scope="module")
def run(tiny, tmp_path_factory):
    """One 2-epoch run shared by the artifact, save/load and determinism tests."""
    return train(tiny, _recipe(epochs=2, augmentation="light"), tmp_path_factory.mktemp("runs") / "a", quiet=True)


# --------------------------------------------------------------------------- pipeline


def test_batches_are_uint8_one_hot_and_weighted():
    images = np.arange(10 * 4 * 4 * 3, dtype=np.uint8).reshape(10, 4, 4, 3)
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    b = ArrayBatches(images, labels, batch_size=4, num_classes=3, class_weight=[1.0, 2.0, 3.0])
    assert len(b) == 3
    x, y, w = b[0]
    assert x.dtype == np.uint8 and np.array_equal(x, images[:4])
    assert y.dtype == np.float32 and y.tolist()[1] == [0.0, 1.0, 0.0]
    assert w.tolist() == [1.0, 2.0, 3.0, 1.0]
    assert b[2][0].shape[0] == 2
    assert len(ArrayBatches(images, labels, batch_size=4, drop_remainder=True)) == 2
    with pytest.raises(IndexError):
        b[3]


def test_shuffling_is_a_reproducible_permutation_per_epoch():
    images = np.zeros((50, 2, 2, 3), np.uint8)
    labels = np.arange(50) % 5
    subset = np.arange(10, 50)

    def orders(seed: int) -> list[list[int]]:
        b = ArrayBatches(images, labels, indices=subset, batch_size=7, shuffle=True, seed=seed)
        out = []
        for _ in range(3):
            b[0]  # reading batches (as Keras does ahead of time) must not change the order
            out.append(b._order.tolist())
            b.on_epoch_end()
        return out

    first, again, other = orders(1), orders(1), orders(2)
    assert first == again and first != other
    assert all(sorted(o) == subset.tolist() for o in first)
    assert first[0] != first[1]


def test_mixing_gives_soft_labels_and_matching_weights():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (16, 8, 8, 3), dtype=np.uint8)
    labels = np.arange(16) % 2
    b = ArrayBatches(images, labels, batch_size=16, num_classes=2, class_weight=[1.0, 3.0], mix="mixup", seed=0)
    x, y, w = b[0]
    assert x.dtype == np.float32 and np.allclose(y.sum(axis=1), 1.0)
    assert ((y > 0) & (y < 1)).any()
    assert np.allclose(w, y @ np.array([1.0, 3.0]))
    x2, y2, _ = b[0]
    assert np.array_equal(x, x2) and np.array_equal(y, y2)  # seeded per (seed, epoch, batch)


def test_pipeline_rejects_bad_arguments():
    images = np.zeros((4, 2, 2, 3), np.uint8)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        ArrayBatches(images, batch_size=0)
    with pytest.raises(ValueError, match="indices must be a 1-D array of image indices in \\[0, 4\\)"):
        ArrayBatches(images, indices=[0, 9])
    with pytest.raises(ValueError, match="mix must be None, 'cutmix' or 'mixup'"):
        ArrayBatches(images, [0, 1, 0, 1], mix="blend")


def test_augmentation_lives_only_in_the_training_model():
    from cellkit.zoo import build_classifier

    clf = build_classifier("baseline", num_classes=3, input_shape=(32, 32, 3))
    trainer = build_training_model(clf, "light", seed=0)
    names = [type(layer).__name__ for layer in trainer.layers]
    assert "Augmentation" in names
    assert "Augmentation" not in [type(layer).__name__ for layer in clf.layers]
    x = np.random.default_rng(0).integers(0, 255, (4, 32, 32, 3)).astype("float32")
    assert np.allclose(trainer(x, training=False), clf(x, training=False))  # shared weights, identity at inference


def test_precision_policy_is_float32_on_cpu_and_restored():
    before = keras.config.dtype_policy().name
    with precision_policy("auto") as name:
        assert name == "float32"
    with precision_policy("mixed") as name:
        assert name == keras.config.dtype_policy().name == "mixed_float16"
    assert keras.config.dtype_policy().name == before


@pytest.mark.parametrize("native", [True, False])
def test_bfloat16_only_where_the_hardware_computes_it(monkeypatch, native):
    from cellkit.train import devices

    monkeypatch.setattr(devices, "cpu_has_bfloat16", lambda: native)
    with precision_policy("bfloat16") as name:
        expected = "mixed_bfloat16" if native and keras.backend.backend() == "tensorflow" else "float32"
        assert name == keras.config.dtype_policy().name == expected
    with pytest.raises(ValueError, match=r"precision must be one of \['auto', 'mixed', 'bfloat16', 'float32'\]"):
        with precision_policy("half"):
            pass


def test_cpu_bfloat16_flags_are_read_from_cpuinfo(monkeypatch, tmp_path):
    import builtins

    from cellkit.train.devices import cpu_has_bfloat16

    real_open = builtins.open
    fake = tmp_path / "cpuinfo"

    def fake_open(path, *args, **kwargs):
        return real_open(fake if path == "/proc/cpuinfo" else path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    fake.write_text("processor : 0\nflags : fpu sse2 avx512f amx_bf16 amx_tile\n")
    assert cpu_has_bfloat16()
    fake.write_text("processor : 0\nflags : fpu sse2 avx2\n")
    assert not cpu_has_bfloat16()
    fake.unlink()
    assert not cpu_has_bfloat16()  # unreadable: no


# --------------------------------------------------------------------------- a run


def test_run_writes_every_artifact(run, tiny):
    d = run.run_dir
    assert {p.name for p in d.iterdir()} == ARTIFACTS == set(RUN_FILES)
    info = json.loads((d / "run.json").read_text())
    assert info["status"] == "complete" and info["precision"] == "float32" and info["epochs_run"] == 2
    assert info["environment"]["backend"] == keras.backend.backend()
    assert info["augmentation"] == describe_policy(run.recipe.augmentation)  # the ops, not only the policy name
    metrics = json.loads((d / "metrics.json").read_text())
    for key in ("accuracy", "precision_weighted", "recall_weighted", "f1_weighted", "precision_macro",
                "recall_macro", "f1_macro"):
        assert 0.0 <= metrics[key] <= 1.0
    assert metrics["subset"] == "test" and metrics["images"] == run.split.test.size
    assert set(metrics["per_class"]) == set(tiny.class_names)
    assert np.asarray(metrics["confusion_matrix"]).sum() == run.split.test.size
    rows = list(csv.DictReader((d / "history.csv").read_text().splitlines()))
    assert [r["epoch"] for r in rows] == ["1", "2"] and {"loss", "val_loss", "learning_rate"} <= set(rows[0])
    for png in ("confusion_matrix.png", "training_curves.png"):
        assert (d / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_records_recipe_and_split(run, tiny):
    assert load_recipe(run.run_dir / "recipe.json") == run.recipe
    assert load_recipe(run.run_dir / "recipe.toml") == run.recipe
    saved = Split.load(run.run_dir / "split.json")
    assert saved == run.split == stratified_split(tiny.labels, val=0.08, test=0.2, seed=3)
    ids = json.loads((run.run_dir / "split.json").read_text())["splits"]["test"]["ids"]
    assert ids == [tiny.ids[i] for i in saved.test]


def test_load_run_reads_back_what_train_returned(run, tiny, tmp_path):
    back = load_run(run.run_dir)
    assert (back.recipe, back.split, back.metrics) == (run.recipe, run.split, run.metrics)
    assert (back.best_epoch, back.status) == (run.best_epoch, run.status) and back.info == run.info
    assert back.history.keys() == run.history.keys()
    for key, values in run.history.items():
        np.testing.assert_allclose(back.history[key], values, rtol=1e-12)
    np.testing.assert_allclose(predict_proba(back.model, tiny.images), predict_proba(run.model, tiny.images),
                               atol=1e-6)
    assert load_run(run.run_dir, model=False).model is None
    (tmp_path / "run.json").write_text("{}")
    with pytest.raises(CellkitError, match=r"recipe.json: missing; .* is not a finished cellkit run folder"):
        load_run(tmp_path)


def test_saved_model_loads_safely_and_predicts_deterministically(run, tiny):
    model = load_model(run.run_dir)  # a run folder means its model.keras; safe_mode=True
    assert "Augmentation" not in [type(layer).__name__ for layer in model.layers]
    p1 = predict_proba(model, tiny.images)
    p2 = predict_proba(model, tiny.images)
    assert np.array_equal(p1, p2)
    assert np.allclose(p1, predict_proba(run.model, tiny.images), atol=1e-6)
    best = load_model(run.run_dir / "best.keras")
    assert np.allclose(predict_proba(best, tiny.images), p1, atol=1e-6)  # final model = best checkpoint


def test_same_seed_gives_the_same_split_and_metrics(run, tiny, tmp_path):
    again = train(tiny, _recipe(epochs=2, augmentation="light"), tmp_path / "b", quiet=True)
    assert again.split == run.split
    assert again.metrics == run.metrics
    assert again.history == run.history
    other = Recipe.replace(_recipe(epochs=1), seed=4)
    assert stratified_split(tiny.labels, seed=other.seed) != run.split


def test_existing_run_dir_is_refused_unless_overwrite(run, tiny, tmp_path):
    with pytest.raises(CellkitError, match="run folder exists and is not empty; choose another --out or pass"):
        train(tiny, _recipe(), run.run_dir, quiet=True)
    keep = tmp_path / "r"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    (keep / "metrics.json").write_text("stale")
    # also: no validation split (monitor the training loss) and a time limit that ends the run after one epoch
    result = train(tiny, _recipe(epochs=3, class_weight="none", val=0.0), keep, quiet=True, overwrite=True,
                   time_limit=1e-6)
    assert (keep / "notes.txt").read_text() == "mine"
    assert json.loads((keep / "metrics.json").read_text()) == result.metrics
    info = json.loads((keep / "run.json").read_text())
    assert info["monitor"] == "loss" and info["epochs_run"] == 1 and info["stopped_by_time_limit"] is True


class _InterruptAt(keras.callbacks.Callback):
    """Simulates Ctrl-C at the start of epoch ``epoch`` (0-based)."""

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def test_interrupted_run_keeps_its_best_checkpoint(tiny, tmp_path):
    with pytest.raises(TrainingInterrupted) as info:
        train(tiny, _recipe(epochs=3), tmp_path / "r", quiet=True, callbacks=[_InterruptAt(1)])
    result = info.value.result
    assert isinstance(info.value, KeyboardInterrupt)
    assert result.status == "interrupted" and result.best_epoch == 1
    d = tmp_path / "r"
    run_info = json.loads((d / "run.json").read_text())
    assert run_info["status"] == "interrupted" and run_info["epochs_run"] == 1
    assert {"best.keras", "model.keras", "metrics.json", "confusion_matrix.png"} <= {p.name for p in d.iterdir()}
    model = load_model(d / "best.keras")
    assert np.allclose(predict_proba(model, tiny.images), predict_proba(result.model, tiny.images), atol=1e-6)


def test_interrupt_before_the_first_epoch_writes_no_model(tiny, tmp_path):
    with pytest.raises(TrainingInterrupted) as info:
        train(tiny, _recipe(epochs=2), tmp_path / "r", quiet=True, callbacks=[_InterruptAt(0)])
    assert info.value.result.model is None and info.value.result.best_epoch is None
    names = {p.name for p in (tmp_path / "r").iterdir()}
    assert "model.keras" not in names and "best.keras" not in names
    assert json.loads((tmp_path / "r" / "run.json").read_text())["status"] == "interrupted"


class _CrashAt(_InterruptAt):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError("disk on fire")


def test_a_crash_keeps_the_checkpoint_and_records_the_error(tiny, tmp_path):
    with pytest.raises(RuntimeError, match="disk on fire"):
        train(tiny, _recipe(epochs=3), tmp_path / "r", quiet=True, callbacks=[_CrashAt(1)])
    info = json.loads((tmp_path / "r" / "run.json").read_text())
    assert info["status"] == "failed" and "disk on fire" in info["error"] and info["best_epoch"] == 1
    assert load_model(tmp_path / "r" / "best.keras").output_shape == (None, 8)


def test_two_phase_transfer_freezes_then_fine_tunes(tiny, tmp_path):
    from cellkit.zoo import build_classifier, get_backbone_layer

    keras.utils.set_random_seed(0)
    pretrained = build_classifier("baseline", num_classes=8, input_shape=(32, 32, 3))
    weights = tmp_path / "pretrained.weights.h5"
    pretrained.save_weights(weights)
    recipe = Recipe(
        backbone="baseline", weights=str(weights), augmentation="none", batch_size=16, fine_tune_fraction=0.5,
        phases=(
            Phase("transfer", "head", epochs=1, optimizer="lion", learning_rate=5e-4, final_learning_rate=1e-5),
            Phase("fine_tune", "fine_tune", epochs=1, optimizer="lion", learning_rate=1e-4, final_learning_rate=5e-6),
        ),
    )
    assert recipe.resolved().mode == "transfer"

    class Snapshot(keras.callbacks.Callback):
        """Backbone weights at the end of each phase's first epoch."""

        def __init__(self):
            super().__init__()
            self.seen = []

        def on_epoch_end(self, epoch, logs=None):
            inner = self.model.get_layer("baseline_classifier")
            self.seen.append([w.copy() for w in get_backbone_layer(inner).get_weights()])

    snap = Snapshot()
    result = train(tiny, recipe, tmp_path / "r", quiet=True, callbacks=[snap])
    start = get_backbone_layer(pretrained).get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(start, snap.seen[0], strict=True))  # frozen in phase 1
    assert not all(np.array_equal(a, b) for a, b in zip(start, snap.seen[1], strict=True))  # tuned in phase 2
    phases = json.loads((tmp_path / "r" / "run.json").read_text())["phases"]
    assert [p["name"] for p in phases] == ["transfer", "fine_tune"]
    assert "backbone frozen" in phases[0]["trainable"] and "unfroze" in phases[1]["trainable"]
    rows = list(csv.DictReader((tmp_path / "r" / "history.csv").read_text().splitlines()))
    assert [(r["epoch"], r["phase"]) for r in rows] == [("1", "transfer"), ("2", "fine_tune")]
    assert result.status == "complete"


def test_best_checkpoint_tracks_the_lowest_value(tmp_path):
    inp = keras.Input((2,))
    model = keras.Model(inp, keras.layers.Dense(1)(inp))
    ckpt = BestCheckpoint(model, tmp_path / "best.keras", monitor="val_loss")
    assert not ckpt.restore()
    ckpt.on_epoch_end(0, {"val_loss": 2.0})
    first = [w.copy() for w in model.get_weights()]
    model.set_weights([w + 1 for w in first])
    ckpt.on_epoch_end(1, {"val_loss": 3.0})
    ckpt.on_epoch_end(2, {"val_loss": float("nan")})
    assert ckpt.best == 2.0 and ckpt.best_epoch == 0 and ckpt.restore()
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), first, strict=True))
    with pytest.raises(KeyError, match="monitors 'val_loss' but the epoch logs have"):
        ckpt.on_epoch_end(3, {"loss": 1.0})


def test_bad_data_is_refused_before_training(tiny, tmp_path):
    unlabelled = Dataset(tiny.images, None, source="nolabels")
    with pytest.raises(cellkit.DataError, match="training needs labelled images"):
        train(unlabelled, _recipe(), tmp_path / "r", quiet=True)
    assert not (tmp_path / "r").exists()


def test_fine_tune_phase_trains_batch_norm_only_when_the_recipe_says_so():
    from cellkit.train.phases import set_trainable
    from cellkit.zoo import build_classifier, get_backbone_layer

    model = build_classifier("network4", num_classes=8, input_shape=(32, 32, 3))
    phase = Phase("fine_tune", "fine_tune", epochs=1, optimizer="lion", learning_rate=1e-4)
    bn = [layer for layer in get_backbone_layer(model).layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert "2 batch-norm layers kept frozen" in set_trainable(model, phase, 1.0)
    assert not any(layer.trainable for layer in bn)
    recipe = Recipe(fine_tune_batch_norm=True)
    assert "0 batch-norm layers kept frozen" in set_trainable(model, phase, 1.0, recipe.fine_tune_batch_norm)
    assert all(layer.trainable for layer in bn)


def test_time_limit_stops_inside_an_epoch_longer_than_the_budget():
    from cellkit.train.callbacks import TimeLimit

    class Batches(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.ends = 0

        def on_train_batch_end(self, batch, logs=None):
            self.ends += 1

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("sgd", "mse")
    x = np.zeros((64, 3), "float32")
    limit, batches = TimeLimit(1e-6), Batches()
    limit.start()
    history = model.fit(x, np.zeros((64, 2), "float32"), batch_size=4, epochs=3, verbose=0,
                        callbacks=[limit, batches])
    assert limit.exhausted and batches.ends == 1  # 1 of 16 batches, not the whole epoch
    assert len(history.history["loss"]) == 1
    unlimited = Batches()
    model.fit(x, np.zeros((64, 2), "float32"), batch_size=4, epochs=1, verbose=0, callbacks=[unlimited])
    assert unlimited.ends == 16


def test_cellkit_train_is_callable_after_the_subpackage_is_imported(monkeypatch) -> None:
    import importlib

    import cellkit

    package = importlib.import_module("cellkit.train")
    monkeypatch.setattr(cellkit, "train", package)  # what importing the subpackage binds it to
    monkeypatch.setattr(package, "train", lambda *a, **k: ("trained", a, k))
    assert cellkit.train("data", "recipe", "out", quiet=True) == ("trained", ("data", "recipe", "out"), {"quiet": True})


def test_a_recipe_file_or_preset_name_is_accepted_as_the_command_line_accepts_it(tiny, tmp_path) -> None:
    from cellkit.train import RecipeError
    from cellkit.train.recipe_io import save_recipe

    recipe = _recipe()
    result = train(tiny, str(save_recipe(recipe, tmp_path / "mine.toml")), tmp_path / "r", quiet=True)
    assert result.recipe == recipe.resolved()
    with pytest.raises(RecipeError, match="unknown recipe preset 'compactt' \\(did you mean 'compact'\\?\\)"):
        train(tiny, "compactt", tmp_path / "r2", quiet=True)
    assert not (tmp_path / "r2").exists()
