"""``cellkit export MODEL --format submission --out DIR``: the evaluation server's ``model.py`` folder.

MODEL is a ``.keras`` file (a model or an ensemble) or a run folder. The folder holds
``model.py`` (``Model().predict(X)`` -> class ids), a TensorFlow SavedModel that loads
without cellkit, the ``.keras`` file as a fallback, and ``export.json``
(see :mod:`cellkit.inference.export`).

Example:
    $ cellkit export runs/compact --format submission --out submission
    $ cd submission && zip -r ../submission.zip .
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cellkit.cli import EXIT_OK, add_quiet, add_tta


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a model or run as the course's submission folder (model.py + weights)",
        description="Write a self-contained folder whose model.py defines class Model with predict(X) -> class ids.",
    )
    p.add_argument("model", metavar="MODEL", help=".keras model/ensemble file or cellkit run folder")
    p.add_argument("--format", default="submission", choices=("submission",), help="export format (submission)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder to create")
    p.add_argument(
        "--overwrite", action="store_true",
        help="replace an earlier export in DIR (a folder holding other files is refused; the old export is removed "
        "only once the new one is complete)",
    )
    p.add_argument("--keras-only", action="store_true", help="skip the TensorFlow SavedModel (then cellkit is needed)")
    add_tta(p, "wrap the model in these views first")
    p.add_argument(
        "--adapt-to-batch", type=_prior, nargs="?", const=16.0, default=None, metavar="PRIOR",
        help="model.py adapts to each batch it predicts: batch norms blend the batch's statistics with the "
        "training ones, weighted as PRIOR images (default 16); for a server whose images come from another "
        "microscope and whose batches mix the classes (class-sorted batches cost accuracy even on clean images: "
        "docs/training.md)",
    )
    add_quiet(p)
    p.set_defaults(func=run)


def _prior(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0 (the weight of the training statistics). "
                                         f"Received: {text!r}")
    return value


def run(args: argparse.Namespace) -> int:
    from cellkit.inference.export import export_submission

    info = export_submission(args.model, args.out, overwrite=args.overwrite, saved_model=not args.keras_only,
                              tta=args.tta, adapt_prior=args.adapt_to_batch)
    print(f"exported {info['model_name']} to {args.out}/ (loader: {info['loader']}; {info['note']})")
    return EXIT_OK
