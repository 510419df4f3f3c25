"""Recipe files: TOML (read with ``tomllib``, written with ``tomli-w``) and JSON.

A recipe file holds :meth:`Recipe.to_dict <cellkit.train.Recipe.to_dict>`: the top-level
keys, a ``[head]`` and a ``[backbone_options]`` table, and one ``[[phases]]`` table per
phase. TOML has no ``None``: a key whose value is ``None`` is left out, which reads back as
its default (every field that may be ``None`` defaults to it). Errors name the file and
the key (:class:`~cellkit.train.RecipeError`); files are written atomically.

Example:
    >>> import tempfile, pathlib
    >>> from cellkit.train import Phase, Recipe
    >>> recipe = Recipe(backbone="compact_resnet", phases=(Phase("scratch", epochs=2),))
    >>> path = save_recipe(recipe, pathlib.Path(tempfile.mkdtemp()) / "r.toml")
    >>> load_recipe(path) == recipe
    True
    >>> print(recipe_to_toml(recipe).splitlines()[1])
    backbone = "compact_resnet"
"""

from __future__ import annotations

import json
import math
import numbers
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomli_w

from cellkit._io import atomic_write_text
from cellkit.train.recipe import Recipe, RecipeError

__all__ = ["load_recipe", "recipe_to_toml", "save_recipe"]

#: The first line of every TOML recipe cellkit writes.
TOML_HEADER = "# cellkit training recipe (cellkit.train.Recipe); None values are omitted (they are the defaults)\n"


def load_recipe(path: str | os.PathLike[str]) -> Recipe:
    """Read a recipe from TOML (``.toml``) or JSON (``.json``); errors name the file and the key.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "r.toml"
        >>> _ = p.write_text('backbone = "compact_resnet"\\n[[phases]]\\nname = "scratch"\\nepochs = 2\\n')
        >>> load_recipe(p).phases[0].epochs
        2
    """
    path = Path(path)
    if not path.is_file():
        raise RecipeError("no such recipe file (expected a .toml or .json file)", path=path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            data = _toml_loads(path.read_text(encoding="utf-8"))
        elif suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
        else:
            raise RecipeError(f"a recipe is a .toml or .json file. Received: suffix={path.suffix!r}", path=path)
    except (ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, RecipeError):
            raise
        raise RecipeError(f"not a valid {suffix[1:].upper()} file: {exc}", path=path) from None
    if not isinstance(data, dict):
        raise RecipeError(f"a recipe must be a table (dict) at the top level. Received: {type(data).__name__}",
                          path=path)
    return Recipe.from_dict(data, path=path)


def save_recipe(recipe: Recipe, path: str | os.PathLike[str]) -> Path:
    """Write ``recipe`` atomically as TOML (``.toml``) or JSON (any other suffix); return the path."""
    dest = Path(path)
    if dest.suffix.lower() == ".toml":
        atomic_write_text(dest, recipe_to_toml(recipe))
    else:
        atomic_write_text(dest, json.dumps(recipe.to_dict(), indent=2) + "\n")
    return dest


def recipe_to_toml(recipe: Recipe) -> str:
    """The recipe as TOML text, after :data:`TOML_HEADER` (``None`` values are left out)."""
    data = _plain(recipe.to_dict())
    if not data.get("phases"):
        data.pop("phases", None)  # an unresolved recipe: no empty `phases = []` line
    return TOML_HEADER + tomli_w.dumps(data)


def _plain(value: Any) -> Any:
    """``value`` with ``None`` left out of tables and numbers as Python ``int``/``float``, for ``tomli_w``."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"TOML recipes hold finite numbers only. Received: {number!r}")
    return number


def _toml_loads(text: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise RecipeError("reading TOML on Python 3.10 needs the 'tomli' package; use a .json recipe") from None
    return tomllib.loads(text)
