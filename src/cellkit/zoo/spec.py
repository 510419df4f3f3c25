"""``BackboneSpec``: everything the zoo knows about one backbone, without building it.

The builder contract (every backbone, built-in or from a plugin):

* ``builder(input_shape, weights, **options) -> keras.Model``, with ``input_shape`` an
  ``(h, w, c)`` tuple and ``weights`` ``None`` (random initialisation) or one of the spec's
  ``weights`` tags (e.g. ``"imagenet"``); ``options`` are the backbone's own keyword
  arguments (like ``timm.create_model(name, **kwargs)``), given by
  ``build_classifier(..., backbone_options=...)`` or a recipe's ``backbone_options``
  table; a builder without options simply takes none;
* the model takes **float images in the 0-255 range** (raw pixel values) and applies the
  spec's own ``preprocessing`` inside itself (and any resizing it needs), with Keras
  layers only, so it serialises and runs on every Keras backend;
* it returns the last **feature map** ``(n, h', w', channels)`` (not pooled): the
  classification head chooses the pooling (:class:`cellkit.zoo.HeadConfig`);
* it is a functional ``keras.Model`` and never downloads anything unless ``weights`` asks.

Example:
    >>> import keras
    >>> def build_tiny(input_shape, weights):
    ...     inputs = keras.Input(input_shape)
    ...     x = keras.layers.Rescaling(1 / 255)(inputs)
    ...     return keras.Model(inputs, keras.layers.Conv2D(8, 3)(x))
    >>> spec = BackboneSpec(name="tiny", family="toy", builder=build_tiny, preprocessing="[0,1]")
    >>> spec.default_input_shape
    (96, 96, 3)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import keras

__all__ = ["BackboneSpec", "Builder", "PREPROCESSING_MODES"]

#: ``builder(input_shape, weights, **options) -> keras.Model`` (see the module docstring).
Builder = Callable[[tuple[int, int, int], "str | None"], "keras.Model"]

#: What a backbone expects its 0-255 input to be mapped to. Descriptions only: the
#: builders apply the mapping (see :mod:`cellkit.zoo.preprocessing`).
PREPROCESSING_MODES: Mapping[str, str] = MappingProxyType(
    {
        "[0,1]": "x / 255",
        "[-1,1]": "x / 127.5 - 1 (keras.applications 'tf' mode)",
        "imagenet_torch": "x / 255, then per channel (x - ImageNet mean) / ImageNet std "
        "(keras.applications 'torch' mode)",
        "custom": "described in the spec's description",
    }
)

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class BackboneSpec:
    """A backbone of the zoo: metadata plus a builder; nothing is built until asked.

    Attributes:
        name: registry key, lowercase ``[a-z][a-z0-9_]*`` (e.g. ``"convnext_tiny"``).
        family: architecture family used to filter listings (e.g. ``"convnext"``).
        builder: ``(input_shape, weights) -> keras.Model`` feature extractor (module docstring).
        preprocessing: a key of :data:`PREPROCESSING_MODES`: what the builder maps 0-255 to.
        default_input_shape: the input ``(h, w, c)`` used when none is given.
        min_input_size: the smallest input height/width the builder accepts (smaller
            ones are rejected before building; builders upsample internally where the
            underlying network needs more).
        weights: pretrained weights the builder can load, ``tag -> where they come from``.
        weight_files: ``tag -> file`` used to tell whether the weights are already on this
            machine: a file name inside the Keras cache (``$KERAS_HOME/models`` or
            ``~/.keras/models``), or an absolute path.
        num_params: parameters of the feature extractor at ``default_input_shape`` (the
            count ``keras.Model.count_params`` gives), ``None`` if unknown; shown by
            ``cellkit backbones`` without building the network.
        description: one line for listings.
        recipe: the preset that ``cellkit train --backbone NAME`` runs when no ``--recipe``
            is given (a name of ``cellkit recipes``, e.g. one the same plugin registers with
            ``cellkit_register_recipes``); ``None``: cellkit's default recipe.
        plugin: the plugin that registered the spec (filled by the registry).
        plugin_version: the version of that plugin's distribution (filled by the registry).
    """

    name: str
    family: str
    builder: Builder = field(repr=False, compare=False)
    preprocessing: str
    default_input_shape: tuple[int, int, int] = (96, 96, 3)
    min_input_size: int = 32
    weights: Mapping[str, str] = field(default_factory=dict)
    weight_files: Mapping[str, str] = field(default_factory=dict)
    num_params: int | None = None
    description: str = ""
    recipe: str | None = None
    plugin: str | None = None
    plugin_version: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(
                "BackboneSpec.name must be lowercase letters, digits and underscores, starting "
                f"with a letter. Received: name={self.name!r}"
            )
        if not isinstance(self.family, str) or not self.family:
            raise ValueError(
                f"BackboneSpec.family must be a non-empty string. Received: family={self.family!r}"
            )
        if self.recipe is not None and (not isinstance(self.recipe, str) or not self.recipe):
            raise ValueError(f"BackboneSpec.recipe must be a preset name or None. Received: recipe={self.recipe!r}")
        if not callable(self.builder):
            raise TypeError(
                f"BackboneSpec.builder must be callable (input_shape, weights) -> keras.Model. "
                f"Received: builder={self.builder!r}"
            )
        if self.preprocessing not in PREPROCESSING_MODES:
            raise ValueError(
                f"BackboneSpec.preprocessing must be one of {sorted(PREPROCESSING_MODES)}. "
                f"Received: preprocessing={self.preprocessing!r}"
            )
        shape = tuple(self.default_input_shape)
        if len(shape) != 3 or not all(isinstance(d, int) and d > 0 for d in shape):
            raise ValueError(
                "BackboneSpec.default_input_shape must be (height, width, channels) of positive "
                f"ints. Received: default_input_shape={self.default_input_shape!r}"
            )
        object.__setattr__(self, "default_input_shape", shape)
        if not isinstance(self.min_input_size, int) or self.min_input_size < 1:
            raise ValueError(
                f"BackboneSpec.min_input_size must be a positive int. Received: min_input_size={self.min_input_size!r}"
            )
        for attr in ("weights", "weight_files"):
            value = getattr(self, attr)
            if not isinstance(value, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()
            ):
                raise TypeError(f"BackboneSpec.{attr} must map str to str. Received: {attr}={value!r}")
            object.__setattr__(self, attr, MappingProxyType(dict(value)))
        unknown = set(self.weight_files) - set(self.weights)
        if unknown:
            raise ValueError(
                f"BackboneSpec.weight_files names tags that are not in weights={sorted(self.weights)}. "
                f"Received: weight_files={dict(self.weight_files)!r}"
            )

    def check_input_shape(self, input_shape: Any) -> tuple[int, int, int]:
        """Validate ``input_shape`` for this backbone and return it as a tuple of ints."""
        try:
            shape = tuple(int(d) for d in input_shape)
            ok = len(shape) == 3 and all(d > 0 for d in shape) and shape == tuple(input_shape)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(
                f"input_shape must be (height, width, channels) of positive ints. Received: input_shape={input_shape!r}"
            )
        if min(shape[:2]) < self.min_input_size:
            raise ValueError(
                f"backbone {self.name!r} needs inputs of at least {self.min_input_size}x"
                f"{self.min_input_size} pixels. Received: input_shape={shape!r}"
            )
        return shape  # type: ignore[return-value]
