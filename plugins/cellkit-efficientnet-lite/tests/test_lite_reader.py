"""The restricted PyTorch checkpoint reader: correct on both formats, and never runs code."""

from __future__ import annotations

import io
import os
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from cellkit_efficientnet_lite.torch_checkpoint import (
    ALLOWED_GLOBALS,
    CheckpointError,
    UnsafeCheckpointError,
    read_state_dict,
)
from conftest import require_checkpoint
from craft import MAGIC, legacy_bytes, state_dict_pickle, zip_bytes

TENSORS = {
    "conv.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2) / 7,
    "bn.running_var": np.linspace(0.5, 2, 5).astype(np.float64),
    "half": np.array([1.5, -2.25], np.float16),
    "bn.num_batches_tracked": np.array(12345678901, np.int64),
    "mask": np.array([[True, False, True]]),
    "empty": np.zeros((0, 4), np.float32),
}


def _write(tmp_path: Path, data: bytes, name: str = "ckpt.pth") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("fmt", ["legacy", "zip"])
def test_reads_hand_written_checkpoints(tmp_path: Path, fmt: str) -> None:
    data = legacy_bytes(TENSORS) if fmt == "legacy" else zip_bytes(TENSORS)
    state = read_state_dict(_write(tmp_path, data))
    assert list(state) == list(TENSORS)
    for name, expected in TENSORS.items():
        assert state[name].dtype == expected.dtype, name
        np.testing.assert_array_equal(state[name], expected)
        assert state[name].flags.c_contiguous and state[name].flags.writeable


def test_honours_strides_and_offsets(tmp_path: Path) -> None:
    # The Lite checkpoints store conv kernels transposed (HWIO memory, OIHW view): strides matter.
    storage = np.arange(30, dtype=np.float32)
    entries = {
        "transposed": ("0", np.float32, 30, 0, (3, 2), (1, 3)),
        "offset_view": ("0", np.float32, 30, 10, (2, 5), (5, 1)),
        "scalar": ("0", np.float32, 30, 29, (), ()),
    }
    data = legacy_bytes(state_pickle=state_dict_pickle(entries), storages={"0": storage})
    state = read_state_dict(_write(tmp_path, data))
    np.testing.assert_array_equal(state["transposed"], storage[:6].reshape(2, 3).T)
    np.testing.assert_array_equal(state["offset_view"], storage[10:20].reshape(2, 5))
    assert state["scalar"].shape == () and state["scalar"] == 29
    state["transposed"][0, 0] = -1  # a copy: the storage is untouched, shared views independent
    assert state["offset_view"].min() == 10


def test_refuses_views_past_the_end_of_storage(tmp_path: Path) -> None:
    entries = {"evil": ("0", np.float32, 4, 2, (3,), (1,))}
    data = legacy_bytes(state_pickle=state_dict_pickle(entries), storages={"0": np.zeros(4, np.float32)})
    with pytest.raises(CheckpointError, match="past the end of its storage"):
        read_state_dict(_write(tmp_path, data))


class _RunsCommand:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204 - the classic pickle exploit
        return (os.system, (f"touch {self.marker}",))


class _Evals:
    def __reduce__(self):  # noqa: ANN204
        return (eval, ("__import__('os').getcwd()",))


@pytest.mark.parametrize("where", ["state_dict", "header", "zip", "tensor_argument"])
def test_refuses_a_pickle_that_would_run_os_system(tmp_path: Path, where: str) -> None:
    marker = tmp_path / "pwned"
    evil = pickle.dumps(_RunsCommand(marker), protocol=2)
    assert b"system" in evil  # the payload really names os.system (posix.system)
    if where == "state_dict":
        data = legacy_bytes(state_pickle=evil)
    elif where == "header":
        data = legacy_bytes(header=[pickle.dumps(MAGIC, protocol=2), evil])
    elif where == "zip":
        data = zip_bytes(state_pickle=evil)
    else:  # a legitimate-looking state dict whose value is the payload
        data = legacy_bytes(state_pickle=pickle.dumps({"w": _RunsCommand(marker)}, protocol=2))
    with pytest.raises(UnsafeCheckpointError, match=r"refusing to load global (posix|os|nt)\.system"):
        read_state_dict(_write(tmp_path, data))
    assert not marker.exists()


