"""Find a dataset's image files without decoding any: class sub-folders or a flat folder.

The layout rules of :mod:`cellkit.data.loading` (its module docstring): ``ROOT/<class>/<image>``
with classes in sorted order (or ``class_names``), or ``ROOT/<image>`` for unlabelled images;
hidden entries are ignored, and an entry of a class folder that is not an image file (another
file, a sub-folder, a broken or looping symbolic link) is left out with its reason.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cellkit.errors import DataError

__all__ = ["IMAGE_EXTENSIONS", "FolderIndex", "index_folder"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp")


@dataclass(frozen=True)
class FolderIndex:
    """The files of a class-folder dataset, listed without decoding any image."""

    root: Path
    files: tuple[Path, ...]
    #: Class index of each file; ``None`` for a flat folder (unlabelled images).
    labels: np.ndarray | None
    class_names: tuple[str, ...]
    #: ``(path, reason)`` of each entry of a class folder that is not read (reported as a problem).
    problems: tuple[tuple[str, str], ...] = ()

    def __len__(self) -> int:
        return len(self.files)

    def ids(self, start: int = 0, stop: int | None = None) -> list[str]:
        if self.labels is None:  # a flat folder: the file name is the path relative to the folder
            return [f.name for f in self.files[start:stop]]
        return [f"{f.parent.name}/{f.name}" for f in self.files[start:stop]]


def index_folder(root: str | os.PathLike[str], class_names: Sequence[str] | None = None) -> FolderIndex:
    """List ``root/<class>/<image>`` files, or ``root/<image>`` files of a flat folder (no labels).

    Raises :class:`DataError` on a bad layout: no class sub-folders and no image files, or
    image files beside sub-folders at the top level.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError("expected a folder with one sub-folder per class, or a flat folder of images", path=root)
    entries = [p for p in _list_folder(root) if not p.name.startswith(".")]
    found = sorted(p.name for p in entries if p.is_dir())
    loose = sorted(p.name for p in entries if p.suffix.lower() in IMAGE_EXTENSIONS and not p.is_dir())
    if found and loose:
        raise DataError(
            f"holds both image files at its top level ({_some(loose)}) and sub-folders ({_some(found)}); "
            "expected either one sub-folder per class (labelled images) or a flat folder of images without "
            "sub-folders (unlabelled): move the loose images into class sub-folders, or the sub-folders out",
            path=root,
        )
    if not found:
        if not loose:
            raise DataError(
                f"no class sub-folders and no image files found (expected one sub-folder per class, or image "
                f"files ending in {', '.join(IMAGE_EXTENSIONS)})",
                path=root,
            )
        if class_names is not None:
            raise DataError("class_names given, but the folder has no class sub-folders (a flat folder of "
                            "unlabelled images)", path=root)
        images, skipped = _class_files(root)  # the same checks as a class folder's entries
        return FolderIndex(root, tuple(images), None, (), tuple(skipped))
    if class_names is None:
        names = tuple(found)
    else:
        names = tuple(class_names)
        missing = [c for c in names if c not in found]
        extra = [c for c in found if c not in names]
        if missing or extra:
            raise DataError(
                f"class_names do not match the sub-folders: missing folders {missing}, unexpected folders {extra}",
                path=root,
            )
    files: list[Path] = []
    labels: list[int] = []
    problems: list[tuple[str, str]] = []
    for label, name in enumerate(names):
        folder = root / name
        images, skipped = _class_files(folder)
        if not images:
            left = f"; left out: {skipped[0][0]}: {skipped[0][1]}" if skipped else ""
            raise DataError(
                f"class folder {name!r} holds no images (expected files ending in {', '.join(IMAGE_EXTENSIONS)}){left}",
                path=folder,
            )
        files.extend(images)
        labels.extend([label] * len(images))
        problems.extend(skipped)
    return FolderIndex(root, tuple(files), np.asarray(labels, dtype=np.int64), names, tuple(problems))


def _some(names: Sequence[str], k: int = 3) -> str:
    """``"a, b, c and 4 more"``: the first ``k`` names of a list, for a message."""
    more = f" and {len(names) - k} more" if len(names) > k else ""
    return ", ".join(names[:k]) + more


def _list_folder(folder: Path) -> list[Path]:
    """The entries of ``folder``; :class:`DataError` if it cannot be listed (permissions, I/O)."""
    try:
        return list(folder.iterdir())
    except OSError as exc:
        raise DataError(
            f"cannot list the folder: {exc.strerror or exc} (expected a readable folder)", path=folder
        ) from None


def _class_files(folder: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """The image files of a class folder, sorted by name, and ``(path, reason)`` for the entries left out.

    Hidden entries are ignored; a sub-folder, a file of another type and a broken or looping
    symbolic link are left out and reported.
    """
    images: list[Path] = []
    skipped: list[tuple[str, str]] = []
    for p in sorted(_list_folder(folder), key=lambda p: p.name):
        if p.name.startswith("."):
            continue
        reason = _entry_problem(p)
        if reason is None:
            images.append(p)
        else:
            skipped.append((str(p), reason))
    return images, skipped


def _entry_problem(p: Path) -> str | None:
    """Why the class-folder entry ``p`` is not read as an image, or ``None`` if it is one."""
    try:
        st = p.stat()
    except OSError as exc:
        if p.is_symlink():
            return f"broken symbolic link ({exc.strerror or exc}; expected a link to an image file)"
        return f"cannot read file: {exc.strerror or exc}"
    if stat.S_ISDIR(st.st_mode):
        return "a folder inside a class folder is not read (expected image files directly in the class folder)"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file (expected an image file)"
    if p.suffix.lower() not in IMAGE_EXTENSIONS:
        return f"not an image file name (expected a name ending in {', '.join(IMAGE_EXTENSIONS)})"
    return None

