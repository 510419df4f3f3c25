"""The printed form of an :class:`~cellkit.quality.report.IssueReport` (``print(report)``).

One line per issue type checked (images flagged, percent, its setting), a table per class
when the dataset is labelled, and the most suspicious flagged images of each issue type.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cellkit.quality.issue_types import get_issue_type

if TYPE_CHECKING:  # pragma: no cover
    from cellkit.quality.report import IssueReport

__all__ = ["format_report"]


def format_report(report: IssueReport) -> str:
    """``str(report)``: the report as ``print`` shows it."""
    s = report.summary()
    n = s["n_images"]
    lines = [
        f"Issues in {n} images (scores in [0, 1]: lower = more likely an issue)",
        "",
        f"{'issue_type':<16}{'num_images':>11}{'%':>8}   setting",
    ]
    for kind in report.issues:
        count = s["issues"][kind]
        setting = get_issue_type(kind).setting(report)
        lines.append(f"{kind:<16}{count:>11}{100 * count / max(n, 1):>7.2f}%   {setting}")
    if "by_class" in s:
        lines += ["", f"{'class':<16}{'n':>7}" + "".join(f"{k:>16}" for k in report.issues)]
        for name, row in s["by_class"].items():
            lines.append(
                f"{name:<16}{row['n_images']:>7}" + "".join(f"{row[k]:>16}" for k in report.issues)
            )
    ids = report.columns.get("id")
    for kind in report.issues:
        top = report.most_suspicious(kind, None)
        top = top[report.issue_mask(kind)[top]][:5]  # flagged images only
        if top.size == 0:
            continue
        issue_type = get_issue_type(kind)
        lines += ["", f"Most suspicious for {kind}:"]
        for i in top:
            name = f"  {ids[i]}" if ids is not None else ""
            lines.append(f"  #{i:<7}{issue_type.describe(report, int(i))}{name}")
    return "\n".join(lines)
