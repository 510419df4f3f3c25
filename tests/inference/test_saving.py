"""cellkit's saveable layers: one registry, and plain ``keras.models.load_model`` after ``import cellkit``.

Each check runs in a fresh interpreter: what matters is what ``import cellkit`` alone
registers, whatever this test process imported before.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest

BACKENDS = ["tensorflow", "jax"]

#: Public layer classes that are abstract bases (never in a saved model themselves).
ABSTRACT_BASES = {"cellkit.layers.high_pass.HighPassFilter"}


def _run(code: str, backend: str = "tensorflow", *args: str) -> dict:
    """Run ``code`` in a fresh interpreter on ``backend``; return the JSON of its last stdout line."""
    if backend == "jax" and importlib.util.find_spec("jax") is None:
        pytest.skip("JAX is not installed")
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "cellkit could not register" not in proc.stderr, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


_SAVE = textwrap.dedent("""
    import json, sys
    import keras, numpy as np
    from cellkit.inference import with_tta
    from cellkit.layers import LaplacianFilter

    folder = sys.argv[1]
    keras.utils.set_random_seed(0)
    inp = keras.Input((12, 12, 3))
    x = LaplacianFilter(keep_input="concat")(inp)
    out = keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(x))
    model = with_tta(keras.Model(inp, out, name="clf"), "flips")
    images = np.random.default_rng(0).integers(0, 256, (4, 12, 12, 3)).astype("float32")
    model.save(folder + "/model.keras")
    np.save(folder + "/x.npy", images)
    np.save(folder + "/y.npy", model.predict(images, verbose=0))
    print(json.dumps({"backend": keras.backend.backend()}))
""")

# Loads with plain Keras after `PRELUDE`: nothing of cellkit but what the prelude imports.
_LOAD = textwrap.dedent("""
    import json, sys
    PRELUDE
    import keras, numpy as np

    folder = sys.argv[1]
    model = keras.models.load_model(folder + "/model.keras")
    np.testing.assert_allclose(model.predict(np.load(folder + "/x.npy"), verbose=0), np.load(folder + "/y.npy"), atol=1e-6)
    kinds = sorted({f"{type(l).__module__}.{type(l).__name__}" for l in model._flatten_layers()})
    print(json.dumps({"backend": keras.backend.backend(), "layers": kinds}))
""")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """``saved(backend)``: the folder of a model with a cellkit filter layer inside a TTA wrapper, saved there."""
    folders = {}

    def save(backend: str):
        if backend not in folders:
            folder = tmp_path_factory.mktemp(f"saved_{backend}")
            assert _run(_SAVE, backend, str(folder))["backend"] == backend
            folders[backend] = folder
        return folders[backend]

    return save


@pytest.mark.own_backends
@pytest.mark.parametrize("backend", BACKENDS)
def test_plain_keras_loads_a_cellkit_model_after_import_cellkit(saved, backend):
    folder = saved(backend)
    prelude = "import cellkit\nassert 'keras' not in sys.modules  # import cellkit does not import Keras"
    out = _run(_LOAD.replace("PRELUDE", prelude), backend, str(folder))
    assert out["backend"] == backend
    assert "cellkit.layers.high_pass.LaplacianFilter" in out["layers"]
    assert "cellkit.inference.tta.TestTimeAugmentation" in out["layers"]
    assert "cellkit.inference.tta.ViewAverage" in out["layers"]


@pytest.mark.own_backends
@pytest.mark.parametrize(
    "prelude",
    [
        "import keras\nimport cellkit",  # Keras first: registered by import cellkit
        "import cellkit\nimport tensorflow",  # TensorFlow imports Keras
        "import cellkit.augment.policies",  # a cellkit module that imports Keras half-way through cellkit.augment
        "import cellkit\ncellkit.build_classifier",  # a lazy name importing the zoo
    ],
    ids=["keras-first", "tensorflow-after", "cellkit-module-first", "lazy-name"],
)
def test_registration_whatever_imports_keras_first(saved, prelude):
    """The import orders do not depend on the backend: checked on TensorFlow."""
    out = _run(_LOAD.replace("PRELUDE", prelude), "tensorflow", str(saved("tensorflow")))
    assert "cellkit.layers.high_pass.LaplacianFilter" in out["layers"]


@pytest.mark.own_backends
def test_every_keras_layer_defined_in_cellkit_is_registered_by_import_cellkit():
    """Walks every module of cellkit: each layer class must be registered by ``import cellkit`` alone.

    A layer class in a module missing from ``CUSTOM_OBJECT_MODULES`` (or not decorated with
    ``keras.saving.register_keras_serializable(package="cellkit")``) fails here.
    """
    code = """
        import importlib, inspect, json, pkgutil, sys
        import cellkit, keras

        abstract = set(json.loads(sys.argv[1]))
        at_import = dict(keras.saving.get_custom_objects())  # what `import cellkit` + `import keras` registered
        for info in pkgutil.walk_packages(cellkit.__path__, "cellkit."):
            if info.name != "cellkit.__main__":
                importlib.import_module(info.name)
        found = {}
        for mod_name, module in sorted(sys.modules.items()):
            if mod_name == "cellkit" or mod_name.startswith("cellkit."):
                for obj in vars(module).values():
                    if inspect.isclass(obj) and issubclass(obj, keras.layers.Layer) and obj.__module__ == mod_name:
                        found[f"{mod_name}.{obj.__qualname__}"] = obj
        subclassed = {f"{b.__module__}.{b.__qualname__}" for cls in found.values() for b in cls.__mro__[1:]}
        report = {"checked": [], "unregistered": [], "private": [], "abstract": []}
        for path, cls in sorted(found.items()):
            if cls.__name__.startswith("_"):
                report["private"].append(path)
                continue
            registered = keras.saving.get_registered_name(cls)
            if registered == f"cellkit>{cls.__name__}" and at_import.get(registered) is cls:
                report["checked"].append(path)
            else:
                report["abstract" if path in abstract else "unregistered"].append(path)
        report["abstract_subclassed"] = sorted(abstract & subclassed)
        print(json.dumps(report))
    """
    report = _run(code, "tensorflow", json.dumps(sorted(ABSTRACT_BASES)))
    assert report["unregistered"] == []
    assert sorted(report["abstract"]) == sorted(ABSTRACT_BASES) == report["abstract_subclassed"]
    names = {p.rsplit(".", 1)[1] for p in report["checked"]}
    assert {"LaplacianFilter", "ReinhardNormalization", "FusedBatchNormalization", "Augmentation", "RandomRot90",
            "TestTimeAugmentation", "ViewAverage", "AveragePredictions"} <= names
    assert len(names) == len(report["checked"])  # one registered name per class


def test_load_model_registers_cellkit_layers_in_process(tmp_path):
    from cellkit.inference import CUSTOM_OBJECT_MODULES, load_model, register_custom_objects, save_model

    assert "cellkit.layers" in CUSTOM_OBJECT_MODULES and "cellkit.inference.tta" in CUSTOM_OBJECT_MODULES
    register_custom_objects()
    import keras

    from cellkit.layers import LaplacianFilter

    inp = keras.Input((8, 8, 3))
    model = keras.Model(inp, LaplacianFilter()(inp))
    back = load_model(save_model(model, tmp_path / "m.keras"))
    assert isinstance(back.layers[-1], LaplacianFilter)
