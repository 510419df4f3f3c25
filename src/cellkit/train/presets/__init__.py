"""Named recipes shipped with cellkit (``cellkit train --recipe NAME``), one TOML file each.

* ``report-baseline``: the report's baseline CNN from scratch (its Table 1).
* ``report-transfer``: the report's two-phase transfer learning + fine-tuning with Lion
  (its Table 2), on ConvNeXtTiny by default (pass ``--backbone`` for another network).
* ``compact``: the compact ResNet from scratch, the CPU-friendly recipe.
* ``robust``: the compact recipe with strong augmentation, CutMix on half the images,
  label smoothing and a longer schedule, for models that survive acquisition shift.

A preset is a file ``<name>.toml`` in this folder, read by :func:`cellkit.train.load_recipe`;
adding one is adding a file. ``ROBUST_PRESET`` is a dict of what ``robust`` sets beyond
``compact``: ``augmentation``, ``mix``, ``mix_alpha``, ``mix_probability``,
``label_smoothing`` and, per phase, :data:`ROBUST_PHASE_KEYS` (``epochs``,
``early_stopping_patience``); it is read from ``robust.toml`` on each use.

Example:
    >>> list_presets()
    ['compact', 'report-baseline', 'report-transfer', 'robust']
    >>> load_preset("report-transfer").phases[0].optimizer
    'lion'
    >>> from cellkit.train.presets import ROBUST_PRESET
    >>> ROBUST_PRESET["augmentation"], ROBUST_PRESET["epochs"]
    ('strong', 32)
"""

from __future__ import annotations

import difflib
import os
from importlib import resources
from pathlib import Path
from typing import Any

from cellkit.train.recipe import Recipe, RecipeError
from cellkit.train.recipe_io import load_recipe

__all__ = ["ROBUST_PHASE_KEYS", "ROBUST_PRESET", "list_presets", "load_preset", "resolve_recipe"]

#: The keys of :data:`ROBUST_PRESET` that set the training phases, not the recipe itself.
ROBUST_PHASE_KEYS: tuple[str, ...] = ("epochs", "early_stopping_patience")
#: The recipe keys of :data:`ROBUST_PRESET`.
_ROBUST_RECIPE_KEYS: tuple[str, ...] = ("augmentation", "mix", "mix_alpha", "mix_probability", "label_smoothing")


def _folder() -> Path:
    return Path(str(resources.files("cellkit.train.presets")))


def list_presets() -> list[str]:
    """Names of the recipes shipped with cellkit."""
    return sorted(p.stem for p in _folder().glob("*.toml"))


def load_preset(name: str) -> Recipe:
    """The :class:`~cellkit.train.Recipe` of preset ``name``; unknown names list the presets."""
    path = _folder() / f"{name}.toml"
    if not path.is_file():
        names = list_presets()
        close = difflib.get_close_matches(str(name), names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise RecipeError(
            f"unknown recipe preset {name!r}{hint}; expected a preset name ({', '.join(names)}) "
            f"or a .toml/.json recipe file. Received: recipe={name!r}"
        )
    return load_recipe(path)


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
