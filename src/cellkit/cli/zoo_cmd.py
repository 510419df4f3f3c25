"""``cellkit backbones``, ``cellkit recipes`` and ``cellkit plugins``: what the zoo and the plugin system hold.

Example:
    >>> from cellkit.cli import main
    >>> main(["backbones", "--filter", "network*"])
    name      family      params  input    plugin                     pretrained
    network2  simple_cnn  19.4K   96x96x3  cellkit.zoo.builtin ...    -
    network3  simple_cnn  19.4K   96x96x3  cellkit.zoo.builtin ...    -
    network4  simple_cnn  19.7K   96x96x3  cellkit.zoo.builtin ...    -
    0
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from cellkit.cli import add_quiet

__all__ = ["print_recipes", "register", "run_backbones", "run_plugins", "run_recipes"]


def register(subparsers: Any) -> None:
    """Add the ``backbones``, ``recipes`` and ``plugins`` subcommands."""
    p = _listing(subparsers, "backbones", run_backbones, "list the registered backbones",
                 "List the backbones of the zoo (built-in and from installed cellkit-<name> plugins).")
    p.add_argument("--filter", metavar="PATTERN", help="glob on names, e.g. 'efficientnetv2_*'")
    p.add_argument("--family", help="only this family, e.g. convnext")
    p.add_argument(
        "--count-params",
        action="store_true",
        help="build each listed backbone (weights=None, default input) to count parameters the spec "
        "does not state (slow for large networks)",
    )
    _listing(subparsers, "recipes", run_recipes, "list the recipe presets (cellkit's and the plugins')",
             "List the recipe presets that `cellkit train --recipe NAME` accepts: cellkit's own and those "
             "installed plugins register, with their backbone, time limit and phases.")
    _listing(subparsers, "plugins", run_plugins, "list the installed cellkit plugins",
             "List the registered cellkit plugins and the hooks each implements.")


def _listing(subparsers: Any, name: str, func: Any, help: str, description: str) -> argparse.ArgumentParser:  # noqa: A002
    """A listing subcommand: ``--json`` (a JSON list instead of a table) and ``--quiet``."""
    p = subparsers.add_parser(name, help=help, description=description)
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    add_quiet(p)
    p.set_defaults(func=func)
    return p


def run_backbones(args: argparse.Namespace) -> int:
    from cellkit.zoo import build_backbone, get_backbone, list_backbones, weights_available

    rows = []
    for name in list_backbones(args.filter, family=args.family):
        spec = get_backbone(name)
        params = spec.num_params
        if params is None and args.count_params:
            params = int(build_backbone(name).count_params())
        rows.append(
            {
                "name": spec.name,
                "family": spec.family,
                "params": params,
                "input_shape": list(spec.default_input_shape),
                "min_input_size": spec.min_input_size,
                "preprocessing": spec.preprocessing,
                "plugin": spec.plugin,
                "plugin_version": spec.plugin_version,
                "pretrained": {tag: weights_available(spec, tag) for tag in spec.weights},
                "description": spec.description,
                "recipe": spec.recipe,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no backbone matches")
        return 1
    table = [
        (
            r["name"],
            r["family"],
            _human(r["params"]),
            "x".join(str(d) for d in r["input_shape"]),
            f"{r['plugin']} {r['plugin_version'] or ''}".strip(),
            ", ".join(
                f"{tag} ({'cached' if ok else 'not downloaded'})" for tag, ok in r["pretrained"].items()
            )
            or "-",
        )
        for r in rows
    ]
    _print_table(("name", "family", "params", "input", "plugin", "pretrained"), table)
    return 0


def run_recipes(args: argparse.Namespace) -> int:
    print_recipes(as_json=args.json)
    return 0


def print_recipes(as_json: bool = False) -> None:
    """Print every preset: name, origin, backbone, mode, time limit, phases (or a JSON list)."""
    from cellkit.train.presets import preset_catalog

    rows = []
    for name, info in sorted(preset_catalog().items()):  # one catalog: the plugins' hooks are asked once
        r = info.load().resolved()
        rows.append({
            "name": name, "origin": info.origin, "file": str(info.file), "backbone": r.backbone, "mode": r.mode,
            "time_limit_minutes": r.time_limit,
            "phases": [{"name": p.name, "optimizer": p.optimizer, "learning_rate": p.learning_rate,
                        "epochs": p.epochs} for p in r.phases],
        })
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = [
        (r["name"], r["origin"], r["backbone"], r["mode"],
         "-" if r["time_limit_minutes"] is None else f"{r['time_limit_minutes']:g} min",
         ", ".join(f"{p['name']} ({p['optimizer']} {p['learning_rate']:g}, {p['epochs']} ep)" for p in r["phases"]))
        for r in rows
    ]
    _print_table(("name", "origin", "backbone", "mode", "time limit", "phases"), table)


def run_plugins(args: argparse.Namespace) -> int:
    from cellkit.plugins import DISABLE_AUTOLOAD_ENV, autoload_enabled
    from cellkit.zoo import plugin_manager

    infos = plugin_manager().describe()
    if args.json:
        print(json.dumps([_plugin_dict(info) for info in infos], indent=2))
        return 0
    table = [
        (
            info.name,
            info.distribution or "-",
            info.version or "-",
            "built-in" if info.builtin else "installed" if info.distribution else "registered at run time",
            ", ".join(info.hooks) or "-",
        )
        for info in infos
    ]
    _print_table(("plugin", "distribution", "version", "kind", "hooks"), table)
    if not autoload_enabled():
        print(f"(installed plugins not loaded: {DISABLE_AUTOLOAD_ENV} is set)")
    return 0


def _plugin_dict(info: Any) -> dict[str, Any]:
    return {
        "name": info.name,
        "distribution": info.distribution,
        "version": info.version,
        "builtin": info.builtin,
        "module": info.module,
        "hooks": list(info.hooks),
    }


def _human(n: int | None) -> str:
    if n is None:
        return "?"
    for unit, size in (("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def _print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
