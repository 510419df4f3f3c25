"""``cellkit split PATH --out DIR``: a stratified train / validation / test split, as indices.

Writes ``DIR/split.json`` atomically: the seed, the requested sizes, and for each part its
indices into the loaded dataset and the image ids (file paths relative to the dataset root),
plus the class counts of each part. The dataset itself is never modified or copied.

Example:
    $ cellkit split sample --out splits/ --val 0.08 --test 0.2 --seed 0 --group-duplicates
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from cellkit._io import atomic_write_json
from cellkit.cli import (
    EXIT_OK,
    add_data_arguments,
    add_quiet,
    check_output_files,
    load_dataset,
    require_labels,
)
from cellkit.data.split import SPLIT_NAMES, stratified_split
from cellkit.errors import DataError

SPLIT_FILE = "split.json"


def _size(text: str) -> float | int:
    """``0.2`` -> fraction, ``300`` -> count (as scikit-learn reads ``test_size``)."""
    try:
        return int(text) if text.strip().lstrip("+").isdigit() else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a fraction such as 0.2 or a count such as 300. Received: {text!r}"
        ) from None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "split",
        help="stratified train/val/test split written as indices and ids (split.json)",
        description="Split a labelled dataset into stratified train, validation and test parts "
        "(default 72/8/20, as the seed report). Sizes are fractions (0.2) or counts (300).",
    )
    add_data_arguments(p)
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help=f"folder for {SPLIT_FILE}")
    p.add_argument(
        "--val", type=_size, default=0.08, help="validation size: fraction or count (default 0.08)"
    )
    p.add_argument("--test", type=_size, default=0.2, help="test size: fraction or count (default 0.2)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--group-duplicates",
        action="store_true",
        help="keep near-duplicate images in the same part (groups from cellkit.quality.duplicates)",
    )
    add_quiet(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise DataError(f"--out exists and is not a folder (expected a folder for {SPLIT_FILE})", path=args.out)
    check_output_files([(Path(args.out) / SPLIT_FILE, "--out")], [args.path])
    dataset = load_dataset(args)
    require_labels(dataset, "split")
    groups = None
    n_groups = 0
    if args.group_duplicates:
        from cellkit.quality.duplicates import duplicate_groups  # heavy: only when asked

        groups = np.asarray(duplicate_groups(dataset.images), dtype=np.int64)
        n_groups = int(np.unique(groups[groups >= 0]).size)
    try:
        split = stratified_split(dataset.labels, val=args.val, test=args.test, seed=args.seed, groups=groups)
    except ValueError as exc:
        raise DataError(str(exc), path=dataset.source) from None

    names = dataset.class_names or tuple(str(i) for i in range(dataset.num_classes))
    doc = split.to_dict(ids=dataset.ids)
    doc["source"] = dataset.source
    doc["class_names"] = list(names)
    doc["group_duplicates"] = bool(args.group_duplicates)
    doc["duplicate_groups"] = n_groups
    for part in SPLIT_NAMES:
        counts = np.bincount(dataset.labels[getattr(split, part)], minlength=len(names))
        doc["splits"][part]["class_counts"] = {names[i]: int(c) for i, c in enumerate(counts)}
    dest = Path(args.out) / SPLIT_FILE
    atomic_write_json(dest, doc)

    sizes = split.sizes()
    print(
        f"{dataset.source}: {len(dataset)} images -> "
        + ", ".join(f"{part} {sizes[part]} ({100 * sizes[part] / len(dataset):.1f}%)" for part in SPLIT_NAMES)
    )
    if not args.quiet:
        width = max(len(n) for n in names)
        print(f"  {'class':<{width}}  " + "  ".join(f"{part:>6}" for part in SPLIT_NAMES))
        for name in names:
            print(
                f"  {name:<{width}}  "
                + "  ".join(f"{doc['splits'][p]['class_counts'][name]:>6d}" for p in SPLIT_NAMES)
            )
        if args.group_duplicates:
            print(f"  {n_groups} near-duplicate groups kept within one part")
    print(f"split written to {dest}")
    return EXIT_OK
