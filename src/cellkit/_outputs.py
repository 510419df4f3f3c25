"""Outputs that never destroy an input and appear whole or not at all.

Two shapes of output, one guarantee each:

* :class:`OutputFolder` -- a folder of files (an export, an ``inspect`` report). It is
  checked *before* the work (not an input, not inside an input, does not hold an input,
  writable, and -- when it exists -- empty or holding only what cellkit wrote there), built
  in a temporary sibling folder, stamped with :data:`MANIFEST` (the files cellkit wrote),
  and swapped in by renames only when complete. The previous folder is removed only after
  the new one is in place; with ``overwrite`` a folder holding any file cellkit did not
  write is refused, never cleaned.
* :func:`atomic_file_group` -- a primary file and its companions (``clean.npz`` and
  ``clean.removed.csv``). Every member is written to a temporary file first; then the
  stale companions are removed, the primary is renamed in, then the companions. Even a
  kill between two renames leaves no *mismatched* pair: at worst a companion is missing.

Both publish with SIGINT/SIGTERM held back for the few renames, so Ctrl-C during the swap
waits for it to finish.

Example:
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> folder = OutputFolder(root / "report", owned=("*.txt",))
    >>> with folder.build() as work:
    ...     _ = (work / "a.txt").write_text("new")
    >>> sorted(p.name for p in (root / "report").iterdir())
    ['.cellkit-output.json', 'a.txt']
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fnmatch
import json
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from cellkit._io import _umask
from cellkit.errors import DataError

__all__ = ["MANIFEST", "OutputFolder", "atomic_file_group", "check_not_input", "check_writable_parent"]

#: The file cellkit writes into every output folder: what it wrote there, and when.
MANIFEST = ".cellkit-output.json"


def _resolve(path: str | os.PathLike[str]) -> Path:
    return Path(path).expanduser().resolve()


def _is_within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def check_not_input(
    dest: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str] | None], *, argument: str = "--out"
) -> None:
    """Refuse an output that is an input, holds one, or lies inside an input folder."""
    out = _resolve(dest)
    for source in inputs:
        if source is None or str(source) == "sample" or not Path(source).exists():
            continue
        src = _resolve(source)
        if _is_within(src, out):
            what = "would overwrite" if src == out else "holds"
            raise DataError(
                f"{argument} {what} the input {source}; cellkit never modifies its input "
                "(choose an output outside it)", path=dest)
        if src.is_dir() and _is_within(out, src):
            raise DataError(
                f"{argument} lies inside the input folder {source}; cellkit never writes into its input "
                "(choose an output outside it)", path=dest)


def check_writable_parent(dest: str | os.PathLike[str], *, argument: str = "--out") -> None:
    """Refuse, before any work, an output whose nearest existing parent folder cannot be written."""
    parent = _resolve(dest).parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise DataError(f"{argument}: {parent} is not a folder, so it cannot hold the output", path=dest)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise DataError(f"{argument}: the folder {parent} is not writable (expected a writable place for the output)",
                        path=dest)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT/SIGTERM back for a few renames (main thread, POSIX); delivered afterwards."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class OutputFolder:
    """A multi-file output folder, validated before the work and swapped in whole after it.

    Args:
        dest: the folder to create or replace.
        inputs: paths the command reads; ``dest`` may not be, hold or lie inside one.
        overwrite: allow replacing an existing, non-empty folder that holds only what cellkit
            wrote there (listed in its :data:`MANIFEST`, or matching ``owned``).
        owned: file-name patterns this kind of output writes, so a folder an older cellkit
            wrote without a manifest is still recognised as cellkit's.
        argument: the command-line argument naming ``dest``, for messages.
        kind: what the folder is (recorded in the manifest).

    Raises:
        DataError: from the constructor, before any work: ``dest`` is a file, an input, not
            writable, or not empty (without ``overwrite``, or with foreign files in it).
    """

    def __init__(
        self,
        dest: str | os.PathLike[str],
        *,
        inputs: Sequence[str | os.PathLike[str] | None] = (),
        overwrite: bool = False,
        owned: Sequence[str] = (),
        argument: str = "--out",
        kind: str = "output",
    ) -> None:
        self.dest = Path(dest)
        self.inputs = tuple(inputs)
        self.overwrite = overwrite
        self.owned = tuple(owned)
        self.argument = argument
        self.kind = kind
        self.check()

    def _foreign(self) -> list[str]:
        """Entries of ``dest`` that cellkit did not write (neither in the manifest nor ``owned``)."""
        listed: set[str] = set()
        manifest = self.dest / MANIFEST
        if manifest.is_file():
            try:
                listed = set(json.loads(manifest.read_text(encoding="utf-8")).get("files", []))
            except (ValueError, OSError, AttributeError):
                listed = set()
        return sorted(
            p.name for p in self.dest.iterdir()
            if p.name != MANIFEST and p.name not in listed
            and not any(fnmatch.fnmatch(p.name, pat) for pat in self.owned)
        )

    def check(self) -> None:
        """Validate ``dest`` (see the class); called by the constructor and again before the swap."""
        dest = self.dest
        if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
            raise DataError(f"{self.argument} exists and is not a folder (expected a new or empty folder)", path=dest)
        check_not_input(dest, self.inputs, argument=self.argument)
        check_writable_parent(dest, argument=self.argument)
        if not dest.is_dir():
            return
        try:
            entries = list(dest.iterdir())
        except PermissionError:
            raise DataError(f"{self.argument} cannot be read (expected a readable folder)", path=dest) from None
        if not entries:
            return
        if not self.overwrite:
            raise DataError(f"{self.argument} exists and is not empty; choose another folder or pass --overwrite "
                            "(which replaces a folder cellkit wrote)", path=dest)
        foreign = self._foreign()
        if foreign:
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            raise DataError(
                f"{self.argument} holds files cellkit did not write ({shown}); --overwrite only replaces a folder "
                "cellkit wrote: move them away or choose another folder", path=dest)

    @contextlib.contextmanager
    def build(self) -> Iterator[Path]:
        """Yield an empty temporary folder; when the block succeeds it becomes ``dest``."""
        from cellkit import __version__

        self.dest.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{self.dest.name}.partial-", dir=self.dest.parent))
        try:
            yield work
            files = sorted(p.name for p in work.iterdir())
            manifest = {"kind": self.kind, "cellkit": __version__, "files": files,
                        "written": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
            (work / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
            os.chmod(work, 0o777 & ~_umask())  # mkdtemp makes 0700
            self.check()  # the folder may have changed during the work
            self._swap_in(work)
        finally:
            if work.exists():
                shutil.rmtree(work, ignore_errors=True)

    def _swap_in(self, work: Path) -> None:
        old: Path | None = None
        with _signals_held():
            if self.dest.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{self.dest.name}.old-", dir=self.dest.parent))
                os.rmdir(old)
                os.replace(self.dest, old)
            os.replace(work, self.dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_file_group(dests: Sequence[str | os.PathLike[str]]) -> Iterator[list[Path]]:
    """Yield one temporary path per destination; publish them together when the block succeeds.

    ``dests[0]`` is the primary file, the others its companions. Publishing removes stale
    companions, renames the primary in, then the companions, with SIGINT/SIGTERM held back:
    a reader never finds a new primary beside an old companion. On failure every temporary
    file is removed and the previous files are untouched.
    """
    paths = [Path(d) for d in dests]
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
    temps: list[Path] = []
    try:
        for p in paths:
            fd, name = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp" + "".join(p.suffixes[-1:]), dir=p.parent)
            os.close(fd)
            temps.append(Path(name))
        yield temps
        for t in temps:
            with open(t, "rb+") as fh:
                os.fsync(fh.fileno())
            os.chmod(t, 0o666 & ~_umask())
        with _signals_held():
            for p in paths[1:]:
                p.unlink(missing_ok=True)
            for t, p in zip(temps, paths, strict=True):
                os.replace(t, p)
    finally:
        for t in temps:
            t.unlink(missing_ok=True)

