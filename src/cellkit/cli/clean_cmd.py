"""``cellkit clean PATH --out OUT.npz``: a clean copy of a dataset; the input is never touched.

Example:
    $ cellkit clean sample --out clean.npz --remove superposition,duplicates
"""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

import numpy as np

from cellkit._outputs import atomic_file_group
from cellkit.cli import EXIT_OK, add_data_arguments, add_quiet, check_npz_output, load_dataset
from cellkit.data import save_npz
from cellkit.data.checks import check_for_detectors
from cellkit.errors import DataError

REMOVABLE = ("superposition", "color_filter", "duplicates")
#: The report removed superpositions and kept blue-filtered images (the filter preserves
#: the high frequencies that separate the classes); duplicates keep one image per group.
DEFAULT_REMOVE = "superposition,duplicates"


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
        default=DEFAULT_REMOVE,
        help=f"comma-separated issue types to remove, among {', '.join(REMOVABLE)} (default: {DEFAULT_REMOVE})",
    )
    p.add_argument("--dry-run", action="store_true", help="only print what would be removed")
    p.add_argument("--seed", type=int, default=0, help="seed of the detectors' self-supervision (default 0)")
    add_quiet(p)
    p.set_defaults(func=run)


def parse_remove(text: str) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    bad = [k for k in kinds if k not in REMOVABLE]
    if bad or not kinds:
        raise DataError(f"--remove expects a comma-separated subset of {', '.join(REMOVABLE)}. Received: {text!r}")
    return kinds


def run(args: argparse.Namespace) -> int:
    from cellkit.quality import find_issues

    kinds = parse_remove(args.remove)
    out = check_npz_output(args)
    dataset = load_dataset(args)
    check_for_detectors(dataset, kinds)
    report = find_issues(dataset, issues=kinds, random_state=args.seed, quiet=args.quiet)
    reasons = {kind: report.issue_mask([kind]) for kind in kinds}
    removed = np.zeros(len(dataset), bool)
    for mask in reasons.values():
        removed |= mask
    keep = np.flatnonzero(~removed)
    print(f"{dataset.source}: {len(dataset)} images; removing {int(removed.sum())}, keeping {keep.size}")
    for kind, mask in reasons.items():
        ids = [dataset.ids[i] for i in np.flatnonzero(mask)]
        shown = ", ".join(ids[:5]) + (f", ... ({len(ids) - 5} more)" if len(ids) > 5 else "")
        print(f"  {kind}: {len(ids)}" + (f"  [{shown}]" if ids else ""))
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
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["index", "id", "reasons", "superposition_score", "color_filter_score", "duplicate_group"])
    cols = report.columns
    for i in np.flatnonzero(np.any(np.stack(list(reasons.values())), axis=0)):
        why = ";".join(k for k, m in reasons.items() if m[i])
        writer.writerow(
            [
                int(i),
                dataset.ids[i],
                why,
                _fmt(cols.get("superposition_score"), i),
                _fmt(cols.get("color_filter_score"), i),
                int(cols["duplicate_group"][i]) if "duplicate_group" in cols else -1,
            ]
        )
    return buf.getvalue()


def _fmt(col, i: int) -> str:  # noqa: ANN001
    return "" if col is None else f"{float(col[i]):.6f}"
