"""cellkit's plugin system, built on pluggy as pytest, tox and datasette use it.

* :mod:`cellkit.plugins.hookspecs`: the documented hook specifications (the whole contract);
* :mod:`cellkit.plugins.manager`: the lazily created, cached plugin manager that loads the
  ``cellkit`` entry points one by one.

This package knows nothing of what the hooks are used for: the zoo (:mod:`cellkit.zoo`)
asks the manager for backbones and registers its own built-in backbones as a plugin.

Example:
    >>> from cellkit.plugins import hookimpl
    >>> @hookimpl
    ... def cellkit_register_backbones():
    ...     return []
"""

from cellkit.plugins.hookspecs import PROJECT_NAME, hookimpl, hookspec
from cellkit.plugins.manager import (
    DISABLE_AUTOLOAD_ENV,
    ENTRY_POINT_GROUP,
    CellkitPluginManager,
    PluginError,
    PluginInfo,
    PluginWarning,
    add_builtin_plugin,
    autoload_enabled,
    create_plugin_manager,
    get_plugin_manager,
    reset_plugin_manager,
)

__all__ = [
    "DISABLE_AUTOLOAD_ENV",
    "ENTRY_POINT_GROUP",
    "PROJECT_NAME",
    "CellkitPluginManager",
    "PluginError",
    "PluginInfo",
    "PluginWarning",
    "add_builtin_plugin",
    "autoload_enabled",
    "create_plugin_manager",
    "get_plugin_manager",
    "hookimpl",
    "hookspec",
    "reset_plugin_manager",
]
