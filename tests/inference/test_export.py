"""Export: the submission folder's model.py, in a fresh interpreter, predicts like the model."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from cellkit._outputs import MANIFEST
from cellkit.errors import CellkitError
from cellkit.inference.export import export_submission
from cellkit.train import predict_proba, save_model

# Runs model.py from DIR on X.npy in a fresh interpreter and saves its outputs; with
# BLOCK=1 every import of cellkit fails, as on a server where cellkit is not installed.
_RUNNER = textwrap.dedent(
    """
    import importlib.abc, importlib.util, os, sys
    import numpy as np

    class _NoCellkit(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] == "cellkit":
                raise ImportError("cellkit is not installed here")
            return None

    folder, out = sys.argv[1], sys.argv[2]
    if os.environ.get("BLOCK") == "1":
        sys.meta_path.insert(0, _NoCellkit())
    os.chdir(os.path.dirname(out))  # not the export folder: paths must be relative to model.py
    spec = importlib.util.spec_from_file_location("model", os.path.join(folder, "model.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.Model()
    X = np.load(os.path.join(os.path.dirname(out), "X.npy"))
    np.savez(out, ids=model.predict(X), proba=model.predict_proba(X),
             cellkit_loaded=any(m.split(".")[0] == "cellkit" for m in sys.modules))
    """
)


def _run_exported(folder, tmp_path, X, block: bool) -> dict:
    np.save(tmp_path / "X.npy", X)
    out = tmp_path / "out.npz"
    env = {**os.environ, "BLOCK": "1" if block else "0", "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(
        [sys.executable, "-c", _RUNNER, str(folder), str(out)], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(out, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def model():
    """A classifier with one of cellkit's custom layers (the Laplacian high-pass filter)."""
    from cellkit.zoo import build_classifier

    keras.utils.set_random_seed(1)
    return build_classifier("baseline", num_classes=8, input_shape=(32, 32, 3), high_pass="laplacian")


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, (37, 32, 32, 3), dtype=np.uint8)


def test_export_runs_without_cellkit_and_matches_the_model(model, images, tmp_path):
    folder = tmp_path / "submission"
    info = export_submission(model, folder, batch_size=16)
    assert info["loader"] == "saved_model" and info["needs_cellkit"] is False
    assert {p.name for p in folder.iterdir()} == {"model.py", "model.keras", "export.json", "saved_model", MANIFEST}
    assert json.loads((folder / "export.json").read_text())["input_shape"] == [32, 32, 3]
    got = _run_exported(folder, tmp_path, images, block=True)
    assert not got["cellkit_loaded"]
    expected = predict_proba(model, images)
    assert np.allclose(got["proba"], expected, atol=1e-5)
    assert got["ids"].dtype == np.int64 and got["ids"].shape == (37,)
    assert np.array_equal(got["ids"], expected.argmax(axis=1))


def test_keras_only_export_loads_through_cellkit(model, images, tmp_path):
    src = save_model(model, tmp_path / "m.keras")
    folder = tmp_path / "submission"
    info = export_submission(src, folder, saved_model=False)
    assert info["loader"] == "keras" and info["needs_cellkit"] is True
    assert "saved_model" not in {p.name for p in folder.iterdir()}
    # In this process (the cellkit-free subprocess path is tested above): model.py's fallback loader.
    spec = importlib.util.spec_from_file_location("exported_model", folder / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    exported = module.Model()
    assert exported._serve is None and exported._keras_model is not None
    assert np.array_equal(exported.predict(images), predict_proba(model, images).argmax(axis=1))


def test_export_refuses_a_non_empty_folder_and_names_classes(model, tmp_path):
    folder = tmp_path / "taken"
    folder.mkdir()
    (folder / "x").write_text("keep")
    with pytest.raises(CellkitError, match="exists and is not empty"):
        export_submission(model, folder, saved_model=False)
    with pytest.raises(CellkitError, match=r"holds files cellkit did not write \(x\)"):
        export_submission(model, folder, saved_model=False, overwrite=True)
    assert [p.name for p in folder.iterdir()] == ["x"] and (folder / "x").read_text() == "keep"
    info = export_submission(model, tmp_path / "sub", saved_model=False)
    assert info["class_names"][0] == "basophil"  # 8 outputs: the PBC classes
    with pytest.raises(ValueError, match="class_names must name the model's 8 classes"):
        export_submission(model, tmp_path / "other", class_names=["a", "b"])


def test_export_overwrite_replaces_only_an_earlier_export_and_only_when_complete(model, tmp_path, monkeypatch):
    folder = tmp_path / "sub"
    export_submission(model, folder, saved_model=False)
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    # A failure while the new export is built leaves the earlier one whole.
    monkeypatch.setattr("cellkit.inference.export._render", lambda info: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        export_submission(model, folder, saved_model=False, overwrite=True)
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub"]  # no temporary folder left
    monkeypatch.undo()
    info = export_submission(model, folder, saved_model=False, overwrite=True)
    assert json.loads((folder / "export.json").read_text()) == info
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub"]


@pytest.mark.parametrize(("source", "out"), [("run/model.keras", "run"), ("run", "run"), ("run/model.keras", "."),
                                             ("run", "run/inner")])
def test_export_never_removes_its_input(model, tmp_path, source, out):
    run = tmp_path / "run"
    save_model(model, run / "model.keras")
    (run / "notes.txt").write_text("mine")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(CellkitError, match="never (modifies|writes into) its input"):
        export_submission(tmp_path / source, tmp_path / out, saved_model=False, overwrite=True)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_exported_tta_model_applies_its_views_without_cellkit(model, images, tmp_path):
    from cellkit.inference.tta import with_tta

    folder = tmp_path / "submission"
    info = export_submission(model, folder, tta="d4")
    assert info["tta"] == "d4" and info["loader"] == "saved_model"
    got = _run_exported(folder, tmp_path, images, block=True)
    expected = predict_proba(with_tta(model, "d4"), images)
    assert not np.allclose(expected, predict_proba(model, images), atol=1e-4)  # the views change the output
    assert np.allclose(got["proba"], expected, atol=1e-5)


def test_exported_model_adapts_to_each_batch_without_cellkit(tmp_path):
    from cellkit.inference.batch_adaptation import with_batch_adaptation
    from cellkit.zoo import build_classifier

    keras.utils.set_random_seed(2)
    model = build_classifier("compact_resnet", num_classes=8, input_shape=(32, 32, 3))
    X = np.random.default_rng(3).integers(0, 256, (32, 32, 32, 3), dtype=np.uint8)
    folder = tmp_path / "submission"
    info = export_submission(model, folder, batch_size=32, adapt_prior=16)
    assert info["batch_adaptation_prior"] == 16.0 and info["loader"] == "saved_model"
    got = _run_exported(folder, tmp_path, X, block=True)
    expected = predict_proba(with_batch_adaptation(model, prior=16), X, batch_size=32)
    assert not np.allclose(expected, predict_proba(model, X), atol=1e-4)  # the batch's statistics count
    assert np.allclose(got["proba"], expected, atol=1e-4)
