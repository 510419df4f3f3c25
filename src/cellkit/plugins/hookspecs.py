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

from collections.abc import Sequence

import pluggy

__all__ = ["PROJECT_NAME", "hookimpl", "hookspec", "cellkit_register_backbones"]

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
