"""``cellkit explain MODEL PATH --out DIR``: where the model looks, as saliency montages.

MODEL is a run folder (its ``model.keras``), a ``.keras`` model or an ensemble ``.keras``,
loaded with ``safe_mode=True``; PATH a class-folder tree, a flat folder of images or an
``.npz``, loaded as ``cellkit predict`` loads it. The folder DIR gets, per method (Grad-CAM,
occlusion sensitivity), a montage of the most confident correct images of each class
(``<method>_per_class.png``; of each predicted class without labels) and, with labels, of the
most confident errors (``<method>_errors.png``), each image beside its heat map, and
``explained.csv``: which image is where (:mod:`cellkit.evaluate.explain`). The folder is built
aside and swapped in whole; ``--overwrite`` replaces only a folder cellkit wrote.

Example:
    $ cellkit explain runs/robust test_cells/ --out explained/ --per-class 8 --errors 16
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cellkit.cli import EXIT_OK, add_data_arguments, add_quiet, load_dataset
from cellkit.errors import DataError

#: Saliency methods (:data:`cellkit.inference.saliency.METHODS`; listed here so that ``--help`` needs no Keras).
METHODS = ("gradcam", "occlusion")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain",
        help="saliency montages (Grad-CAM, occlusion) of the surest images per class and the surest errors",
        description="Show where a saved model or ensemble looks: Grad-CAM and occlusion-sensitivity heat maps "
        "over the most confident correct images of each class and the most confident errors, as PNG montages, "
        "with a CSV of the images shown.",
    )
    p.add_argument("model", metavar="MODEL", help=".keras model/ensemble file or cellkit run folder")
    add_data_arguments(p)
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="the folder to write (new or empty)")
    p.add_argument("--method", default=",".join(METHODS), metavar="METHODS",
                   help=f"comma-separated saliency methods among {', '.join(METHODS)} (default: both)")
    p.add_argument("--per-class", type=int, default=8, metavar="N",
                   help="most confident correct images shown per class (8)")
    p.add_argument("--errors", type=int, default=8, metavar="N",
                   help="most confident errors shown, labelled data only (8)")
    p.add_argument("--batch-size", type=int, default=64, metavar="N", help="images per batch (64)")
    p.add_argument("--overwrite", action="store_true", help="replace DIR when it holds an earlier cellkit output")
    add_quiet(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cellkit._outputs import OutputFolder
    from cellkit.inference.saving import resolve_model_path

    model_path = resolve_model_path(args.model)
    methods = _methods(args.method)
    for flag, value in (("--per-class", args.per_class), ("--errors", args.errors)):
        if value < 0:
            raise DataError(f"{flag} must be >= 0. Received: {value}")
    if args.per_class == 0 and args.errors == 0:
        raise DataError("--per-class and --errors are both 0: nothing to explain (expected at least one > 0)")
    if args.batch_size < 1:
        raise DataError(f"--batch-size must be >= 1. Received: batch_size={args.batch_size}")
    from cellkit.evaluate.explain import EXPLAIN_FILES

    folder = OutputFolder(args.out, inputs=[args.model, model_path, args.path], overwrite=args.overwrite,
                          owned=EXPLAIN_FILES, argument="--out", kind="explanations")
    dataset = load_dataset(args)
    from cellkit.evaluate.explain import explain_dataset

    explained = explain_dataset(model_path, dataset, methods=methods, per_class=args.per_class, errors=args.errors,
                                batch_size=args.batch_size, quiet=args.quiet)
    with folder.build() as work:
        names = [p.name for p in explained.write(work)]
    errors = int((explained.montage == "errors").sum())
    why = "" if explained.labels is not None or args.errors == 0 else " (no labels: no errors montage)"
    print(f"{len(explained)} of {len(dataset)} images of {dataset.source} explained "
          f"({len(explained) - errors} per class, {errors} errors{why}) by {model_path} "
          f"with {', '.join(methods)} -> {args.out}/ ({', '.join(names)})")
    return EXIT_OK


def _methods(text: str) -> tuple[str, ...]:
    names = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in names if m not in METHODS]
    if not names or unknown or len(set(names)) != len(names):
        raise DataError(f"--method: expected distinct names among {', '.join(METHODS)}, separated by commas. "
                        f"Received: {text!r}")
    return names
