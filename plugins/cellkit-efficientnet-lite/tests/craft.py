"""Write PyTorch checkpoints byte by byte, without torch: legacy and zip formats.

Used to test the restricted reader where torch is absent, and to craft hostile files. The
pickle opcodes are assembled by hand (protocol 2) so that the file names exactly the globals
a real ``torch.save`` names (``torch._utils._rebuild_tensor_v2``, ``torch.FloatStorage``, ...).
"""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from collections.abc import Mapping

import numpy as np

MAGIC = 0x1950A86A20F9469CFC6C
STORAGE_NAMES = {
    np.dtype("float32"): "FloatStorage",
    np.dtype("float64"): "DoubleStorage",
    np.dtype("float16"): "HalfStorage",
    np.dtype("int64"): "LongStorage",
    np.dtype("int32"): "IntStorage",
    np.dtype("uint8"): "ByteStorage",
    np.dtype("bool"): "BoolStorage",
}


def _str(s: str) -> bytes:
    data = s.encode()
    return b"X" + struct.pack("<I", len(data)) + data  # BINUNICODE


def _int(i: int) -> bytes:
    return b"J" + struct.pack("<i", i)  # BININT


def _tuple(items: list[bytes]) -> bytes:
    return b"(" + b"".join(items) + b"t"  # MARK ... TUPLE


def _global(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


def state_dict_pickle(
    entries: Mapping[str, tuple[str, np.dtype, int, int, tuple[int, ...], tuple[int, ...]]],
) -> bytes:
    """Pickle of an OrderedDict ``name -> tensor``; each entry is
    ``(storage key, dtype, storage numel, offset, shape, strides)``."""
    out = b"\x80\x02" + _global("collections", "OrderedDict") + b")R" + b"("
    for name, (key, dtype, numel, offset, shape, strides) in entries.items():
        pid = _tuple(
            [
                _str("storage"),
                _global("torch", STORAGE_NAMES[np.dtype(dtype)]),
                _str(key),
                _str("cpu"),
                _int(numel),
            ]
        )
        args = _tuple(
            [
                pid + b"Q",  # BINPERSID
                _int(offset),
                _tuple([_int(d) for d in shape]),
                _tuple([_int(s) for s in strides]),
                b"\x89",  # NEWFALSE: requires_grad
                _global("collections", "OrderedDict") + b")R",  # backward hooks
            ]
        )
        out += _str(name) + _global("torch._utils", "_rebuild_tensor_v2") + args + b"R"
    return out + b"u."


def _entries(tensors: Mapping[str, np.ndarray]) -> tuple[dict, dict[str, np.ndarray]]:
    entries, storages = {}, {}
    for i, (name, array) in enumerate(tensors.items()):
        array = np.asarray(array)
        contiguous = np.array(array, order="C")
        storages[str(i)] = contiguous.reshape(-1)
        strides = tuple(s // array.itemsize for s in contiguous.strides)
        entries[name] = (str(i), array.dtype, array.size, 0, array.shape, strides)
    return entries, storages


def legacy_bytes(
    tensors: Mapping[str, np.ndarray] | None = None,
    *,
    state_pickle: bytes | None = None,
    storages: Mapping[str, np.ndarray] | None = None,
    header: list[bytes] | None = None,
) -> bytes:
    """A legacy-format file: magic, protocol, sys info, state dict, storage keys, storages."""
    if tensors is not None:
        entries, storages = _entries(tensors)
        state_pickle = state_dict_pickle(entries)
    storages = storages or {}
    head = header or [
        pickle.dumps(MAGIC, protocol=2),
        pickle.dumps(1001, protocol=2),
        pickle.dumps({"protocol_version": 1001, "little_endian": True, "type_sizes": {"int": 4}}, protocol=2),
    ]
    out = io.BytesIO()
    for part in head:
        out.write(part)
    out.write(state_pickle or b"")
    out.write(pickle.dumps(list(storages), protocol=2))
    for buffer in storages.values():
        out.write(struct.pack("<q", buffer.size))
        out.write(buffer.astype(buffer.dtype.newbyteorder("<")).tobytes())
    return out.getvalue()


def zip_bytes(tensors: Mapping[str, np.ndarray] | None = None, *, state_pickle: bytes | None = None) -> bytes:
    """A zip-format file (torch >= 1.6 layout) with ``archive/data.pkl`` and ``archive/data/<key>``."""
    storages: dict[str, np.ndarray] = {}
    if tensors is not None:
        entries, storages = _entries(tensors)
        state_pickle = state_dict_pickle(entries)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("archive/data.pkl", state_pickle or b"")
        archive.writestr("archive/byteorder", "little")
        for key, buffer in storages.items():
            archive.writestr(f"archive/data/{key}", buffer.tobytes())
        archive.writestr("archive/version", "3\n")
    return out.getvalue()
