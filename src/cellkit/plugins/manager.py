"""The plugin manager: created lazily, built-in plugins first, then installed ones, then validated.

Order of :func:`get_plugin_manager` on its first call (as tox does it):

1. a :class:`CellkitPluginManager` with the hook specifications of
   :mod:`cellkit.plugins.hookspecs`;
2. the built-in plugins that higher layers announced with :func:`add_builtin_plugin`
   (the zoo announces its built-in backbones this way: this module imports nothing of it);
3. every entry point of the ``cellkit`` group, one by one, unless the environment variable
   ``CELLKIT_DISABLE_PLUGIN_AUTOLOAD`` is set (to anything but ``""``/``0``/``false``/``no``).
   A plugin that fails to import (even with ``sys.exit()``) is skipped with a
   :class:`PluginWarning` naming it and its distribution; the others keep working;
4. validation: a plugin implementing a hook that does not exist (a misspelt name) raises
   :class:`PluginError` naming the plugin, its distribution and the closest hook -- at
   registration, so a plugin registered by hand at run time is checked the same way.

Example:
    >>> from cellkit.plugins import get_plugin_manager
    >>> pm = get_plugin_manager()
    >>> info = pm.describe()[0]  # built-ins first, then installed plugins by name
    >>> info.name, info.builtin, info.hooks
    ('cellkit.zoo.builtin', True, ('cellkit_register_backbones',))
"""

from __future__ import annotations

import difflib
import importlib.metadata
import os
import threading
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import pluggy

from cellkit.errors import CellkitError
from cellkit.plugins import hookspecs
from cellkit.plugins.hookspecs import PROJECT_NAME

__all__ = [
    "DISABLE_AUTOLOAD_ENV",
    "ENTRY_POINT_GROUP",
    "CellkitPluginManager",
    "PluginError",
    "PluginInfo",
    "PluginWarning",
    "add_builtin_plugin",
    "autoload_enabled",
    "create_plugin_manager",
    "get_plugin_manager",
    "reset_plugin_manager",
]

#: Entry-point group scanned for plugins; distributions are named ``cellkit-<name>``.
ENTRY_POINT_GROUP = PROJECT_NAME

#: Set this environment variable to ``1`` to load no installed plugin (built-ins still load).
DISABLE_AUTOLOAD_ENV = "CELLKIT_DISABLE_PLUGIN_AUTOLOAD"

_FALSY = {"", "0", "false", "no", "off"}


class PluginError(CellkitError):
    """A plugin breaks the contract: unknown hook, bad hook signature, duplicate names."""


class PluginWarning(UserWarning):
    """A plugin could not be loaded or failed in a hook; cellkit goes on without it."""


@dataclass(frozen=True)
class PluginInfo:
    """What ``cellkit plugins`` shows about one registered plugin.

    ``distribution``/``version`` name the installed package that provides it (``cellkit``
    itself for built-ins, ``None`` for a plugin registered by hand at run time).
    """

    name: str
    distribution: str | None
    version: str | None
    hooks: tuple[str, ...]
    builtin: bool
    module: str

    def label(self) -> str:
        """``'name' (distribution version)``, as used in error and warning messages."""
        return _label(self.name, self.distribution, self.version)


