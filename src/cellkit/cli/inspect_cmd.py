"""``cellkit inspect PATH [--report DIR]``: class counts, image statistics and data issues.

Example:
    $ cellkit inspect sample --report inspect-report
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from cellkit._outputs import OutputFolder
from cellkit.cli import EXIT_OK, add_data_arguments, add_quiet, load_dataset
from cellkit.data import Dataset
from cellkit.quality.issue_types import check_inputs, issue_type_names

MONTAGE_SIZE = 32
#: What a report folder holds: a folder holding only these (or listed in its manifest) is
#: replaced by a new report; any other file makes ``--report`` refuse the folder.
REPORT_FILES = ("issues.csv", "summary.json", "montage_*.png")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "inspect",
        help=f"class counts, image statistics and data issues ({', '.join(issue_type_names())})",
        description="Find images superposed with another picture, colour-filtered images and near-duplicates "
        "(no labels needed), and likely label errors (--labels-from). The input is never modified.",
    )
    add_data_arguments(p)
    p.add_argument(
        "--report", type=Path, metavar="DIR",
        help="write issues.csv, summary.json and PNG montages of suspicious images; an earlier report in DIR "
        "is replaced whole, a folder holding other files is refused"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the detectors' self-supervision (default 0)")
    p.add_argument(
        "--labels-from", type=Path, metavar="CV_DIR",
        help="also find likely label errors (issue type 'label': confident learning, needs cleanlab) from the "
        "out-of-fold probabilities of `cellkit train PATH --folds K --out CV_DIR` on these images",
    )
    add_quiet(p)
    p.set_defaults(func=run)


def image_statistics(dataset: Dataset) -> dict:
    """Size, per-channel mean/std and brightness range, computed in batches (no float copy)."""
    n = len(dataset)
    sums = np.zeros(3)
    sq = np.zeros(3)
    for start in range(0, n, 1024):
        batch = dataset.images[start : start + 1024].astype(np.float64)
        sums += batch.sum(axis=(0, 1, 2))
        sq += (batch**2).sum(axis=(0, 1, 2))
    pixels = max(1, n * dataset.images.shape[1] * dataset.images.shape[2])
    mean = sums / pixels
    std = np.sqrt(np.maximum(sq / pixels - mean**2, 0.0))
    return {
        "images": n,
        "height": int(dataset.images.shape[1]),
        "width": int(dataset.images.shape[2]),
        "channel_mean_rgb": [round(float(v), 2) for v in mean],
        "channel_std_rgb": [round(float(v), 2) for v in std],
        "min": int(dataset.images.min()) if n else 0,
        "max": int(dataset.images.max()) if n else 0,
    }


def run(args: argparse.Namespace) -> int:
    from cellkit.quality import find_issues

    # The report folder is checked before the work and replaced whole after it: no montage of
    # an earlier run survives beside a summary that contradicts it.
    folder = None
    if args.report is not None:
        folder = OutputFolder(args.report, inputs=[args.path], overwrite=True, owned=REPORT_FILES,
                              argument="--report", kind="inspect report")
    dataset = load_dataset(args)
    check_inputs(dataset)
    label_probabilities = None
    if args.labels_from is not None:
        from cellkit.cli import require_labels
        from cellkit.quality.labels import probabilities_for
        from cellkit.train.cross_validation import load_folds

        require_labels(dataset, "inspect --labels-from")
        label_probabilities = probabilities_for(dataset.ids, load_folds(args.labels_from), source=args.labels_from)
    stats = image_statistics(dataset)
    counts = dataset.class_counts()
    print(f"{dataset.source}: {len(dataset)} images {stats['height']}x{stats['width']} RGB", end="")
    print(f", {len(dataset.problems)} files left out" if dataset.problems else "")
    if counts:
        width = max(len(c) for c in counts)
        for name, count in counts.items():
            print(f"  {name:<{width}}  {count:6d}  ({100 * count / max(1, len(dataset)):.1f}%)")
    print(f"  channel mean (RGB) {stats['channel_mean_rgb']}, std {stats['channel_std_rgb']}")
    report = find_issues(dataset, random_state=args.seed, quiet=args.quiet, label_probabilities=label_probabilities)
    print(report)
    if folder is not None:
        with folder.build() as work:
            _write_report(work, dataset, report, stats, counts)
        print(f"report written to {args.report}/ (issues.csv, summary.json, montages)")
    return EXIT_OK


def _write_report(out: Path, dataset: Dataset, report, stats: dict, counts: dict) -> None:  # noqa: ANN001
    from cellkit.quality.montage import save_montage

    report.save(
        out,
        extra={
            "source": dataset.source,
            "statistics": stats,
            "class_counts": counts,
            "files_left_out": [{"file": f, "reason": r} for f, r in dataset.problems],
        },
    )
    summary = report.summary()
    for kind in report.issues:
        idx = np.asarray(report.most_suspicious(kind, MONTAGE_SIZE))
        if idx.size == 0:
            continue
        flagged = int(report.issue_mask([kind]).sum())
        strength = summary.get("strength", {}).get(kind)
        split = f" ({strength['n_strong']} strong, s = strength %)" if strength else ""
        save_montage(
            out / f"montage_{kind}.png",
            dataset.images[idx],
            report.captions(kind, idx),
            title=f"{kind}: {flagged} flagged{split}; most suspicious first",
            scale=1,
        )
