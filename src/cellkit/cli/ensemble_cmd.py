"""``cellkit ensemble RUN_OR_MODEL... --out ENSEMBLE.keras [--method ...] [--weights ...] [--tta]``.

Combines saved models (``.keras`` files or run folders) into one Keras model with
:func:`cellkit.inference.ensemble.build_ensemble` -- the report's submission was an ensemble of three
networks -- and saves it as a single ``.keras`` file, which ``cellkit evaluate`` and
``cellkit export`` accept like any model.

Example:
    $ cellkit ensemble runs/convnext_small runs/effv2s runs/effv2b3 --out ensemble.keras --tta
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cellkit.cli import EXIT_OK, add_quiet, check_output_files
from cellkit.errors import DataError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ensemble",
        help="combine saved models or runs into one ensemble .keras file",
        description="Build one Keras model that runs every member and combines their class probabilities.",
    )
    p.add_argument("members", nargs="+", metavar="RUN_OR_MODEL", help=".keras model files or cellkit run folders")
    p.add_argument("--out", type=Path, required=True, metavar="ENSEMBLE.keras", help="the ensemble file to write")
    p.add_argument(
        "--method", default="mean", metavar="METHOD",
        help="how probabilities are combined: mean (default), weighted, geometric or vote",
    )
    p.add_argument("--weights", type=float, nargs="+", metavar="W", help="one weight per member")
    p.add_argument(
        "--tta", nargs="?", const="flips", default=None, metavar="VIEWS",
        help="test-time augmentation: average each member over flips (default), rot90 or d4 views",
    )
    add_quiet(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cellkit.inference.ensemble import build_ensemble
    from cellkit.inference.saving import load_model, resolve_model_path, save_model

    if args.out.suffix.lower() != ".keras":
        raise DataError("the ensemble file must end in .keras", path=args.out)
    check_output_files([(args.out, "--out")], args.members)
    paths = [resolve_model_path(m) for m in args.members]
    if args.weights is not None and len(args.weights) != len(paths):
        raise DataError(f"--weights needs one value per member ({len(paths)}). Received: {len(args.weights)} weights")
    models = [load_model(p) for p in paths]
    try:
        ensemble = build_ensemble(models, method=args.method, weights=args.weights, tta=args.tta or False)
    except ValueError as exc:
        raise DataError(f"cannot combine these models: {exc}") from exc
    save_model(ensemble, args.out)
    views = f", tta={args.tta}" if args.tta else ""
    print(f"ensemble of {len(models)} models ({args.method}{views}) written to {args.out}")
    return EXIT_OK
