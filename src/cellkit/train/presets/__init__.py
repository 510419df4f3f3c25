"""Named recipes shipped with cellkit (``cellkit train --recipe NAME``), one TOML file each.

* ``report-baseline``: the report's baseline CNN from scratch (its Table 1).
* ``report-transfer``: the report's two-phase transfer learning + fine-tuning with Lion
  (its Table 2), on ConvNeXtTiny by default (pass ``--backbone`` for another network).
* ``compact``: the compact ResNet from scratch, the CPU-friendly recipe.
* ``robust``: the compact recipe with strong augmentation, CutMix on half the images,
  label smoothing and a longer schedule, for models that survive acquisition shift.
* ``robust-severe``: ``robust`` with the ``severe`` augmentation policy (a microscope's
  worst day: far darker exposure, larger hue turns, stronger blur and sensor noise, dark
  blots), the answer to the third-party yardstick of ``docs/results/robustness_external.md``.

A preset is a file ``<name>.toml`` in this folder, read by :func:`cellkit.train.load_recipe`;
adding one is adding a file. Plugins add theirs with the ``cellkit_register_recipes`` hook
(:mod:`cellkit.plugins.hookspecs`): :func:`list_presets` and :func:`load_preset` see them
beside these, and :func:`preset_catalog` says where each comes from. ``ROBUST_PRESET`` is a dict of what ``robust`` sets beyond
``compact``: ``augmentation``, ``mix``, ``mix_alpha``, ``mix_probability``,
``label_smoothing`` and, per phase, :data:`ROBUST_PHASE_KEYS` (``epochs``,
``early_stopping_patience``); it is read from ``robust.toml`` on each use.

Example:
    >>> [name for name in list_presets() if preset_catalog()[name].origin == "cellkit"]
    ['compact', 'report-baseline', 'report-transfer', 'robust', 'robust-severe']
    >>> load_preset("report-transfer").phases[0].optimizer
    'lion'
    >>> from cellkit.train.presets import ROBUST_PRESET
    >>> ROBUST_PRESET["augmentation"], ROBUST_PRESET["epochs"]
    ('strong', 32)
"""

from __future__ import annotations

import difflib
import os
import re
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from cellkit.train.recipe import Recipe, RecipeError
from cellkit.train.recipe_io import load_recipe

__all__ = [
    "ROBUST_PHASE_KEYS", "ROBUST_PRESET", "PresetInfo", "list_presets", "load_preset", "preset_catalog", "resolve_recipe",
]

#: The keys of :data:`ROBUST_PRESET` that set the training phases, not the recipe itself.
ROBUST_PHASE_KEYS: tuple[str, ...] = ("epochs", "early_stopping_patience")
#: The recipe keys of :data:`ROBUST_PRESET`.
_ROBUST_RECIPE_KEYS: tuple[str, ...] = ("augmentation", "mix", "mix_alpha", "mix_probability", "label_smoothing")


#: A preset name: lowercase letters, digits, ``-``, ``_`` and ``.``, starting with a letter or digit.
_PRESET_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


@dataclass(frozen=True)
class PresetInfo:
    """Where a preset comes from: its ``name``, its recipe ``file``, and ``origin``
    (``"cellkit"`` or the label of the plugin that registered it, with its distribution)."""

    name: str
    file: Any  # a Path, or an importlib.resources traversable of an installed plugin
    origin: str

    def load(self) -> Recipe:
        """The preset's :class:`~cellkit.train.Recipe`; a missing file is named with its origin."""
        if not self.file.is_file():
            raise RecipeError(f"recipe preset {self.name!r} of {self.origin} names a file that is not there: "
                              f"{self.file} (reinstall the plugin). Received: recipe={self.name!r}")
        with resources.as_file(self.file) as path:
            return load_recipe(path)


def _folder() -> Path:
    return Path(str(resources.files("cellkit.train.presets")))


