"""Read datasets: a folder of class sub-folders, an ``.npz`` file, or the bundled sample.

Layouts
    * **Folder** (the PBC layout): ``ROOT/<class name>/<image>``, images in
      ``.jpg/.jpeg/.png/.tif/.tiff/.bmp``. Classes are the sub-folders in sorted order
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

Example:
    >>> import cellkit
    >>> ds = cellkit.load("sample")
    >>> ds.images.shape, ds.class_names[0]
    ((480, 96, 96, 3), 'basophil')
"""

from __future__ import annotations

import os
import stat
import warnings
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from cellkit._io import atomic_save_npz
from cellkit._progress import progress
from cellkit.data import _integrity
from cellkit.data._integrity import (
    captured_stderr,
    decode_jpeg_checked,
    header_size,
    libjpeg_trouble,
    pass_on,
    png_damage,
    too_many_pixels,
)
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

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
_DECODE_THREADS = max(1, min(4, os.cpu_count() or 1))


class DataWarning(UserWarning):
    """Some files of a dataset were left out (see ``Dataset.problems``)."""


def sample_path() -> Path:
    """The folder of the bundled sample (60 PBC images per class, CC BY 4.0)."""
    return Path(str(resources.files("cellkit.data") / "sample"))


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


_MAGIC = {
    b"\xff\xd8\xff": "JPEG",
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
    b"BM": "BMP",
}


def _format_of(data: bytes) -> str | None:
    return next((fmt for magic, fmt in _MAGIC.items() if data.startswith(magic)), None)


def _is_truncated(data: bytes, fmt: str | None) -> bool:
    """End-of-stream checks: OpenCV may return a half-decoded JPEG/PNG without error."""
    if fmt == "JPEG":
        return b"\xff\xd9" not in data[-64:]
    if fmt == "PNG":
        return b"IEND" not in data[-16:]
    return False


def _decode_checked(data: bytes, fmt: str, jpeg_check: bool = True) -> np.ndarray | str:
    """Decode with OpenCV after the header and integrity checks; the image or the reason it was refused.

    ``jpeg_check=False`` decodes a JPEG without capturing libjpeg's warnings for this file
    alone (the caller captures them for a whole batch: :func:`_decode_many`).
    """
    declared = header_size(data, fmt)
    reason = too_many_pixels(declared)
    if reason is None and fmt == "PNG":
        reason = png_damage(data)
    if reason is not None:
        return reason
    if fmt == "JPEG" and jpeg_check:
        img, reason = decode_jpeg_checked(data, cv2.IMREAD_UNCHANGED)
        if reason is not None:
            return reason
    else:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        return f"corrupt {fmt}: OpenCV cannot decode it"
    return img


