"""Read datasets: a folder of class sub-folders, an ``.npz`` file, or the bundled sample.

Layouts
    * **Folder** (the PBC layout): ``ROOT/<class name>/<image>``, images in
      ``.jpg/.jpeg/.png/.webp/.tif/.tiff/.bmp``. Classes are the sub-folders in sorted order
      (or ``class_names`` to fix another order). Hidden files are ignored.
    * **Flat folder** (new, unlabelled images): ``ROOT/<image>`` with no sub-folders; the
      dataset has no labels and its ids are the file names. A folder holding both image
      files and sub-folders at its top level is refused (which of the two is meant?).
    * **npz** (the course dataset's layout): an ``images`` array ``(n, h, w, 3)`` uint8 and
      optional ``labels`` (``(n,)`` or ``(n, 1)`` integers, or one-hot ``(n, k)``),
      ``class_names`` and ``ids``. Always read with ``allow_pickle=False``.
    * ``"sample"``: 60 images per class from PBC, bundled in the package.

Policy for images that are not 8-bit RGB (documented, explicit): by default a grayscale,
RGBA or 16-bit file is *refused* — reported as a problem and left out. With
``convert=True`` grayscale is replicated to three channels, the alpha channel is dropped and
16-bit values are scaled to 8 bits (``v >> 8``); float ``.npz`` images must be finite and in
[0, 1] or [0, 255] (NaN is never turned into 0). Images whose size differs from the most
common size of the first batch are refused unless ``size=(h, w)`` asks for every image to be
resized (area interpolation, for folders and ``.npz`` alike).

One bad file never loses the others: unreadable, truncated, damaged (libjpeg warnings, PNG
CRC or data-length errors), oversized (over 50 megapixels) or refused files, and entries of a
class folder that are not images (other files, sub-folders, broken or looping symbolic
links), are recorded in ``Dataset.problems`` (path and reason) and a :class:`DataWarning` is
issued; with ``strict=True`` the first one raises :class:`~cellkit.errors.DataError` instead.

This module reads datasets, whole or batch by batch, within the memory available; finding the
files (:mod:`cellkit.data._folders`), decoding them (:mod:`cellkit.data._decode`, with the
checks of :mod:`cellkit.data._integrity`) and the ``.npz`` arrays (:mod:`cellkit.data._npz`)
are its private modules.

Example:
    >>> import cellkit
    >>> ds = cellkit.load("sample")
    >>> ds.images.shape, ds.class_names[0]
    ((480, 96, 96, 3), 'basophil')
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from cellkit._progress import progress
from cellkit.data import _integrity
from cellkit.data._decode import decode_many
from cellkit.data._folders import IMAGE_EXTENSIONS, FolderIndex, index_folder
from cellkit.data._npz import npz_images, npz_labels, read_npz_arrays, save_npz
from cellkit.data.dataset import Dataset
from cellkit.errors import DataError

__all__ = [
    "IMAGE_EXTENSIONS",
    "DataWarning",
    "FolderIndex",
    "index_folder",
    "iter_batches",
    "load",
    "sample_path",
    "save_npz",
]


class DataWarning(UserWarning):
    """Some files of a dataset were left out (see ``Dataset.problems``)."""


def sample_path() -> Path:
    """The folder of the bundled sample (60 PBC images per class, CC BY 4.0)."""
    return Path(str(resources.files("cellkit.data") / "sample"))


def _report(problems: list[tuple[str, str]], strict: bool, where: str) -> None:
    if not problems:
        return
    if strict:
        path, reason = problems[0]
        raise DataError(reason, path=path)
    shown = "; ".join(f"{p}: {r}" for p, r in problems[:3])
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    warnings.warn(
        f"{where}: left out {len(problems)} file(s): {shown}{more}. See Dataset.problems.",
        DataWarning,
        stacklevel=3,
    )


def iter_batches(
    path_or_name: str | os.PathLike[str],
    batch_size: int = 1024,
    *,
    strict: bool = False,
    convert: bool = False,
    size: tuple[int, int] | None = None,
    class_names: Sequence[str] | None = None,
    quiet: bool = True,
) -> Iterator[Dataset]:
    """Yield the dataset in batches of at most ``batch_size`` images.

    For a folder, only one batch of decoded images is in memory at a time, so peak memory
    is bounded by the batch, not the dataset. Problems are reported per batch (each
    batch's ``problems``). For an ``.npz`` the arrays are read once and sliced.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1. Received: batch_size={batch_size!r}")
    root = _resolve(path_or_name)
    if _is_npz(root):
        full = _load_npz(root, convert=convert, class_names=class_names, size=size)
        for start in range(0, len(full), batch_size):
            yield full.subset(np.arange(start, min(start + batch_size, len(full))))
        return
    index = index_folder(root, class_names)
    if size is not None:
        check_allocation(len(index), size, root)
    expected = size
    starts = range(0, len(index), batch_size)
    for start in progress(starts, desc=f"reading {root.name}", total=len(starts), unit="batch", quiet=quiet):
        stop = min(start + batch_size, len(index))
        extra = index.problems if start == 0 else ()
        if strict and extra:
            _report(list(extra), strict, str(root))
        batch = _read_files(index, start, stop, convert, expected, extra)
        if expected is None and len(batch):
            expected = batch.images.shape[1:3]
        _report(list(batch.problems), strict, str(root))
        yield batch


def _read_files(
    index: FolderIndex,
    start: int,
    stop: int,
    convert: bool,
    size: tuple[int, int] | None,
    extra: Sequence[tuple[str, str]] = (),
) -> Dataset:
    paths = index.files[start:stop]
    decoded = decode_many(paths, convert, size)
    if size is None:
        size = _common_size(decoded)
    problems: list[tuple[str, str]] = list(extra)
    keep: list[int] = []
    images: list[np.ndarray] = []
    for i, (p, out) in enumerate(zip(paths, decoded, strict=True)):
        if isinstance(out, str):
            problems.append((str(p), out))
            continue
        if size is None:
            size = out.shape[:2]
        if out.shape[:2] != size:
            problems.append(
                (str(p), f"size {out.shape[1]}x{out.shape[0]} differs from {size[1]}x{size[0]} "
                         "(pass size=(h, w) / --size to resize every image)")
            )
            continue
        keep.append(i)
        images.append(out)
    h, w = size if size is not None else (0, 0)
    arr = np.stack(images) if images else np.zeros((0, h, w, 3), np.uint8)
    ids = index.ids(start, stop)
    return Dataset(
        images=arr,
        labels=None if index.labels is None else index.labels[start:stop][keep],
        class_names=index.class_names,
        ids=tuple(ids[i] for i in keep),
        source=str(index.root),
        problems=tuple(problems),
    )


def _common_size(decoded: Sequence[np.ndarray | str]) -> tuple[int, int] | None:
    """The most common image size among ``decoded`` (the first one on a tie): the reference size.

    One odd first file then does not make every other file "the wrong size".
    """
    counts = Counter(out.shape[:2] for out in decoded if not isinstance(out, str))
    return counts.most_common(1)[0][0] if counts else None


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux ``MemAvailable``), or ``None`` if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def check_allocation(n: int, size: tuple[int, int], path: str | os.PathLike[str]) -> None:
    """:class:`DataError` if ``n`` RGB images of ``size`` (h, w) cannot be allocated.

    Checked before any image is decoded or resized: a mistyped ``--size`` is refused with a
    message, not a ``MemoryError`` (or the machine swapping) halfway through.
    """
    h, w = size
    limit = _integrity.MAX_IMAGE_PIXELS
    if h * w > limit:
        raise DataError(
            f"size=(h, w) / --size {h}x{w} is larger than the limit of {limit / 1e6:.0f} megapixels "
            "per image (expected a size such as 96x96)",
            path=path,
        )
    need = n * h * w * 3
    free = available_memory()
    if free is not None and need > free:
        raise DataError(
            f"{n} images of {w}x{h} RGB need {need / 2**30:.1f} GiB but only {free / 2**30:.1f} GiB of memory is "
            "available (expected a smaller size=(h, w) / --size, or fewer images)",
            path=path,
        )