def _plugin_presets(builtin: dict[str, PresetInfo]) -> dict[str, PresetInfo]:
    """The presets that plugins register (``cellkit_register_recipes``), checked like backbones."""
    from cellkit.plugins import PluginError, PluginWarning
    from cellkit.zoo.registry import plugin_manager

    pm = plugin_manager()
    found: dict[str, PresetInfo] = {}
    for impl in pm.hook.cellkit_register_recipes.get_hookimpls():
        label = pm.info(impl.plugin_name).label()
        try:
            returned = dict(impl.function() or {})
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the presets
            warnings.warn(f"cellkit plugin {label} failed in cellkit_register_recipes: {type(exc).__name__}: "
                          f"{exc}. Its recipes are skipped.", PluginWarning, stacklevel=3)
            continue
        bad = [name for name, file in returned.items() if not isinstance(name, str) or not _PRESET_NAME.match(name)
               or not (isinstance(file, (str, os.PathLike)) or hasattr(file, "read_bytes"))]
        if bad:
            warnings.warn(f"cellkit plugin {label} returned {bad[0]!r} from cellkit_register_recipes; expected "
                          "preset names (lowercase letters, digits, '-', '_', '.') mapped to recipe files. "
                          "Its recipes are skipped.", PluginWarning, stacklevel=3)
            continue
        for name, file in returned.items():
            first = builtin.get(name) or found.get(name)
            if first is not None:
                raise PluginError(f"recipe preset {name!r} is registered twice: by {first.origin} and by {label}. "
                                  "Uninstall one of them (or rename the preset).")
            found[name] = PresetInfo(name, Path(file) if isinstance(file, (str, os.PathLike)) else file, label)
    return found


def preset_catalog() -> dict[str, PresetInfo]:
    """Every preset by name (cellkit's, then the plugins'), with its file and origin.

    Example:
        >>> info = preset_catalog()["robust"]
        >>> info.origin, info.file.name
        ('cellkit', 'robust.toml')
    """
    builtin = {p.stem: PresetInfo(p.stem, p, "cellkit") for p in sorted(_folder().glob("*.toml"))}
    return {**builtin, **_plugin_presets(builtin)}


def list_presets() -> list[str]:
    """Names of the recipes shipped with cellkit and registered by plugins, sorted."""
    return sorted(preset_catalog())


def load_preset(name: str) -> Recipe:
    """The :class:`~cellkit.train.Recipe` of preset ``name``; unknown names list the presets."""
    catalog = preset_catalog()
    if name not in catalog:
        names = sorted(catalog)
        close = difflib.get_close_matches(str(name), names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise RecipeError(
            f"unknown recipe preset {name!r}{hint}; expected a preset name ({', '.join(names)}) "
            f"or a .toml/.json recipe file. Received: recipe={name!r}"
        )
    return catalog[name].load()


def resolve_recipe(value: str | os.PathLike[str]) -> Recipe:
    """A recipe file (``.toml``/``.json``) or a preset name, as ``--recipe`` accepts."""
    text = os.fspath(value)
    if text.lower().endswith((".toml", ".json")) or os.sep in text or Path(text).exists():
        return load_recipe(text)
    return load_preset(text)


def _robust_settings() -> dict[str, Any]:
    """The settings of ``robust`` on top of ``compact`` (:data:`ROBUST_PRESET`), read from ``robust.toml``.

    The recipe keys ``augmentation``, ``mix``, ``mix_alpha``, ``mix_probability`` and
    ``label_smoothing``, and the settings of its (one) phase in :data:`ROBUST_PHASE_KEYS`.
    """
    recipe = load_preset("robust")
    phase = recipe.phases[0]
    return {**{k: getattr(recipe, k) for k in _ROBUST_RECIPE_KEYS}, **{k: getattr(phase, k) for k in ROBUST_PHASE_KEYS}}


def __getattr__(name: str) -> Any:
    # ROBUST_PRESET: a fresh dict read from robust.toml on each use, so it never disagrees with the file
    if name == "ROBUST_PRESET":
        return _robust_settings()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