def _decode(path: Path, convert: bool, size: tuple[int, int] | None, jpeg_check: bool = True) -> np.ndarray | str:
    """Decode one file to uint8 RGB ``(h, w, 3)``, or return the reason it was refused."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"cannot read file: {exc.strerror or exc}"
    if not data:
        return "empty file"
    fmt = _format_of(data)
    if fmt is None:
        return "not an image (no JPEG, PNG, TIFF or BMP signature)"
    if _is_truncated(data, fmt):
        return f"truncated or corrupt {fmt} (no end-of-image marker)"
    img = _decode_checked(data, fmt, jpeg_check)
    if isinstance(img, str):
        return img
    if img.dtype == np.uint16:
        if not convert:
            return "16-bit image; expected 8-bit RGB (pass convert=True / --convert to scale to 8 bits)"
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        return f"unsupported pixel type {img.dtype}; expected 8-bit RGB"
    if img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 1):
        if not convert:
            return "grayscale image; expected RGB (pass convert=True / --convert to replicate the channel)"
        img = cv2.cvtColor(img.reshape(img.shape[:2]), cv2.COLOR_GRAY2RGB)
    elif img.shape[2] == 4:
        if not convert:
            return "RGBA image; expected RGB (pass convert=True / --convert to drop the alpha channel)"
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    elif img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    else:
        return f"{img.shape[2]}-channel image; expected RGB"
    if size is not None and img.shape[:2] != size:
        img = cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return img


def _decode_many(
    paths: Sequence[Path], convert: bool, size: tuple[int, int] | None
) -> list[np.ndarray | str]:
    """Decode ``paths`` on several threads, inside one capture of libjpeg's warnings.

    In the common case nothing is printed and no file pays for a check of its own; when
    libjpeg did warn, the batch is decoded again one file at a time, each with its own
    capture, so that the warning is the problem of the file that caused it.
    """
    with captured_stderr() as captured:
        out = _decode_threads(paths, convert, size, jpeg_check=False)
    if libjpeg_trouble(captured.text):
        out = [_decode(p, convert, size) for p in paths]
    pass_on(captured.text)
    return out


def _decode_threads(
    paths: Sequence[Path], convert: bool, size: tuple[int, int] | None, jpeg_check: bool
) -> list[np.ndarray | str]:
    if len(paths) < 16 or _DECODE_THREADS == 1:
        return [_decode(p, convert, size, jpeg_check) for p in paths]
    # one task per thread (not per file): OpenCV releases the GIL while decoding
    step = -(-len(paths) // _DECODE_THREADS)
    chunks = [paths[i : i + step] for i in range(0, len(paths), step)]
    with ThreadPoolExecutor(len(chunks)) as pool:
        parts = pool.map(lambda chunk: [_decode(p, convert, size, jpeg_check) for p in chunk], chunks)
        return [out for part in parts for out in part]


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
    decoded = _decode_many(paths, convert, size)
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


_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


def _read_npz_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` (never unpickling); :class:`DataError` for anything else."""
    not_zip = "not a valid .npz (zip) file: damaged or truncated (expected a file written by numpy.savez)"
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below; np.load would leak it on a bad zip
    except OSError as exc:
        raise DataError(f"cannot read file: {exc.strerror or exc}", path=path) from None
    with fh:
        return _read_npz_from(fh, path, not_zip)


def _read_npz_from(fh, path: Path, not_zip: str) -> dict[str, np.ndarray]:  # noqa: ANN001 - a binary file
    head = fh.read(4)
    if head not in _ZIP_MAGIC:
        raise DataError(f"{not_zip}. Received: a file starting with {head!r}", path=path)
    fh.seek(0)
    try:
        with np.load(fh, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise DataError(
                "holds pickled (object) arrays, which cellkit never loads (allow_pickle=False); "
                "save plain numeric/string arrays instead",
                path=path,
            ) from None
        raise DataError(f"{not_zip}. Received: {exc}", path=path) from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, KeyError) as exc:
        raise DataError(f"{not_zip}. Received: {type(exc).__name__}: {exc}", path=path) from None


def _load_npz(
    path: Path, *, convert: bool, class_names: Sequence[str] | None, size: tuple[int, int] | None = None
) -> Dataset:
    arrays = _read_npz_arrays(path)
    if "images" not in arrays:
        raise DataError(f"expected an 'images' array; found {sorted(arrays)}", path=path)
    images = _npz_images(arrays["images"], convert, path)
    if size is not None:
        images = _resize_all(images, size, path)
    n = images.shape[0]
    labels = None
    if "labels" in arrays:
        labels = _npz_labels(arrays["labels"], n, path)
    names = tuple(class_names) if class_names is not None else tuple(str(c) for c in arrays.get("class_names", ()))
    ids = tuple(str(i) for i in arrays["ids"]) if "ids" in arrays else ()
    if ids and len(ids) != n:
        raise DataError(f"'ids' has {len(ids)} entries for {n} images", path=path)
    return Dataset(images=images, labels=labels, class_names=names, ids=ids, source=str(path))


