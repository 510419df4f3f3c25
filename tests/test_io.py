"""Atomic writers and montages: outputs are complete or absent, never half-written."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from cellkit._io import atomic_path, atomic_save_npz, atomic_write_json, atomic_write_text
from cellkit.quality.montage import make_montage, save_montage


def test_failed_write_leaves_previous_file_and_no_temp(tmp_path: Path) -> None:
    dest = tmp_path / "out.txt"
    atomic_write_text(dest, "old")
    with pytest.raises(RuntimeError, match="boom"), atomic_path(dest) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert dest.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_json_handles_numpy(tmp_path: Path) -> None:
    atomic_write_json(tmp_path / "a.json", {"x": np.int64(3), "y": np.arange(2), "p": tmp_path})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 3, "y": [0, 1], "p": str(tmp_path)}


def test_npz_refuses_object_arrays(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="object array 'bad'"):
        atomic_save_npz(tmp_path / "a.npz", bad=np.array([{}], dtype=object))
    assert not list(tmp_path.iterdir())
    atomic_save_npz(tmp_path / "a.npz", x=np.arange(3))
    with np.load(tmp_path / "a.npz", allow_pickle=False) as f:
        assert f["x"].tolist() == [0, 1, 2]


def test_montage_layout_and_png(tmp_path: Path) -> None:
    imgs = np.zeros((10, 8, 8, 3), np.uint8)
    imgs[3] = 255
    grid = make_montage(imgs, [str(i) for i in range(10)], columns=4)
    assert grid.shape == (3 * (8 + 24 + 1), 4 * 9 - 1, 3)
    assert grid[0:8, 3 * 9 : 3 * 9 + 8].min() == 255  # image 3 at row 0, column 3
    save_montage(tmp_path / "m.png", imgs, title="t", columns=4)
    back = cv2.imread(str(tmp_path / "m.png"))
    assert back is not None and back.shape[0] == grid.shape[0] + 28
    with pytest.raises(ValueError, match="one caption per image"):
        make_montage(imgs, ["a"])


def test_written_files_get_normal_permissions(tmp_path: Path) -> None:
    import os
    import stat

    atomic_write_text(tmp_path / "p.txt", "x")
    mode = stat.S_IMODE((tmp_path / "p.txt").stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask
