"""``cellkit evaluate MODEL PATH [--json OUT] [--split-file SPLIT --subset test]``: the metrics table.

MODEL is a ``.keras`` file (a model or an ensemble) or a run folder (its ``model.keras``),
loaded with ``safe_mode=True``. ``--subset`` evaluates one part of a split: of
``--split-file``, or of the run folder's own ``split.json`` when MODEL is a run folder.
Beside accuracy, precision, recall and F1 the table gives the one-vs-rest AUROC (per class
and macro), the log-loss and the expected calibration error (:mod:`cellkit.evaluate.calibration`);
``--confusion PNG`` and ``--reliability PNG`` draw the confusion matrix and the reliability
diagram.

Example:
    $ cellkit evaluate runs/baseline sample --subset test --json test-metrics.json --reliability reliability.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from cellkit.cli import (
    EXIT_OK,
    add_data_arguments,
    add_quiet,
    add_tta,
    check_output_files,
    load_dataset,
    require_labels,
    resolve_split_file,
)
from cellkit.errors import DataError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="accuracy, precision, recall, F1, AUC, log-loss and calibration (ECE) of a saved model or ensemble",
        description="Evaluate a saved model (.keras file or run folder) on a labelled dataset, or on one part "
        "of a split.",
    )
    p.add_argument("model", metavar="MODEL", help=".keras model/ensemble file or cellkit run folder")
    add_data_arguments(p)
    p.add_argument("--json", type=Path, metavar="OUT", help="write the metrics as JSON")
    p.add_argument("--split-file", type=Path, metavar="SPLIT_JSON", help="split.json whose --subset is evaluated")
    p.add_argument("--subset", choices=("train", "val", "test"), help="part of the split to evaluate")
    p.add_argument("--batch-size", type=int, default=256, metavar="N", help="images per prediction batch (256)")
    add_tta(p, "evaluate the model wrapped in these views")
    p.add_argument("--confusion", type=Path, metavar="PNG", help="write the confusion matrix (rows normalised) as a PNG")
    p.add_argument("--reliability", type=Path, metavar="PNG",
                   help="write the reliability diagram (accuracy per confidence bin) as a PNG")
    p.add_argument(
        "--robustness",
        action="store_true",
        help="also measure accuracy under every corruption x severity of the suite (held-out families by default)",
    )
    p.add_argument(
        "--corruptions",
        default="evaluation",
        metavar="NAMES",
        help="with --robustness: corruption names, families or 'evaluation' / 'augmentation' / 'all' (default: evaluation)",
    )
    p.add_argument("--seed", type=int, default=0, help="with --robustness: corruption seed (default 0)")
    p.add_argument(
        "--heatmap", type=Path, metavar="PNG", help="with --robustness: write the corruption x severity heat-map"
    )
    add_quiet(p)
    p.set_defaults(func=run)


def subset_indices(split_path: Path, subset: str, ids: tuple[str, ...]) -> np.ndarray:
    """The indices of ``subset`` in the split file, checked against the dataset's image ids."""
    from cellkit.data.split import Split

    return getattr(Split.load(split_path, ids=ids), subset)


def run(args: argparse.Namespace) -> int:
    from cellkit._io import atomic_write_json
    from cellkit.evaluate.report import check_input_size, format_metrics, metrics_from_predictions
    from cellkit.inference.predict import predict_proba
    from cellkit.inference.saving import load_model, resolve_model_path

    model_path = resolve_model_path(args.model)
    split_file = resolve_split_file(args, run_split_by_default=False)
    if split_file is not None and not args.subset:
        raise DataError("--split-file needs --subset train, val or test", path=split_file)
    if args.batch_size < 1:
        raise DataError(f"--batch-size must be >= 1. Received: batch_size={args.batch_size}")
    inputs = [args.model, args.path, split_file]
    outputs = [(args.json, "--json"), (args.heatmap if args.robustness else None, "--heatmap"),
               (args.confusion, "--confusion"), (args.reliability, "--reliability")]
    check_output_files(outputs, inputs)
    for png, flag in ((args.confusion, "--confusion"), (args.reliability, "--reliability")):
        if png is not None and png.suffix.lower() != ".png":
            raise DataError(f"{flag}: the figure is a PNG file (expected a name ending in .png)", path=png)
    dataset = load_dataset(args)
    require_labels(dataset, "evaluate")
    idx = None if split_file is None else subset_indices(split_file, args.subset, dataset.ids)
    model = load_model(model_path)
    tta = None if args.tta in (None, "none") else args.tta
    if tta is not None:
        from cellkit.inference.tta import with_tta

        model = with_tta(model, tta)
    names = dataset.class_names or tuple(str(i) for i in range(dataset.num_classes))
    check_input_size(model, dataset.images)
    rows = np.arange(len(dataset.images)) if idx is None else idx
    proba = predict_proba(model, dataset.images, rows, batch_size=args.batch_size)
    metrics = metrics_from_predictions(dataset.labels[rows], proba, names, subset=args.subset or "all")
    metrics["model"] = str(model_path)
    metrics["data"] = dataset.source
    if tta is not None:
        metrics["tta"] = tta
    print(f"{model_path} on {dataset.source} ({metrics['subset']}, {metrics['images']} images)")
    print(format_metrics(metrics))
    _figures(args, metrics, dataset.labels[rows], proba, names)
    if args.robustness:
        metrics["robustness"] = _robustness(args, model, dataset, idx)
    if args.json is not None:
        atomic_write_json(args.json, metrics)
        if not args.quiet:
            print(f"metrics written to {args.json}")
    return EXIT_OK


def _figures(args: argparse.Namespace, metrics: dict, labels: np.ndarray, proba: np.ndarray, names) -> None:  # noqa: ANN001
    """The figures asked for: the confusion matrix and the reliability diagram."""
    where = f"{Path(metrics['model']).name}, {metrics['subset']}"
    if args.confusion is not None:
        from cellkit.evaluate.plots import plot_confusion_matrix

        plot_confusion_matrix(metrics["confusion_matrix"], names, args.confusion, title=f"Confusion matrix ({where})")
        if not args.quiet:
            print(f"confusion matrix written to {args.confusion}")
    if args.reliability is not None:
        from cellkit.evaluate.calibration import as_probabilities, plot_reliability_diagram

        plot_reliability_diagram(labels, as_probabilities(proba), args.reliability,
                                 title=f"Reliability ({where}): ECE {metrics['ece']:.4f}")
        if not args.quiet:
            print(f"reliability diagram written to {args.reliability}")


def _robustness(args: argparse.Namespace, model, dataset, idx) -> dict:  # noqa: ANN001
    from cellkit.evaluate.robustness import evaluate_robustness

    part = dataset if idx is None else dataset.subset(idx)
    report = evaluate_robustness(
        model, part, corruptions=args.corruptions, seed=args.seed, batch_size=args.batch_size, quiet=args.quiet
    )
    print(report)
    if args.heatmap is not None:
        report.plot_heatmap(args.heatmap)
        if not args.quiet:
            print(f"heat-map written to {args.heatmap}")
    return report.to_dict()
