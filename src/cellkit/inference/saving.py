"""Save and load cellkit models: ``.keras`` files written atomically, read with ``safe_mode=True``.

Every saveable Keras class of cellkit (high-pass, normalisation and batch-norm layers,
augmentation layers, the TTA, ensemble and temperature-scaling layers) is registered under the ``"cellkit"``
package by the module that defines it (``keras.saving.register_keras_serializable``).
:data:`CUSTOM_OBJECT_MODULES` is the one list of those modules: ``import cellkit`` imports
them as soon as Keras is imported (:mod:`cellkit._keras_hook`), so plain
``keras.models.load_model`` loads a model holding cellkit's layers, and :func:`load_model`
imports them too, with the layers of the installed zoo plugins. A run folder may be given
for its ``model.keras``. A ``.keras`` file holds no class names: :func:`saved_class_names`
reads those of the run folder beside it (``metrics.json``, ``run.json``).

Example:
    >>> import keras, tempfile, pathlib
    >>> inp = keras.Input((4,)); model = keras.Model(inp, keras.layers.Dense(2)(inp))
    >>> path = save_model(model, pathlib.Path(tempfile.mkdtemp()) / "m.keras")
    >>> load_model(path).output_shape
    (None, 2)
"""

from __future__ import annotations

import importlib
import json
import os
import warnings
import zipfile
import zlib
from pathlib import Path

import keras

from cellkit._io import atomic_path
from cellkit.errors import CellkitError, DataError

__all__ = [
    "CUSTOM_OBJECT_MODULES",
    "load_model",
    "register_cellkit_objects",
    "register_custom_objects",
    "resolve_model_path",
    "save_model",
    "saved_class_names",
]

#: The modules that define cellkit's saveable Keras classes; importing one registers its
#: classes under the ``"cellkit"`` package. A new module with a saveable class goes here
#: (``tests/inference/test_saving.py`` finds every Keras layer class defined in cellkit and
#: fails for one that ``import cellkit`` does not register).
CUSTOM_OBJECT_MODULES: tuple[str, ...] = (
    "cellkit.layers", "cellkit.augment", "cellkit.inference.tta", "cellkit.inference.ensemble",
    "cellkit.inference.temperature",
)


_NOT_KERAS = "not a valid .keras file (damaged or truncated zip; expected a model saved by Keras or cellkit)"


def register_cellkit_objects() -> None:
    """Import the modules of :data:`CUSTOM_OBJECT_MODULES`: cellkit's own classes register with Keras."""
    for name in CUSTOM_OBJECT_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:  # an optional part not present in this installation
            if exc.name != name:
                raise


def register_custom_objects() -> None:
    """Register cellkit's classes (:func:`register_cellkit_objects`) and the installed zoo plugins'."""
    register_cellkit_objects()
    zoo = importlib.import_module("cellkit.zoo")
    try:
        zoo.list_backbones()  # loads plugin entry points: their layers register on import
    except CellkitError as exc:  # a broken plugin must not stop loading a model that may not need it
        warnings.warn(f"cellkit plugins: {exc}", RuntimeWarning, stacklevel=2)


def resolve_model_path(path: str | os.PathLike[str]) -> Path:
    """``path`` itself for a ``.keras`` file; ``path/model.keras`` for a run folder."""
    p = Path(path)
    if p.is_dir():
        if (p / "model.keras").is_file():
            return p / "model.keras"
        raise DataError("folder has no model.keras (expected a cellkit run folder or a .keras file)", path=p)
    if not p.is_file():
        raise DataError("no such model (expected a .keras file or a cellkit run folder)", path=p)
    if p.suffix.lower() != ".keras":
        raise DataError(f"expected a .keras model file. Received: suffix={p.suffix!r}", path=p)
    return p


#: Files of a run folder that record the class names, in the order they are read, and where.
_CLASS_NAME_FILES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("metrics.json", ("class_names",)),
    ("run.json", ("data", "class_names")),
)


def saved_class_names(path: str | os.PathLike[str], num_classes: int | None = None) -> tuple[str, ...] | None:
    """The class names recorded beside a saved model, or ``None`` when there are none.

    ``path`` is a run folder or a ``.keras`` file; the names are read from the folder that
    holds the model: ``metrics.json``'s ``class_names``, else ``run.json``'s
    ``data.class_names`` (what ``cellkit train`` writes). A list of another length than
    ``num_classes`` (when given), or an unreadable file, is ignored.
    """
    folder = resolve_model_path(path).parent
    for name, keys in _CLASS_NAME_FILES:
        try:
            value = json.loads((folder / name).read_text(encoding="utf-8"))
            for key in keys:
                value = value.get(key) if isinstance(value, dict) else None
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        if isinstance(value, list) and value and (num_classes is None or len(value) == num_classes):
            return tuple(str(c) for c in value)
    return None


def load_model(path: str | os.PathLike[str], compile: bool = False) -> keras.Model:  # noqa: A002 - Keras's name
    """Load a ``.keras`` model (or a run folder's ``model.keras``) with ``safe_mode=True``."""
    p = resolve_model_path(path)
    if not zipfile.is_zipfile(p):  # Keras would say "File not found", which is false
        raise DataError(f"{_NOT_KERAS}. Received: a file that is not a zip archive", path=p)
    register_custom_objects()
    try:
        return keras.saving.load_model(p, compile=compile, safe_mode=True)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise DataError(f"{_NOT_KERAS}. Received: {type(exc).__name__}: {exc}", path=p) from None
    except (ValueError, TypeError, OSError, KeyError) as exc:
        raise DataError(f"cannot load the model: {exc}", path=p) from exc


def save_model(model: keras.Model, path: str | os.PathLike[str]) -> Path:
    """Save ``model`` to a ``.keras`` file atomically; return the path."""
    dest = Path(path)
    if dest.suffix.lower() != ".keras":
        raise ValueError(f"model files end in .keras. Received: path={str(dest)!r}")
    with atomic_path(dest, suffix=".keras") as tmp:
        model.save(tmp)
    return dest
