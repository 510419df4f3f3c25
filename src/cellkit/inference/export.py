"""Export a model in the course's evaluation-server format: a folder with ``model.py``.

``export_submission(model, out)`` writes a self-contained folder:

* ``model.py`` defining ``class Model``: its no-argument constructor loads the weights by
  a path relative to the file, and ``predict(X)`` takes uint8 RGB images
  ``(n, h, w, 3)`` and returns class ids ``(n,)`` (``predict_proba`` gives probabilities);
* ``saved_model/``: the model as a TensorFlow SavedModel (``keras.Model.export``). Every
  layer -- cellkit's high-pass, ensemble and preprocessing layers included -- is traced
  into the graph, so **loading needs TensorFlow and NumPy only, not cellkit**;
* ``model.keras``: the Keras model, the fallback ``model.py`` uses when TensorFlow is
  missing (that path needs Keras and cellkit installed, for cellkit's custom layers);
* ``export.json``: what was exported (class names, input shape, files, versions).

Writing the SavedModel needs TensorFlow installed (it is a dependency of cellkit), on the
TensorFlow or JAX backend (JAX models go through ``jax2tf``); when it cannot be written,
the folder holds ``model.keras`` only and ``export.json`` says that cellkit is needed.

Example:
    >>> import keras, tempfile, pathlib
    >>> inp = keras.Input((8, 8, 3))
    >>> out = keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(inp))
    >>> info = export_submission(keras.Model(inp, out), pathlib.Path(tempfile.mkdtemp()) / "sub")
    >>> info["loader"]
    'saved_model'
"""

from __future__ import annotations

import datetime as _dt
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cellkit._io import atomic_write_json, atomic_write_text
from cellkit._outputs import OutputFolder

__all__ = ["EXPORT_FORMATS", "export_submission"]

#: Export formats: ``"submission"``, the course's ``model.py`` + weights folder.
EXPORT_FORMATS: tuple[str, ...] = ("submission",)

#: What an export folder holds; ``overwrite`` replaces a folder holding only these.
EXPORT_FILES: tuple[str, ...] = ("model.py", "model.keras", "saved_model", "export.json")

_TEMPLATE = '''"""Blood-cell classifier exported by cellkit {version} on {date}.

    from model import Model
    model = Model()
    class_ids = model.predict(X)  # X: uint8 RGB images (n, {h}, {w}, 3) -> int64 (n,)

Loading: ``saved_model/`` with TensorFlow alone (cellkit is not needed) when TensorFlow is
installed; otherwise ``model.keras`` with Keras, which needs cellkit for its custom layers.
Classes (id: name): {class_list}
"""

import importlib
import os

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
CLASS_NAMES = {class_names!r}
INPUT_SHAPE = {input_shape!r}
INPUT_DTYPE = {input_dtype!r}
BATCH_SIZE = {batch_size!r}


class Model:
    """The exported classifier; the constructor loads the weights next to this file."""

    def __init__(self):
        self._serve = None
        self._keras_model = None
        saved = os.path.join(_HERE, "saved_model")
        try:
            tf = importlib.import_module("tensorflow")
        except ImportError:
            tf = None
        if tf is not None and os.path.isdir(saved):
            self._tf = tf
            self._loaded = tf.saved_model.load(saved)  # keep it: serve() references its variables
            self._serve = self._loaded.serve
        else:
            import cellkit.inference.saving as saving  # registers cellkit's layers; loads with safe_mode

            self._keras_model = saving.load_model(os.path.join(_HERE, "model.keras"))

    def predict_proba(self, X):
        """Class probabilities ``(n, classes)`` of uint8 RGB images ``(n, h, w, 3)``."""
        X = np.asarray(X)
        if X.ndim != 4 or tuple(X.shape[1:]) != tuple(INPUT_SHAPE):
            raise ValueError(
                "X must be images of shape (n, %d, %d, %d). Received: X with shape=%s"
                % (INPUT_SHAPE + (X.shape,))
            )
        out = []
        for start in range(0, X.shape[0], BATCH_SIZE):
            batch = X[start : start + BATCH_SIZE].astype(INPUT_DTYPE)
            if self._serve is not None:
                probs = self._serve(self._tf.constant(batch)).numpy()
            else:
                probs = np.asarray(self._keras_model.predict_on_batch(batch))
            out.append(probs.astype(np.float32))
        if not out:
            return np.zeros((0, len(CLASS_NAMES)), np.float32)
        return np.concatenate(out)

    def predict(self, X):
        """Class ids ``(n,)`` (int64) of uint8 RGB images ``(n, h, w, 3)``."""
        return np.argmax(self.predict_proba(X), axis=-1).astype(np.int64)
'''


