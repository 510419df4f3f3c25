"""``cellkit adapt MODEL TARGET_IMAGES --out ADAPTED.keras [--batch-size N] [--max-images N]``.

Test-time adaptation to a new microscope (:mod:`cellkit.adapt`): the batch-norm statistics
of MODEL (a ``.keras`` model, TTA model or ensemble, or a run folder) are re-estimated on
the unlabelled TARGET_IMAGES (anything ``cellkit.load`` reads; labels are ignored) and the
adapted model is saved, atomically, to a new ``.keras`` file. No weight is trained; the
inputs are not modified.

Example:
    $ cellkit adapt runs/baseline new_microscope/ --out baseline-adapted.keras
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cellkit.cli import EXIT_OK, add_data_arguments, add_quiet, check_output_files, load_dataset
from cellkit.errors import DataError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "adapt",
        help="adapt a model's batch-norm statistics to unlabelled images of a new microscope",
        description="Test-time adaptation: re-estimate every batch-norm layer's statistics (frozen ones "
        "included, dropout off) on unlabelled target images and save the adapted model. Labels are not used.",
    )
    p.add_argument("model", metavar="MODEL", help=".keras model/ensemble file or cellkit run folder")
    add_data_arguments(p)
    p.add_argument("--out", type=Path, required=True, metavar="ADAPTED.keras", help="the adapted model to write")
    p.add_argument("--batch-size", type=int, default=64, metavar="N", help="images per batch (64)")
    p.add_argument("--max-images", type=int, metavar="N", help="use at most N target images (a seeded random choice)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the shuffling and choice of images (0)")
    add_quiet(p)
    p.set_defaults(func=run)


def _check_args(args: argparse.Namespace) -> None:
    if args.out.suffix.lower() != ".keras":
        raise DataError("--out: the adapted model file must end in .keras", path=args.out)
    if args.batch_size < 1:
        raise DataError(f"--batch-size must be >= 1. Received: batch_size={args.batch_size}")
    if args.max_images is not None and args.max_images < 1:
        raise DataError(f"--max-images must be >= 1. Received: max_images={args.max_images}")
    if args.seed < 0:
        raise DataError(f"--seed must be >= 0. Received: seed={args.seed}")


def run(args: argparse.Namespace) -> int:
    from cellkit.inference.saving import resolve_model_path

    _check_args(args)
    model_path = resolve_model_path(args.model)
    check_output_files([(args.out, "--out")], [args.model, model_path, args.path])
    dataset = load_dataset(args)
    from cellkit.adapt import adapt_model
    from cellkit.train import save_model

    model, info = adapt_model(
        model_path, dataset.images, batch_size=args.batch_size, max_images=args.max_images, seed=args.seed
    )
    save_model(model, args.out)
    print(
        f"adapted {info['batch_norm_layers']} batch-norm layers of {model_path} on {info['images']} images of "
        f"{dataset.source} ({info['batches']} batches of {info['batch_size']}) -> {args.out}"
    )
    return EXIT_OK
