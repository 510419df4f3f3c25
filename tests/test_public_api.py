"""The public API: every advertised name resolves, ``import cellkit`` stays free of Keras, layering holds."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import cellkit

SRC = Path(cellkit.__file__).resolve().parent


@pytest.mark.parametrize("name", cellkit.__all__)
def test_every_public_name_of_cellkit_resolves(name):
    assert getattr(cellkit, name) is not None
    assert name in dir(cellkit)


@pytest.mark.parametrize("package", ["cellkit.evaluate", "cellkit.inference"])
def test_every_public_name_of_evaluate_and_inference_resolves(package):
    module = __import__(package, fromlist=["__all__"])
    assert module.__all__
    for name in module.__all__:
        assert getattr(module, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute"):
        module.no_such_name  # noqa: B018


def test_train_re_exports_the_evaluation_and_inference_names():
    import cellkit.train
    from cellkit.evaluate import report
    from cellkit.inference import predict, saving

    assert cellkit.train.evaluate_model is report.evaluate_model
    assert cellkit.train.format_metrics is report.format_metrics
    assert cellkit.train.metrics_from_predictions is report.metrics_from_predictions
    assert cellkit.train.load_model is saving.load_model
    assert cellkit.train.save_model is saving.save_model
    assert cellkit.train.predict_proba is predict.predict_proba


@pytest.mark.parametrize("package", ["evaluate", "inference"])
def test_evaluate_and_inference_never_import_the_training_package(package):
    """``train`` may import ``evaluate`` and ``inference``, never the other way round."""
    for path in sorted((SRC / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            bad = [n for n in names if n == "cellkit.train" or n.startswith("cellkit.train.")]
            assert not bad, f"{path.relative_to(SRC)}:{node.lineno} imports {bad[0]}"


def test_import_cellkit_and_keras_free_names_do_not_import_keras():
    code = (
        "import sys, cellkit\n"
        "from cellkit.inference import TTA_SPECS, parse_tta\n"
        "from cellkit.evaluate import roc_auc, classification_report\n"
        "from cellkit.cli import build_parser\n"
        "build_parser()\n"
        "heavy = sorted(m for m in ('keras', 'tensorflow', 'jax', 'matplotlib') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