class CellkitPluginManager(pluggy.PluginManager):
    """A :class:`pluggy.PluginManager` that remembers where each plugin came from."""

    def __init__(self) -> None:
        super().__init__(PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        self._origins: dict[str, tuple[str | None, str | None, bool]] = {}

    def register_plugin(
        self,
        plugin: object,
        name: str,
        *,
        distribution: str | None = None,
        version: str | None = None,
        builtin: bool = False,
    ) -> None:
        """Register ``plugin`` under ``name``, recording the distribution that provides it.

        Built-in and installed plugins both go through here. A hook implementation with
        arguments the specification does not have raises :class:`PluginError`.
        """
        existing = self.get_plugin(name)
        if existing is not None:
            if existing is plugin:
                return
            raise PluginError(
                f"two cellkit plugins are named {name!r}: {self._label(name)} and "
                f"{_label(name, distribution, version)}; uninstall one of them"
            )
        self._origins[name] = (distribution, version, builtin)  # known to the messages of register()
        try:
            self.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            self._origins.pop(name, None)
            raise PluginError(
                f"cellkit plugin {_label(name, distribution, version)} is invalid: {exc}"
            ) from exc
        except PluginError:
            self._origins.pop(name, None)
            raise

    def register(self, plugin: object, name: str | None = None) -> str | None:
        """Register ``plugin`` and validate it at once: a hook that does not exist is an error.

        Plugins registered at run time (``plugin_manager().register(obj)``) are checked as
        strictly as installed ones: a misspelt hook raises :class:`PluginError` naming the
        closest hook, and the plugin is not kept.
        """
        plugin_name = super().register(plugin, name=name)
        if plugin_name is None:  # blocked
            return None
        unknown = self._unknown_hooks(plugin)
        if unknown:
            self.unregister(plugin)
            cause = pluggy.PluginValidationError(plugin, f"unknown hook(s) {unknown}")
            raise self._unknown_hook_error(plugin_name, unknown) from cause
        return plugin_name

    def _unknown_hooks(self, plugin: object) -> list[str]:
        """Hooks ``plugin`` implements that have no specification (optional hooks excepted)."""
        unknown = []
        for caller in self.get_hookcallers(plugin) or []:
            if caller.has_spec():
                continue
            if any(impl.plugin is plugin and not impl.optionalhook for impl in caller.get_hookimpls()):
                unknown.append(caller.name)
        return unknown

    def _unknown_hook_error(self, name: str, unknown: list[str]) -> PluginError:
        """The error naming the plugin, its distribution, each unknown hook and the closest known one."""
        known = sorted(n for n in vars(self.hook) if not n.startswith("_") and getattr(self.hook, n).has_spec())
        hints = []
        for hook_name in unknown:
            close = difflib.get_close_matches(hook_name, known, n=1)
            hints.append(f"{hook_name!r} (did you mean {close[0]!r}?)" if close else repr(hook_name))
        return PluginError(
            f"cellkit plugin {self._label(name)} implements unknown hook(s) {', '.join(hints)}. "
            f"Known hooks: {', '.join(known)}. Fix the plugin, uninstall it, or set "
            f"{DISABLE_AUTOLOAD_ENV}=1 to load no installed plugin."
        )

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> list[str]:
        """Import and register every entry point of ``group``, one at a time.

        A plugin that fails to import (any exception) is skipped with a
        :class:`PluginWarning` naming it; returns the names of the plugins registered.
        """
        loaded: list[str] = []
        for ep in sorted(importlib.metadata.entry_points(group=group), key=lambda e: e.name):
            dist = getattr(ep, "dist", None)
            dist_name = dist.name if dist is not None else None
            dist_version = dist.version if dist is not None else None
            if self.is_blocked(ep.name):
                continue
            if self.get_plugin(ep.name) is not None and self._origins.get(ep.name, ())[:2] == (
                dist_name,
                dist_version,
            ):
                continue  # already loaded from this very distribution
            try:
                plugin = ep.load()
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # noqa: BLE001 - any import failure, sys.exit() included
                warnings.warn(
                    f"cellkit could not load plugin {_label(ep.name, dist_name, dist_version)} "
                    f"from entry point {ep.value!r}: {type(exc).__name__}: {exc}. "
                    "It is skipped; the other plugins keep working.",
                    PluginWarning,
                    stacklevel=3,
                )
                continue
            self.register_plugin(plugin, ep.name, distribution=dist_name, version=dist_version)
            loaded.append(ep.name)
        return loaded

    def check_pending(self) -> None:
        """Like pluggy's, but the error names the plugin, its distribution and the closest hook."""
        try:
            super().check_pending()
        except pluggy.PluginValidationError as exc:
            name = self.get_name(exc.plugin) or repr(exc.plugin)
            unknown = [
                caller.name for caller in (self.get_hookcallers(exc.plugin) or []) if not caller.has_spec()
            ]
            raise self._unknown_hook_error(name, unknown) from exc

    def describe(self) -> list[PluginInfo]:
        """One :class:`PluginInfo` per registered plugin, built-ins first, then by name."""
        infos = []
        for name, plugin in self.list_name_plugin():
            if name is None or plugin is None:
                continue
            distribution, version, builtin = self._origins.get(name, (None, None, False))
            hooks = tuple(sorted(caller.name for caller in self.get_hookcallers(plugin) or []))
            module = getattr(plugin, "__name__", None) or type(plugin).__module__
            infos.append(PluginInfo(name, distribution, version, hooks, builtin, module))
        return sorted(infos, key=lambda info: (not info.builtin, info.name))

    def info(self, name: str) -> PluginInfo:
        """The :class:`PluginInfo` of the plugin registered as ``name``."""
        for info in self.describe():
            if info.name == name:
                return info
        raise KeyError(f"no cellkit plugin named {name!r}")

    def _label(self, name: str) -> str:
        distribution, version, _ = self._origins.get(name, (None, None, False))
        return _label(name, distribution, version)


def _label(name: str, distribution: str | None, version: str | None) -> str:
    return repr(name) if distribution is None else f"{name!r} ({distribution} {version})"


def autoload_enabled() -> bool:
    """False when ``CELLKIT_DISABLE_PLUGIN_AUTOLOAD`` is set to a true-ish value."""
    return os.environ.get(DISABLE_AUTOLOAD_ENV, "").strip().lower() in _FALSY


def create_plugin_manager(
    builtins: Iterable[tuple[str, object, str | None]] = (), *, autoload: bool | None = None
) -> CellkitPluginManager:
    """A new, validated plugin manager (uncached: :func:`get_plugin_manager` caches one).

    Args:
        builtins: ``(name, plugin, version)`` triples registered first, as distribution ``cellkit``.
        autoload: load the ``cellkit`` entry points; ``None`` reads ``CELLKIT_DISABLE_PLUGIN_AUTOLOAD``.

    Example:
        >>> pm = create_plugin_manager(autoload=False)
        >>> pm.describe()
        []
    """
    pm = CellkitPluginManager()
    for name, plugin, version in builtins:
        pm.register_plugin(plugin, name, distribution=PROJECT_NAME, version=version, builtin=True)
    if autoload_enabled() if autoload is None else autoload:
        pm.load_entry_points(ENTRY_POINT_GROUP)
    pm.check_pending()
    return pm


_lock = threading.RLock()
_manager: CellkitPluginManager | None = None
_builtins: dict[str, tuple[object, str | None]] = {}


def add_builtin_plugin(name: str, plugin: object, version: str | None = None) -> None:
    """Announce a built-in plugin: registered first, exactly like an installed one.

    Idempotent. Called by higher layers (the zoo) before they query the manager; if the
    shared manager already exists the plugin is registered into it at once (and validated).
    """
    with _lock:
        if _builtins.get(name, (None,))[0] is plugin:
            if _manager is None or _manager.get_plugin(name) is plugin:
                return
        _builtins[name] = (plugin, version)
        if _manager is not None and _manager.get_plugin(name) is None:
            _manager.register_plugin(plugin, name, distribution=PROJECT_NAME, version=version, builtin=True)
            _manager.check_pending()


def get_plugin_manager() -> CellkitPluginManager:
    """The shared plugin manager, created (and entry points loaded) on first use.

    Example:
        >>> get_plugin_manager() is get_plugin_manager()
        True
    """
    global _manager
    with _lock:
        if _manager is None:
            builtins = [(name, plugin, version) for name, (plugin, version) in _builtins.items()]
            _manager = create_plugin_manager(builtins)
        return _manager


def reset_plugin_manager() -> None:
    """Forget the shared manager: the next :func:`get_plugin_manager` rescans entry points.

    For tests and for sessions that installed a plugin after cellkit first looked.
    """
    global _manager
    with _lock:
        _manager = None