def export_submission(
    model: Any,
    out: str | os.PathLike[str],
    *,
    class_names: Sequence[str] | None = None,
    overwrite: bool = False,
    batch_size: int = 256,
    saved_model: bool = True,
    tta: str | bool | None = None,
    adapt_prior: float | None = None,
) -> dict[str, Any]:
    """Write the submission folder ``out`` for ``model`` (module docstring); return ``export.json``.

    Args:
        model: a ``keras.Model`` taking 0-255 images and returning class probabilities, or
            the path of a ``.keras`` file / run folder (its ``model.keras``).
        out: the folder to create: new or empty, or with ``overwrite`` a folder cellkit
            wrote (an earlier export). It may not be, hold or lie inside the input model.
        class_names: names of the class ids, recorded in ``model.py``; default: the run's
            ``metrics.json``/``run.json`` class names when ``model`` is a run folder, else
            the PBC classes when the model has 8 outputs, else ``"0"``, ``"1"``, ...
        overwrite: replace an earlier export in ``out``; a folder holding any other file is
            refused, and the old export is removed only after the new one is complete.
        batch_size: images per prediction batch in ``model.py``.
        saved_model: also write the TensorFlow SavedModel (the cellkit-free loader).
        tta: wrap the model in test-time augmentation first (a :mod:`cellkit.inference.tta`
            specification such as ``"d4"``); the views are traced into the SavedModel, so
            ``model.py`` applies them without cellkit. ``None``: export the model as it is
            (a model trained with a recipe's ``tta`` already holds its views).
        adapt_prior: adapt to every batch ``model.py`` predicts
            (:func:`cellkit.inference.batch_adaptation.with_batch_adaptation`): each batch norm
            blends the batch's statistics with the training ones, weighted as ``adapt_prior``
            images (16 is the usual choice). For a server whose images come from another
            microscope; predictions then depend on the batch (``model.py``'s ``BATCH_SIZE``
            images at a time), which must mix the classes: batches of two or three classes
            cost 12.8 points on clean images in ``docs/training.md``'s measurement.
            ``None``: the model's own statistics, every image on its own.
    """
    import keras

    from cellkit.inference.saving import load_model, resolve_model_path

    source = None
    inputs: list[Any] = []
    if not isinstance(model, keras.Model):
        source = resolve_model_path(model)
        inputs = [model, source]
    # Checked before anything is loaded or written: never an input, never a foreign folder.
    folder = OutputFolder(out, inputs=inputs, overwrite=overwrite, owned=EXPORT_FILES, kind="export")
    if source is not None:
        model = load_model(source)
    from cellkit.inference.tta import parse_tta, with_tta

    views = parse_tta(tta)
    if views is not None:
        model = with_tta(model, tta)
    if adapt_prior is not None:
        from cellkit.inference.batch_adaptation import with_batch_adaptation

        model = with_batch_adaptation(model, prior=adapt_prior)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1. Received: batch_size={batch_size!r}")
    in_spec = model.inputs[0]
    input_shape = tuple(int(d) for d in in_spec.shape[1:])
    num_classes = int(model.outputs[0].shape[-1])
    names = _class_names(class_names, source, num_classes)

    # Built in a temporary sibling folder and swapped in whole; the old export is removed
    # only once the new one is in place.
    with folder.build() as work:
        model.save(work / "model.keras")
        loader, note = "keras", "TensorFlow SavedModel not written (saved_model=False)"
        if saved_model:
            try:
                model.export(str(work / "saved_model"), format="tf_saved_model", verbose=False)
                loader, note = "saved_model", "loads with TensorFlow only (cellkit not needed)"
            except (ImportError, ValueError, NotImplementedError, RuntimeError, TypeError) as exc:
                shutil.rmtree(work / "saved_model", ignore_errors=True)
                note = f"TensorFlow SavedModel could not be written ({type(exc).__name__}: {exc}); needs cellkit"
        info = _manifest(model, names, input_shape, in_spec.dtype, loader, note, source, batch_size)
        if views is not None:
            info["tta"] = views[0] + ("+color" if views[1] else "")
        if adapt_prior is not None:
            info["batch_adaptation_prior"] = float(adapt_prior)
        atomic_write_text(work / "model.py", _render(info))
        atomic_write_json(work / "export.json", info)
    return info


def _class_names(class_names: Sequence[str] | None, source: Path | None, k: int) -> list[str]:
    if class_names is not None:
        names = [str(c) for c in class_names]
        if len(names) != k:
            raise ValueError(f"class_names must name the model's {k} classes. Received: {len(names)} names")
        return names
    if source is not None:
        from cellkit.inference.saving import saved_class_names

        saved = saved_class_names(source, k)
        if saved is not None:
            return list(saved)
    from cellkit.data import PBC_CLASSES

    return list(PBC_CLASSES) if k == len(PBC_CLASSES) else [str(i) for i in range(k)]


def _manifest(model: Any, names: list[str], input_shape: tuple[int, ...], dtype: str, loader: str, note: str,
              source: Path | None, batch_size: int) -> dict[str, Any]:
    import keras

    from cellkit import __version__

    return {
        "format": "submission",
        "loader": loader,
        "needs_cellkit": loader != "saved_model",
        "note": note,
        "class_names": names,
        "input_shape": list(input_shape),
        "input_dtype": str(dtype),
        "batch_size": batch_size,
        "model_name": model.name,
        "source": None if source is None else str(source),
        "files": ["model.py", "model.keras", "export.json"] + (["saved_model/"] if loader == "saved_model" else []),
        "cellkit": __version__,
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "date": _dt.date.today().isoformat(),
    }


def _render(info: dict[str, Any]) -> str:
    h, w = info["input_shape"][:2]
    return _TEMPLATE.format(
        version=info["cellkit"],
        date=info["date"],
        h=h,
        w=w,
        class_list=", ".join(f"{i}: {n}" for i, n in enumerate(info["class_names"])),
        class_names=tuple(info["class_names"]),
        input_shape=tuple(info["input_shape"]),
        input_dtype=info["input_dtype"],
        batch_size=info["batch_size"],
    )
