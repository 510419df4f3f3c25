"""``cellkit calibrate MODEL PATH --out CALIBRATED.keras [--split-file SPLIT] [--subset val]``: temperature scaling.

Fits one temperature on MODEL's predictions for labelled validation images
(:func:`cellkit.evaluate.calibration.fit_temperature`) and saves, atomically, the model
followed by a :class:`~cellkit.inference.temperature.TemperatureScaling` layer: the same
predictions (arg-max), with probabilities that match the accuracy better. MODEL is a
``.keras`` model, TTA model or ensemble, or a run folder (its ``model.keras``). The images
the temperature is fitted on are ``--subset`` (``val`` by default) of ``--split-file``, or of
the run folder's own ``split.json`` when MODEL is a run folder; without a split, all of PATH.
The ECE and the log-loss (NLL) before and after are printed for those images and, when the
split has a test part, for the test images.

Example:
    $ cellkit calibrate runs/compact pbc96 --out compact-calibrated.keras
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from cellkit.cli import (
    EXIT_OK,
    add_data_arguments,
    add_quiet,
    check_output_files,
    load_dataset,
    require_labels,
    resolve_split_file,
)
from cellkit.errors import DataError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "calibrate",
        help="fit a temperature on validation images so that confidences match accuracy; save the calibrated model",
        description="Temperature scaling: fit one temperature on a model's validation predictions (minimum NLL) and "
        "save the model followed by it. Predictions are unchanged; the ECE and log-loss before and after are printed.",
    )
    p.add_argument("model", metavar="MODEL", help=".keras model/ensemble file or cellkit run folder")
    add_data_arguments(p)
    p.add_argument("--out", type=Path, required=True, metavar="CALIBRATED.keras", help="the calibrated model to write")
    p.add_argument("--split-file", type=Path, metavar="SPLIT_JSON",
                   help="split.json whose --subset the temperature is fitted on (default: a run folder's split.json)")
    p.add_argument("--subset", choices=("train", "val", "test"),
                   help="part of the split to fit on (default: val)")
    p.add_argument("--batch-size", type=int, default=256, metavar="N", help="images per prediction batch (256)")
    add_quiet(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cellkit.inference.saving import resolve_model_path

    if args.batch_size < 1:
        raise DataError(f"--batch-size must be >= 1. Received: batch_size={args.batch_size}")
    model_path = resolve_model_path(args.model)
    split_file = resolve_split_file(args, run_split_by_default=True)
    check_output_files([(args.out, "--out")], [args.model, model_path, args.path, split_file])
    if args.out.suffix.lower() != ".keras":
        raise DataError("--out: expected a model file name ending in .keras", path=args.out)
    dataset = load_dataset(args)
    require_labels(dataset, "calibrate")
    parts = _parts(split_file, args.subset or "val", dataset)

    from cellkit.evaluate.calibration import calibration_metrics, fit_temperature
    from cellkit.inference.predict import check_input_size, predict_proba
    from cellkit.inference.saving import load_model, save_model
    from cellkit.inference.temperature import with_temperature

    model = load_model(model_path)
    check_input_size(model, dataset.images)
    outputs = {name: predict_proba(model, dataset.images, idx, batch_size=args.batch_size)
               for name, idx in parts.items()}
    fit_name = next(iter(parts))
    fit = fit_temperature(outputs[fit_name], dataset.labels[parts[fit_name]])
    save_model(with_temperature(model, fit.temperature, from_logits=fit.from_logits), args.out)
    print(f"{model_path} on {dataset.source}: temperature {fit.temperature:.4f} fitted on {fit_name} "
          f"({fit.images} images; NLL {fit.nll_before:.4f} -> {fit.nll_after:.4f})")
    print(f"{'':>6} {'images':>8} {'ECE before':>11} {'ECE after':>10} {'NLL before':>11} {'NLL after':>10}")
    for name, idx in parts.items():
        m = calibration_metrics(outputs[name], dataset.labels[idx], fit.temperature, fit.from_logits)
        print(f"{name:>6} {m['images']:>8d} {m['ece_before']:>11.4f} {m['ece_after']:>10.4f} "
              f"{m['log_loss_before']:>11.4f} {m['log_loss_after']:>10.4f}")
    print(f"calibrated model written to {args.out}")
    return EXIT_OK


def _parts(split_file: Path | None, subset: str, dataset) -> dict[str, np.ndarray]:  # noqa: ANN001
    """The images to fit on (first) and, when the split has one, the test part to measure on."""
    if split_file is None:
        return {"all": np.arange(len(dataset), dtype=np.int64)}
    from cellkit.data.split import Split

    split = Split.load(split_file, ids=dataset.ids)
    fit = getattr(split, subset)
    if fit.size == 0:
        raise DataError(f"the split's {subset} part is empty (expected labelled images to fit the temperature on; "
                        "choose another --subset)", path=split_file)
    parts = {subset: fit}
    if subset != "test" and split.test.size:
        parts["test"] = split.test
    return parts
