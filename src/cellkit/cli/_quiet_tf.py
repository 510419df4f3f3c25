"""Keep TensorFlow's C++ start-up log lines off the command line's standard error.

``TF_CPP_MIN_LOG_LEVEL=3`` silences TensorFlow's own logging (the ``cuInit`` error among
it), but TensorFlow 2.18+ writes a few lines through Abseil before that setting is read
(``oneDNN custom operations are on``, ``Could not find cuda drivers``). :func:`quiet_import`
installs an import hook that runs the import of ``tensorflow`` with the C-level standard
error (file descriptor 2) redirected to a temporary file; the lines in the format of those
C++ logs are dropped and anything else is written back to standard error. The hook does not
import TensorFlow itself: commands that never need it stay fast.

``TF_ENABLE_ONEDNN_OPTS`` is never changed: it changes numerical results.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import os
import re
import sys
import tempfile
from collections.abc import Iterator

__all__ = ["quiet_import"]

#: Lines of TensorFlow's C++ logging (Abseil format) and of its start-up banners.
_TF_LOG_LINE = re.compile(
    r"^(?:[IWEF]\d{4} [\d:.]+\s+\d+ \S+:\d+\]"
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|To enable the following instructions:)"
)


@contextlib.contextmanager
def _capture_fd2() -> Iterator[None]:
    """Redirect file descriptor 2 to a temporary file; pass on what is not a TensorFlow log line."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        sys.stderr.flush()
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                with contextlib.suppress(Exception):
                    sys.stderr.flush()
                os.dup2(saved, 2)
                sink.seek(0)
                kept = [line for line in sink.read().decode("utf-8", "replace").splitlines(keepends=True)
                        if not _TF_LOG_LINE.match(line)]
                if kept:
                    os.write(2, "".join(kept).encode())
    finally:
        os.close(saved)


class _QuietLoader:
    """Wraps a module's loader: ``exec_module`` runs with standard error captured."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self._loader = loader

    def __getattr__(self, name: str):  # noqa: ANN204 - every other loader method is the real one's
        return getattr(self._loader, name)

    def create_module(self, spec):  # noqa: ANN001, ANN201
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:  # noqa: ANN001
        try:
            with _capture_fd2():
                self._loader.exec_module(module)
        finally:
            module.__loader__ = self._loader
            if getattr(module, "__spec__", None) is not None:
                module.__spec__.loader = self._loader


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Finds ``names`` with the other finders and wraps their loaders in :class:`_QuietLoader`."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names

    def find_spec(self, fullname, path, target=None):  # noqa: ANN001, ANN201
        if fullname not in self.names:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _QuietLoader(spec.loader)
                return spec
        return None


@contextlib.contextmanager
def quiet_import(names: tuple[str, ...] = ("tensorflow",)) -> Iterator[None]:
    """While active, importing one of ``names`` (not yet imported) drops TensorFlow's C++ log lines."""
    finder = _QuietFinder(names)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(finder)