def load(
    path_or_name: str | os.PathLike[str],
    *,
    strict: bool = False,
    convert: bool = False,
    size: tuple[int, int] | None = None,
    class_names: Sequence[str] | None = None,
    quiet: bool = True,
) -> Dataset:
    """Load a whole dataset into memory: a class-folder tree, a flat folder, an ``.npz`` or ``"sample"``.

    A flat folder of images (no class sub-folders) loads as an unlabelled dataset
    (``labels=None``), with the same checks; its ids are the file names.

    Args:
        path_or_name: folder (class sub-folders, or images directly), ``.npz`` file, or
            ``"sample"`` for the bundled sample.
        strict: raise on the first bad file instead of leaving it out with a warning.
        convert: convert grayscale/RGBA/16-bit images to 8-bit RGB instead of refusing them.
        size: ``(h, w)`` to resize every image to; default: all images must share one size.
        class_names: class order (must match the sub-folders; a flat folder takes none);
            default: sorted folder names.
        quiet: no progress bar.

    Raises:
        DataError: the path does not exist or has the wrong layout, or (``strict``) a file
            is bad. The message names the file and what was expected.
    """
    root = _resolve(path_or_name)
    if _is_npz(root):
        return _load_npz(root, convert=convert, class_names=class_names, size=size)
    index = index_folder(root, class_names)
    images: np.ndarray | None = None  # filled batch by batch: no second copy of the dataset
    labels: list[np.ndarray] = []
    ids: list[str] = []
    problems: list[tuple[str, str]] = []
    filled = 0
    for part in iter_batches(
        root, 1024, strict=strict, convert=convert, size=size, class_names=class_names, quiet=quiet
    ):
        problems.extend(part.problems)
        if not len(part):
            continue
        if images is None:
            check_allocation(len(index), part.images.shape[1:3], root)
            images = np.empty((len(index),) + part.images.shape[1:], np.uint8)
        images[filled : filled + len(part)] = part.images
        filled += len(part)
        if part.labels is not None:
            labels.append(part.labels)
        ids.extend(part.ids)
    if images is None:
        raise DataError(f"no readable images among {len(index)} files (first problem: {problems[0][1]})", path=root)
    source = "sample" if str(path_or_name) == "sample" else str(root)
    return Dataset(
        images=images[:filled] if filled < len(images) else images,
        labels=None if index.labels is None else np.concatenate(labels),
        class_names=index.class_names,
        ids=tuple(ids),
        source=source,
        problems=tuple(problems),
    )


