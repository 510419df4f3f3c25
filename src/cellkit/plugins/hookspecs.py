"""The hook specifications of cellkit: the complete contract between cellkit and its plugins.

A plugin is any Python object (usually a module) whose functions are decorated with
:data:`hookimpl` and named after a hook below. cellkit finds installed plugins through the
``cellkit`` entry-point group (see :mod:`cellkit.plugins.manager` and ``docs/plugins.md``).

This module knows nothing of the rest of cellkit: hooks are described by their names,
arguments and documented return values only.

Example:
    >>> from cellkit.plugins import hookimpl
    >>> @hookimpl
    ... def cellkit_register_backbones():
    ...     return []  # a list of cellkit.zoo.BackboneSpec
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pluggy

__all__ = ["PROJECT_NAME", "hookimpl", "hookspec", "cellkit_register_backbones", "cellkit_register_recipes"]

#: The pluggy project name: markers, the plugin manager and the entry-point group share it.
PROJECT_NAME = "cellkit"

#: Marks a function of this module as a hook specification.
hookspec = pluggy.HookspecMarker(PROJECT_NAME)

#: Marks a plugin's function as the implementation of the hook of the same name.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def cellkit_register_backbones() -> Sequence[object]:
    """Return the backbones this plugin adds to the zoo.

    Called (without arguments) every time the zoo is queried (``list_backbones``,
    ``get_backbone``, ``build_classifier``, ``cellkit backbones``), so keep it cheap: build
    the specs, never the networks, and never download anything here.

    Returns:
        A list (or any iterable) of :class:`cellkit.zoo.BackboneSpec`, possibly empty.
        Leave the spec's ``plugin`` and ``plugin_version`` unset: the registry fills them
        in. A name already provided by another plugin is an error naming both plugins.

    Example:
        >>> from cellkit.plugins import hookimpl
        >>> def build_tiny(input_shape, weights):  # the contract: cellkit.zoo.spec
        ...     ...
        >>> @hookimpl
        ... def cellkit_register_backbones():
        ...     from cellkit.zoo import BackboneSpec
        ...     return [BackboneSpec(name="tiny", family="toy", builder=build_tiny,
        ...                          preprocessing="[0,1]")]
        >>> [spec.name for spec in cellkit_register_backbones()]
        ['tiny']
    """
    raise NotImplementedError  # pragma: no cover - a specification, never called


@hookspec
def cellkit_register_recipes() -> Mapping[str, object]:
    """Return the training recipes (presets) this plugin ships.

    Called (without arguments) whenever presets are listed or loaded (``cellkit recipes``,
    ``cellkit train --recipe NAME``, ``cellkit.train.load_preset``), so keep it cheap: name
    the files, do not read them. Ship the files inside the plugin's wheel (package data)
    and locate them with ``importlib.resources``, so an installed plugin has them. A
    backbone can name one of them as its default (``BackboneSpec.recipe``): ``cellkit train
    --backbone NAME`` without ``--recipe`` then runs it.

    Returns:
        A mapping of preset name to the recipe file (``.toml`` or ``.json``; a path or an
        ``importlib.resources`` traversable), possibly empty. A name already taken by
        cellkit's own presets or by another plugin is an error naming both.

    Example:
        >>> from cellkit.plugins import hookimpl
        >>> @hookimpl
        ... def cellkit_register_recipes():
        ...     from importlib import resources
        ...     return {"tiny-transfer": resources.files("cellkit_tiny") / "recipes" / "tiny-transfer.toml"}
    """
    raise NotImplementedError  # pragma: no cover - a specification, never called
