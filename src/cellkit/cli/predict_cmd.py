"""``cellkit predict MODEL PATH --out predictions.csv``: classify new images, flag those not to trust.

MODEL is a run folder (its ``model.keras``), a ``.keras`` model or an ensemble ``.keras``,
loaded with ``safe_mode=True``. PATH is a flat folder of new images (no labels needed), a
class-folder tree or an ``.npz``. The CSV has one row per image: its id, the predicted class,
the confidence, one probability per class and, with at least 20 images, the quality flags
(superposed, colour-filtered), ``low_confidence`` and ``trust``
(:mod:`cellkit.inference.predictor`). It is written atomically, never over an input.

Example:
    $ cellkit predict runs/robust new_cells/ --out predictions.csv --tta d4
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from cellkit.cli import EXIT_OK, add_data_arguments, add_quiet, add_tta, check_output_files, load_dataset
from cellkit.errors import DataError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="classify new images (a flat folder is fine) and write a CSV, with the predictions not to trust",
        description="Predict the class of every image with a saved model or ensemble (.keras file or run "
        "folder) and write one CSV row per image: predicted class, confidence, class probabilities and, with "
        "at least 20 images, the quality flags (superposition, colour filter), low_confidence and trust.",
    )
    p.add_argument("model", metavar="MODEL", help=".keras model/ensemble file or cellkit run folder")
    add_data_arguments(p)
    p.add_argument("--out", type=Path, required=True, metavar="PREDICTIONS.csv", help="the CSV file to write")
    p.add_argument("--batch-size", type=int, default=256, metavar="N", help="images per prediction batch (256)")
    add_tta(p, "average the model over these views")
    p.add_argument("--no-quality", action="store_true",
                   help="leave out the quality flags and the trust column (no detector is fitted)")
    p.add_argument("--min-confidence", type=float, default=0.5, metavar="P",
                   help="predictions below this probability are low_confidence, not trusted (0.5)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the quality detectors (0)")
    add_quiet(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cellkit.inference.saving import resolve_model_path

    model_path = resolve_model_path(args.model)
    if args.batch_size < 1:
        raise DataError(f"--batch-size must be >= 1. Received: batch_size={args.batch_size}")
    if not 0 <= args.min_confidence <= 1:
        raise DataError(f"--min-confidence must be a probability in [0, 1]. Received: {args.min_confidence}")
    check_output_files([(args.out, "--out")], [args.model, model_path, args.path])
    if args.out.suffix.lower() != ".csv":
        raise DataError(f"--out: expected an output file ending in .csv. Received: suffix={args.out.suffix!r}",
                        path=args.out)
    dataset = load_dataset(args)
    from cellkit.inference.predictor import PredictionWarning, predict_dataset

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PredictionWarning)
        preds = predict_dataset(
            model_path, dataset, tta=None if args.tta == "none" else args.tta, batch_size=args.batch_size,
            quality=not args.no_quality, quiet=args.quiet, seed=args.seed, min_confidence=args.min_confidence,
        )
    for w in caught:
        if issubclass(w.category, PredictionWarning):
            print(f"warning: {w.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    preds.to_csv(args.out)
    print(_summary(preds, model_path, args))
    return EXIT_OK


def _summary(preds, model_path: Path, args: argparse.Namespace) -> str:  # noqa: ANN001 - Predictions
    s = preds.summary()
    n = s["n_images"]
    tta = f", tta={args.tta}" if args.tta not in (None, "none") else ""
    lines = [f"{n} images of {preds.source} predicted by {model_path}{tta} -> {args.out}"]
    width = max([len(c) for c in s["predicted"]] + [9])
    for name, count in s["predicted"].items():
        lines.append(f"  {name:<{width}} {count:>7}  {100 * count / max(n, 1):5.1f}%")
    low = f"{s['low_confidence']} below confidence {args.min_confidence:g}"
    if preds.quality_checked:
        lines.append(f"not to trust: {s['not_trusted']} of {n} ({s['superposition']} superposed, "
                     f"{s['color_filter']} colour-filtered, {low}; column trust)")
    else:
        why = "--no-quality" if args.no_quality else "see the warning"
        lines.append(f"low confidence: {low} (quality flags not checked: {why})")
    if "accuracy" in s:
        lines.append(f"accuracy {s['accuracy']:.4f} (the images are labelled; column correct)")
    return "\n".join(lines)