def _is_npz(path: Path) -> bool:
    """An ``.npz`` input: a file (a folder whose name ends in .npz is read as a class-folder tree)."""
    return path.suffix.lower() == ".npz" and not path.is_dir()


def _resolve(path_or_name: str | os.PathLike[str]) -> Path:
    if str(path_or_name) == "sample":
        return sample_path()
    path = Path(path_or_name)
    if not path.exists():
        raise DataError(
            "no such file or folder (expected a class-folder tree, a folder of images, an .npz file or 'sample')",
            path=path,
        )
    if path.is_file() and path.suffix.lower() != ".npz":
        raise DataError("expected a folder of class sub-folders or of images, or an .npz file", path=path)
    return path


def _load_npz(
    path: Path, *, convert: bool, class_names: Sequence[str] | None, size: tuple[int, int] | None = None
) -> Dataset:
    arrays = read_npz_arrays(path)
    if "images" not in arrays:
        raise DataError(f"expected an 'images' array; found {sorted(arrays)}", path=path)
    images = npz_images(arrays["images"], convert, path)
    if size is not None:
        images = _resize_all(images, size, path)
    n = images.shape[0]
    labels = None
    if "labels" in arrays:
        labels = npz_labels(arrays["labels"], n, path)
    names = tuple(class_names) if class_names is not None else tuple(str(c) for c in arrays.get("class_names", ()))
    ids = tuple(str(i) for i in arrays["ids"]) if "ids" in arrays else ()
    if ids and len(ids) != n:
        raise DataError(f"'ids' has {len(ids)} entries for {n} images", path=path)
    return Dataset(images=images, labels=labels, class_names=names, ids=ids, source=str(path))


def _resize_all(images: np.ndarray, size: tuple[int, int], path: Path) -> np.ndarray:
    """Every image resized to ``size`` (h, w) with area interpolation, as the folder loader does."""
    if images.shape[1:3] == tuple(size):
        return images
    check_allocation(images.shape[0], size, path)
    out = np.empty((images.shape[0], size[0], size[1], 3), np.uint8)
    for i, img in enumerate(images):
        out[i] = cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return out