def _npz_images(images: np.ndarray, convert: bool, path: Path) -> np.ndarray:
    if images.ndim == 3 or (images.ndim == 4 and images.shape[-1] == 1):
        if not convert:
            raise DataError(
                f"'images' is grayscale {images.shape}; expected (n, h, w, 3) RGB "
                "(pass convert=True / --convert to replicate the channel)",
                path=path,
            )
        images = np.repeat(images.reshape(images.shape[:3] + (1,)), 3, axis=-1)
    elif images.ndim == 4 and images.shape[-1] == 4:
        if not convert:
            raise DataError(
                f"'images' is RGBA {images.shape}; expected (n, h, w, 3) RGB "
                "(pass convert=True / --convert to drop the alpha channel)",
                path=path,
            )
        images = images[..., :3]
    if images.ndim != 4 or images.shape[-1] != 3:
        raise DataError(f"'images' has shape {images.shape}; expected (n, h, w, 3) RGB", path=path)
    if images.dtype == np.uint8:
        return images
    if images.dtype == np.uint16 and convert:
        return (images >> 8).astype(np.uint8)
    if np.issubdtype(images.dtype, np.floating) and convert:
        _check_float_values(images, path)
        hi = float(images.max()) if images.size else 0.0
        scale = 255.0 if hi <= 1.0 else 1.0
        return np.clip(np.rint(images * scale), 0, 255).astype(np.uint8)
    raise DataError(
        f"'images' has dtype {images.dtype}; expected uint8 0-255 "
        "(pass convert=True / --convert to scale float [0, 1] or [0, 255] and 16-bit data)",
        path=path,
    )


def _check_float_values(images: np.ndarray, path: Path) -> None:
    """:class:`DataError` unless every value is finite and in [0, 255] (NaN would silently become 0)."""
    bad = int(np.count_nonzero(~np.isfinite(images)))
    if bad:
        raise DataError(
            f"'images' contains NaN or infinite values ({bad} of {images.size}); expected finite pixel values "
            "in [0, 1] or [0, 255] (convert=True / --convert does not invent pixels)",
            path=path,
        )
    lo, hi = (float(images.min()), float(images.max())) if images.size else (0.0, 0.0)
    if lo < 0 or hi > 255:
        raise DataError(
            f"'images' holds values from {lo:g} to {hi:g}; expected pixel values in [0, 1] or [0, 255]",
            path=path,
        )


def _resize_all(images: np.ndarray, size: tuple[int, int], path: Path) -> np.ndarray:
    """Every image resized to ``size`` (h, w) with area interpolation, as the folder loader does."""
    if images.shape[1:3] == tuple(size):
        return images
    check_allocation(images.shape[0], size, path)
    out = np.empty((images.shape[0], size[0], size[1], 3), np.uint8)
    for i, img in enumerate(images):
        out[i] = cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return out


def _npz_labels(labels: np.ndarray, n: int, path: Path) -> np.ndarray:
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    elif labels.ndim == 2 and labels.shape[0] == n and labels.shape[1] > 1:
        if not np.all((labels == 0) | (labels == 1)) or not np.all(labels.sum(axis=1) == 1):
            raise DataError(f"'labels' of shape {labels.shape} is not one-hot", path=path)
        labels = labels.argmax(axis=1)
    if labels.ndim != 1:
        raise DataError(f"'labels' has shape {labels.shape}; expected ({n},) class indices", path=path)
    if labels.shape[0] != n:
        raise DataError(f"{labels.shape[0]} labels for {n} images; expected one label per image", path=path)
    if not np.issubdtype(labels.dtype, np.integer):
        if np.issubdtype(labels.dtype, np.floating) and np.all(labels == np.round(labels)):
            labels = labels.astype(np.int64)
        else:
            raise DataError(f"'labels' has dtype {labels.dtype}; expected integer class indices", path=path)
    return labels.astype(np.int64)


def save_npz(dataset: Dataset, path: str | os.PathLike[str]) -> Path:
    """Write ``dataset`` to ``path`` (``.npz``) atomically, readable by :func:`load`.

    Stores ``images``, ``labels`` (when present), ``class_names`` and ``ids`` as plain
    arrays (no pickles).
    """
    path = Path(path)
    if path.suffix.lower() != ".npz":
        raise DataError("output file must end in .npz", path=path)
    arrays: dict[str, np.ndarray] = {
        "images": dataset.images,
        "ids": np.asarray(dataset.ids, dtype=str),
        "class_names": np.asarray(dataset.class_names, dtype=str),
    }
    if dataset.labels is not None:
        arrays["labels"] = dataset.labels
    atomic_save_npz(path, **arrays)
    return path
