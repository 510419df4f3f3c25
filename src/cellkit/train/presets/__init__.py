"""Named recipes shipped with cellkit (``cellkit train --recipe NAME``).

* ``report-baseline``: the report's baseline CNN from scratch (its Table 1).
* ``report-transfer``: the report's two-phase transfer learning + fine-tuning with Lion
  (its Table 2), on ConvNeXtTiny by default (pass ``--backbone`` for another network).
* ``compact``: the compact ResNet from scratch, the CPU-friendly recipe.
* ``robust``: the compact ResNet with :data:`cellkit.augment.ROBUST_PRESET` (strong
  augmentation, CutMix on half the images, label smoothing, a longer schedule), built from
  that dict so the two never disagree.

Example:
    >>> list_presets()
    ['compact', 'report-baseline', 'report-transfer', 'robust']
    >>> load_preset("report-transfer").phases[0].optimizer
    'lion'
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from cellkit.train.recipe import Recipe, RecipeError, load_recipe

__all__ = ["list_presets", "load_preset", "resolve_recipe"]


def _folder() -> Path:
    return Path(str(resources.files("cellkit.train.presets")))


def _robust() -> Recipe:
    from cellkit.augment import ROBUST_PRESET as p

    base = load_recipe(_folder() / "compact.toml")
    phase = dataclasses.replace(
        base.phases[0], epochs=int(p["epochs"]), early_stopping_patience=int(p["early_stopping_patience"])
    )
    return base.replace(
        augmentation=p["augmentation"], mix=p["mix"], mix_alpha=float(p["mix_alpha"]),
        mix_probability=float(p["mix_probability"]), label_smoothing=float(p["label_smoothing"]), phases=(phase,),
    )


#: Presets built in code (from another module's settings) rather than read from a TOML file.
_BUILT: dict[str, Callable[[], Recipe]] = {"robust": _robust}


def list_presets() -> list[str]:
    """Names of the recipes shipped with cellkit."""
    return sorted({p.stem for p in _folder().glob("*.toml")} | set(_BUILT))


def load_preset(name: str) -> Recipe:
    """The :class:`~cellkit.train.Recipe` of preset ``name``; unknown names list the presets."""
    if name in _BUILT:
        return _BUILT[name]()
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
