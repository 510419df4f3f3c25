"""``import cellkit`` makes cellkit's saveable layers known to plain Keras, without importing Keras.

``keras.models.load_model`` finds a custom class only in Keras's registry, which the modules
defining cellkit's layers fill when they are imported
(:data:`cellkit.inference.saving.CUSTOM_OBJECT_MODULES`). ``import cellkit`` does not import
Keras (the command line and the data tools start without it), so :func:`install`, called at
the end of ``cellkit/__init__.py``:

* registers at once when Keras is already imported;
* otherwise puts a finder at the front of :data:`sys.meta_path` that registers right after
  the first ``import keras`` has run. When a cellkit module is being imported at that moment
  (``cellkit.layers`` importing Keras, say), registration waits until no cellkit module is
  half-imported any more -- the end of the outermost one -- so that registering never meets
  a half-initialised cellkit module. The finder then removes itself.

Zoo plugins are not loaded here: :func:`cellkit.inference.load_model` loads their layers.
A failure to register is a :class:`RuntimeWarning`, never a failed ``import keras``.
"""

from __future__ import annotations

import importlib.abc
import sys
import threading
import warnings
from typing import Any

__all__ = ["install"]

_lock = threading.RLock()
_local = threading.local()  # names this thread's finder is resolving (re-entrancy guard)
_state = {"pending": False, "done": False}
_finder: _Finder | None = None


def _cellkit_module_initialising(but: str | None = None) -> bool:
    """Whether a ``cellkit.*`` module other than ``but`` is being imported (in any thread)."""
    for name, module in sys.modules.copy().items():
        if name != but and name.startswith("cellkit.") and getattr(getattr(module, "__spec__", None), "_initializing", False):
            return True
    return False


def _register() -> None:
    """Import cellkit's saveable-layer modules (once), then remove the finder."""
    with _lock:
        if _state["done"]:
            return
        _state["done"], _state["pending"] = True, False
    try:
        importlib.import_module("cellkit.inference.saving").register_cellkit_objects()
    except Exception as exc:  # noqa: BLE001 - never break the user's `import keras`
        warnings.warn(
            f"cellkit could not register its Keras layers ({type(exc).__name__}: {exc}); plain "
            "keras.models.load_model will not know them (cellkit.inference.load_model still does)",
            RuntimeWarning,
            stacklevel=2,
        )
    finally:
        _uninstall()


class _Loader:
    """Wraps the loader of ``keras`` or a ``cellkit.*`` module; registers after ``exec_module``."""

    def __init__(self, loader: importlib.abc.Loader, is_keras: bool) -> None:
        self._loader = loader
        self._is_keras = is_keras

    def __getattr__(self, name: str) -> Any:  # every other loader method is the real one's
        return getattr(self._loader, name)

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        try:
            self._loader.exec_module(module)
        finally:
            module.__loader__ = self._loader
            if getattr(module, "__spec__", None) is not None:
                module.__spec__.loader = self._loader
        if self._is_keras:
            _state["pending"] = True
        if _state["pending"] and not _state["done"] and not _cellkit_module_initialising(but=module.__name__):
            _register()


class _Finder(importlib.abc.MetaPathFinder):
    """Finds ``keras`` and ``cellkit.*`` with the other finders and wraps their loaders."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != "keras" and not fullname.startswith("cellkit."):
            return None
        busy = getattr(_local, "busy", None)
        if busy is None:
            busy = _local.busy = set()
        if fullname in busy:  # another finder that delegates (as this one does) called back
            return None
        busy.add(fullname)
        try:
            for finder in list(sys.meta_path):
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                        spec.loader = _Loader(spec.loader, is_keras=fullname == "keras")
                    return spec
            return None
        finally:
            busy.discard(fullname)


def _uninstall() -> None:
    global _finder
    with _lock:
        if _finder is not None:
            try:
                sys.meta_path.remove(_finder)
            except ValueError:
                pass
            _finder = None


def install() -> None:
    """Register cellkit's layers with Keras now if Keras is imported, else right after it is."""
    global _finder
    with _lock:
        if _state["done"]:
            return
        if "keras" not in sys.modules:
            if _finder is None:
                _finder = _Finder()
                sys.meta_path.insert(0, _finder)
            return
    _register()