def test_refuses_eval_and_names_the_allow_list(tmp_path: Path) -> None:
    with pytest.raises(UnsafeCheckpointError, match=r"(builtins|__builtin__)\.eval") as info:
        read_state_dict(_write(tmp_path, legacy_bytes(state_pickle=pickle.dumps(_Evals(), protocol=2))))
    assert "torch._utils._rebuild_tensor_v2" in str(info.value)
    assert ALLOWED_GLOBALS == tuple(sorted(ALLOWED_GLOBALS)) and "collections.OrderedDict" in ALLOWED_GLOBALS
    assert not any(
        "torch.load" in g or "builtins" in g or g.startswith(("os.", "posix.")) for g in ALLOWED_GLOBALS
    )


def test_refuses_other_torch_globals(tmp_path: Path) -> None:
    # torch.load itself, or a module (pickled source code) are not storages or tensors.
    payload = b"\x80\x02ctorch\nload\nX\x01\x00\x00\x00a\x85R."
    with pytest.raises(UnsafeCheckpointError, match=r"torch\.load"):
        read_state_dict(_write(tmp_path, legacy_bytes(state_pickle=payload)))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b[: len(b) - 3], "truncated"),
        (lambda b: b + b"\x00", "unexpected bytes after the last storage"),
        (lambda b: b"\x80\x02" + b[2:6] + b"\x00" * 8, "magic number|corrupt pickle"),
        (lambda b: b"garbage", "corrupt pickle"),
        (lambda b: b"", "corrupt pickle"),
        (lambda b: b"PK\x03\x04 not a zip", "corrupt zip"),
    ],
)
def test_corrupt_files_give_a_clear_error(tmp_path: Path, mutate, message: str) -> None:
    path = _write(tmp_path, mutate(legacy_bytes(TENSORS)))
    with pytest.raises(CheckpointError, match=message) as info:
        read_state_dict(path)
    assert str(path) in str(info.value)


def test_storage_size_on_disk_must_match_the_pickle(tmp_path: Path) -> None:
    data = bytearray(legacy_bytes({"w": np.zeros(3, np.float32)}))
    size_at = len(data) - 12 - 8
    assert struct.unpack("<q", data[size_at : size_at + 8]) == (3,)
    data[size_at : size_at + 8] = struct.pack("<q", 2)
    with pytest.raises(CheckpointError, match="holds 2 elements on disk"):
        read_state_dict(_write(tmp_path, bytes(data)))


def test_not_a_state_dict(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="expected a state dict"):
        read_state_dict(_write(tmp_path, legacy_bytes(state_pickle=pickle.dumps([1, 2], protocol=2))))
    with pytest.raises(CheckpointError, match="not a tensor"):
        read_state_dict(_write(tmp_path, legacy_bytes(state_pickle=pickle.dumps({"a": 1}, protocol=2))))
    with pytest.raises(CheckpointError, match="not found"):
        read_state_dict(tmp_path / "missing.pth")


def test_zip_without_data_pkl(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/other.txt", "x")
    with pytest.raises(CheckpointError, match="data.pkl"):
        read_state_dict(_write(tmp_path, buffer.getvalue()))


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "zip"])
def test_agrees_with_torch_save(tmp_path: Path, torch, legacy: bool) -> None:
    state = {
        "a": torch.arange(12, dtype=torch.float32).reshape(3, 4).t(),  # non-contiguous
        "b": torch.tensor([1, 2, 3], dtype=torch.int64),
        "c": torch.randn(2, 3, dtype=torch.float64)[1],  # a view with an offset into a shared storage
        "d": torch.randn(4).half(),
    }
    path = tmp_path / "t.pth"
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    ours = read_state_dict(path)
    assert list(ours) == list(state)
    for name, tensor in state.items():
        np.testing.assert_array_equal(ours[name], tensor.numpy())


def test_reads_the_published_checkpoint_like_torch(torch) -> None:
    path = require_checkpoint("efficientnet_lite0")
    ours = read_state_dict(path)
    theirs = torch.load(path, map_location="cpu", weights_only=True)
    assert list(ours) == list(theirs) and len(ours) == 296
    for name, tensor in theirs.items():
        np.testing.assert_array_equal(ours[name], tensor.numpy(), err_msg=name)
