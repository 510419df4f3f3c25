"""The backbone registry: timm-like verbs over the backbones every plugin registers.

The registry asks the shared plugin manager (:func:`cellkit.plugins.get_plugin_manager`)
for ``cellkit_register_backbones`` on every query, after announcing the built-in backbones
(:mod:`cellkit.zoo.builtin`) as a plugin, so a plugin registered at run time is seen at once.

Example:
    >>> "compact_resnet" in list_backbones()
    True
    >>> list_backbones("convnext_*")
    ['convnext_small', 'convnext_tiny']
    >>> get_backbone("compact_resnet").family
    'resnet'
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import inspect
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras

from cellkit.errors import CellkitError, DataError
from cellkit.plugins import (
    CellkitPluginManager,
    PluginError,
    PluginWarning,
    add_builtin_plugin,
    get_plugin_manager,
)
from cellkit.zoo.spec import BackboneSpec
from cellkit.zoo.weights import check_weights

__all__ = [
    "UnknownBackboneError",
    "backbone_specs",
    "build_backbone",
    "check_backbone_options",
    "get_backbone",
    "list_backbones",
    "plugin_manager",
]


class UnknownBackboneError(CellkitError, ValueError):
    """No installed plugin registers a backbone of that name."""


def plugin_manager() -> CellkitPluginManager:
    """The shared plugin manager, with the built-in backbones registered in it.

    Example:
        >>> "cellkit.zoo.builtin" in [info.name for info in plugin_manager().describe()]
        True
    """
    from cellkit import __version__
    from cellkit.zoo import builtin

    add_builtin_plugin(builtin.PLUGIN_NAME, builtin, __version__)
    return get_plugin_manager()


def backbone_specs() -> dict[str, BackboneSpec]:
    """Every registered backbone by name, with ``plugin``/``plugin_version`` filled in.

    A plugin whose hook raises or returns something other than specs is skipped with a
    :class:`~cellkit.plugins.PluginWarning`; two plugins registering the same name raise
    :class:`~cellkit.plugins.PluginError` naming both.
    """
    pm = plugin_manager()
    specs: dict[str, BackboneSpec] = {}
    # in registration order: built-ins first, then installed plugins by entry-point name
    for impl in pm.hook.cellkit_register_backbones.get_hookimpls():
        info = pm.info(impl.plugin_name)
        try:
            returned = list(impl.function() or ())
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the zoo
            warnings.warn(
                f"cellkit plugin {info.label()} failed in cellkit_register_backbones: "
                f"{type(exc).__name__}: {exc}. Its backbones are skipped.",
                PluginWarning,
                stacklevel=3,
            )
            continue
        bad = [item for item in returned if not isinstance(item, BackboneSpec)]
        if bad:
            warnings.warn(
                f"cellkit plugin {info.label()} returned {bad[0]!r} from cellkit_register_backbones; "
                "expected cellkit.zoo.BackboneSpec objects. Its backbones are skipped.",
                PluginWarning,
                stacklevel=3,
            )
            continue
        for spec in returned:
            spec = dataclasses.replace(spec, plugin=info.name, plugin_version=info.version)
            if spec.name in specs:
                first = specs[spec.name]
                first_info = pm.info(first.plugin) if first.plugin else None
                raise PluginError(
                    f"backbone {spec.name!r} is registered by two plugins: "
                    f"{first_info.label() if first_info else first.plugin} and {info.label()}. "
                    "Uninstall one of them (or rename the backbone)."
                )
            specs[spec.name] = spec
    return specs


def list_backbones(filter: str | None = None, family: str | None = None) -> list[str]:  # noqa: A002 - timm's name
    """Names of the registered backbones, sorted, optionally filtered.

    Args:
        filter: a glob pattern (``fnmatch``) on names, e.g. ``"efficientnetv2_*"``.
        family: keep only backbones of this family, e.g. ``"convnext"``.

    Example:
        >>> list_backbones(family="simple_cnn")
        ['baseline', 'network2', 'network3', 'network4']
    """
    names = [spec.name for spec in backbone_specs().values() if family is None or spec.family == family]
    if filter is not None:
        names = fnmatch.filter(names, filter)
    return sorted(names)


def get_backbone(name: str) -> BackboneSpec:
    """The :class:`BackboneSpec` registered as ``name``.

    Raises:
        UnknownBackboneError: (a ``ValueError``) listing close matches and the installed plugins.
    """
    specs = backbone_specs()
    if name in specs:
        return specs[name]
    close = difflib.get_close_matches(str(name), list(specs), n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    plugins = ", ".join(info.label() for info in plugin_manager().describe())
    raise UnknownBackboneError(
        f"unknown backbone {name!r}.{hint} {len(specs)} backbones are registered (see "
        f"`cellkit backbones` or cellkit.zoo.list_backbones()); installed plugins: {plugins}. "
        f"Received: name={name!r}"
    )


def check_backbone_options(spec: BackboneSpec, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """``options`` as a dict, after checking that the builder of ``spec`` takes them.

    Raises:
        ValueError: ``options`` is not a mapping of names, or the builder has no such
            keyword argument (the message lists the ones it has).

    Example:
        >>> check_backbone_options(get_backbone("baseline"), None)
        {}
    """
    if options is None:
        return {}
    if not isinstance(options, Mapping) or not all(isinstance(k, str) for k in options):
        raise ValueError(f"backbone_options must be a mapping of option names. Received: {options!r}")
    options = dict(options)
    if not options:
        return options
    try:
        signature = inspect.signature(spec.builder)
    except (TypeError, ValueError):  # a builtin or C callable: let the call decide
        return options
    try:
        signature.bind((1, 1, 1), None, **options)
    except TypeError:
        known = [n for n, p in list(signature.parameters.items())[2:]
                 if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        raise ValueError(
            f"backbone {spec.name!r} does not take the option(s) {sorted(options)}; its builder takes "
            f"{known or 'no options'}. Received: backbone_options={options!r}"
        ) from None
    return options


def build_backbone(
    name: str,
    input_shape: tuple[int, int, int] | None = None,
    weights: str | Path | None = None,
    **options: Any,
) -> keras.Model:
    """Build the feature extractor ``name``: 0-255 images -> feature map.

    Args:
        name: a registered backbone (:func:`list_backbones`).
        input_shape: ``(h, w, c)``; default: the spec's ``default_input_shape`` (96, 96, 3).
        weights: ``None`` (random), a tag of the spec's ``weights`` (e.g. ``"imagenet"``,
            which may download), or a ``.weights.h5`` file saved from this backbone.
        **options: the backbone's own keyword arguments (:func:`check_backbone_options`).

    Example:
        >>> build_backbone("baseline").output.shape
        (None, 24, 24, 64)
    """
    spec = get_backbone(name)
    shape = spec.check_input_shape(spec.default_input_shape if input_shape is None else input_shape)
    weights = check_weights(spec, weights)
    model = spec.builder(shape, None if isinstance(weights, Path) else weights, **check_backbone_options(spec, options))
    if not isinstance(model, keras.Model):
        raise PluginError(
            f"the builder of backbone {name!r} (plugin {spec.plugin!r}) returned "
            f"{type(model).__name__}, not a keras.Model"
        )
    if isinstance(weights, Path):
        load_weights(model, weights)
    return model


def load_weights(model: keras.Model, path: Path) -> None:
    """``model.load_weights(path)``, turning a mismatch into a :class:`DataError` naming the file."""
    try:
        model.load_weights(path)
    except ValueError as exc:
        raise DataError(f"weights do not fit model {model.name!r}: {exc}", path=path) from exc
