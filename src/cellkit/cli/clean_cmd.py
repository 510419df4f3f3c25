"""``cellkit clean PATH --out OUT.npz``: a clean copy of a dataset; the input is never touched.

Example:
    $ cellkit clean sample --out clean.npz --remove superposition,duplicates
    $ cellkit inspect sample --report report && cellkit clean sample --report report --out clean.npz
"""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

import numpy as np

from cellkit._outputs import atomic_file_group
from cellkit.cli import (
    EXIT_OK,
    add_data_arguments,
    add_detector_arguments,
    add_quiet,
    check_npz_output,
    load_dataset,
    superposition_detector,
)
from cellkit.data import save_npz
from cellkit.errors import DataError
from cellkit.quality.issue_types import check_inputs, get_issue_type, issue_type_names

#: ``KIND`` removes the *strong* issues of a type with a strength (``color_filter``: a colour
#: few other images share, ``ColorFilterDetector.strength``); ``KIND:all`` every flagged one,
#: natural acquisition shifts (pbc96's grey-blue backgrounds) included. The report removed
#: superpositions and kept its blue-cast images (another acquisition, whose cast keeps the high
#: frequencies that separate the classes); duplicates keep one image per group.
ALL_SUFFIX = ":all"


def default_remove() -> str:
    """The issue types ``clean`` removes without ``--remove`` (``removed_by_default``)."""
    return ",".join(k for k in issue_type_names() if get_issue_type(k).removed_by_default)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "clean",
        help="write a copy of the dataset without the images that have issues",
        description="Write the kept images, labels and original ids to OUT.npz (atomically) and the removed "
        "ones, with the reason, to OUT.removed.csv. The input is never modified.",
    )
    add_data_arguments(p)
    p.add_argument("--out", type=Path, required=True, metavar="OUT.npz", help="where to write the clean dataset")
    p.add_argument(
        "--remove",
        default=default_remove(),
        help=f"comma-separated issue types to remove, among {', '.join(issue_type_names())} (default: "
        f"{default_remove()}); color_filter removes strong colour casts only, color_filter:all every flagged one",
    )
    p.add_argument(
        "--report", type=Path, metavar="DIR",
        help="reuse the issues found by `cellkit inspect PATH --report DIR` instead of checking again",
    )
    p.add_argument("--dry-run", action="store_true", help="only print what would be removed")
    add_detector_arguments(p)
    add_quiet(p)
    p.set_defaults(func=run)


def parse_remove(text: str) -> tuple[tuple[str, ...], frozenset[str]]:
    """``--remove`` as (issue types, those whose weak issues go too: ``kind:all``)."""
    items = [k.strip() for k in text.split(",") if k.strip()]
    kinds = tuple(k.removesuffix(ALL_SUFFIX) for k in items)
    every = frozenset(k.removesuffix(ALL_SUFFIX) for k in items if k.endswith(ALL_SUFFIX))
    names = issue_type_names()
    bad = [k for k in kinds if k not in names]
    if bad or not kinds or len(set(kinds)) != len(kinds):
        raise DataError(
            f"--remove expects a comma-separated subset of {', '.join(names)} (color_filter:all for weak "
            f"colour casts too). Received: {text!r}"
        )
    return kinds, every


def reuse_report(folder: Path, dataset, kinds: tuple[str, ...]):  # noqa: ANN001, ANN201
    """The report ``cellkit inspect --report`` wrote in ``folder``, checked against ``dataset``."""
    from cellkit.quality.report import IssueReport

    try:
        report = IssueReport.load(folder)
    except DataError as exc:
        raise DataError(f"--report: {exc}") from None
    if len(report) != len(dataset) or list(report["id"]) != [str(i) for i in dataset.ids]:
        raise DataError(
            f"--report {folder} describes {len(report)} images that are not those of {dataset.source} "
            f"({len(dataset)} images): expected a report of the same data, by `cellkit inspect {dataset.source} "
            "--report DIR`"
        )
    missing = [k for k in kinds if k not in report.issues]
    if missing:
        raise DataError(
            f"--report {folder} did not check {', '.join(missing)} (it checked {', '.join(report.issues)}); "
            "expected --remove among those"
        )
    return report


def run(args: argparse.Namespace) -> int:
    from cellkit.quality import find_issues

    kinds, every = parse_remove(args.remove)
    out = check_npz_output(args)
    dataset = load_dataset(args)
    if args.report is not None:
        report = reuse_report(args.report, dataset, kinds)
    else:
        check_inputs(dataset, kinds)
        report = find_issues(dataset, issues=kinds, random_state=args.seed, quiet=args.quiet,
                             superposition_detector=superposition_detector(args))
    reasons = {kind: report.issue_mask([kind], strong_only=kind not in every) for kind in kinds}
    removed = np.zeros(len(dataset), bool)
    for mask in reasons.values():
        removed |= mask
    keep = np.flatnonzero(~removed)
    print(f"{dataset.source}: {len(dataset)} images; removing {int(removed.sum())}, keeping {keep.size}")
    for kind, mask in reasons.items():
        ids = [dataset.ids[i] for i in np.flatnonzero(mask)]
        shown = ", ".join(ids[:5]) + (f", ... ({len(ids) - 5} more)" if len(ids) > 5 else "")
        kept = int((report.issue_mask([kind]) & ~mask).sum())
        weak = f"; {kept} weak kept ({kind}:all removes them)" if kept else ""
        print(f"  {kind}: {len(ids)}{weak}" + (f"  [{shown}]" if ids else ""))
    if args.dry_run:
        print("dry run: nothing written")
        return EXIT_OK
    # The pair appears together: never a new OUT.npz beside the previous run's OUT.removed.csv.
    with atomic_file_group([out, out.with_suffix(".removed.csv")]) as (npz_tmp, csv_tmp):
        save_npz(dataset.subset(keep), npz_tmp)
        csv_tmp.write_text(_removed_csv(dataset, report, reasons), encoding="utf-8", newline="")
    print(f"wrote {out} ({keep.size} images) and {out.with_suffix('.removed.csv')}")
    return EXIT_OK


def _removed_csv(dataset, report, reasons: dict[str, np.ndarray]) -> str:  # noqa: ANN001
    """One row per removed image: index, id, the reasons, and the report's columns for it."""
    from cellkit.quality.report import csv_cell

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    columns = [c for c in report.columns if c not in ("index", "id")]
    writer.writerow(["index", "id", "reasons", *columns])
    for i in np.flatnonzero(np.any(np.stack(list(reasons.values())), axis=0)):
        why = ";".join(k for k, m in reasons.items() if m[i])
        writer.writerow([int(i), dataset.ids[i], why, *(csv_cell(report.columns[c][i]) for c in columns)])
    return buf.getvalue()
