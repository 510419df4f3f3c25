"""The backbone zoo: a registry of feature extractors, filled by plugins, and a classifier builder.

Verbs named like timm's: :func:`list_backbones`, :func:`get_backbone` (the
:class:`BackboneSpec`), :func:`build_backbone`, :func:`build_classifier`; and for transfer
learning :func:`freeze_backbone` and :func:`fine_tune`. Built-in backbones
(:mod:`cellkit.zoo.builtin`) are registered as a plugin, exactly like installed
``cellkit-<name>`` plugins (see ``docs/plugins.md``).

Example:
    >>> import numpy as np
    >>> from cellkit.zoo import build_classifier, list_backbones
    >>> list_backbones("network*")
    ['network2', 'network3', 'network4']
    >>> model = build_classifier("compact_resnet", num_classes=8)
    >>> model.predict(np.zeros((1, 96, 96, 3), np.uint8), verbose=0).shape
    (1, 8)
"""

from cellkit.zoo.classifier import BACKBONE_LAYER, build_classifier, get_backbone_layer
from cellkit.zoo.fine_tune import FineTuneReport, fine_tune, freeze_backbone
from cellkit.zoo.head import HeadConfig
from cellkit.zoo.registry import (
    UnknownBackboneError,
    backbone_specs,
    build_backbone,
    check_backbone_options,
    get_backbone,
    list_backbones,
    plugin_manager,
)
from cellkit.zoo.spec import PREPROCESSING_MODES, BackboneSpec
from cellkit.zoo.weights import keras_cache_dir, weights_available

__all__ = [
    "BACKBONE_LAYER",
    "PREPROCESSING_MODES",
    "BackboneSpec",
    "FineTuneReport",
    "HeadConfig",
    "UnknownBackboneError",
    "backbone_specs",
    "build_backbone",
    "build_classifier",
    "check_backbone_options",
    "fine_tune",
    "freeze_backbone",
    "get_backbone",
    "get_backbone_layer",
    "keras_cache_dir",
    "list_backbones",
    "plugin_manager",
    "weights_available",
]
