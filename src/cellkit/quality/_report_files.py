"""The files of a saved :class:`~cellkit.quality.report.IssueReport`: cells written, columns read back.

``issues.csv`` holds the table (one row per image, floats in full precision) and
``summary.json`` the issue types checked, their parameters and the class names;
:meth:`IssueReport.load <cellkit.quality.report.IssueReport.load>` reads both back here.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cellkit.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    from cellkit.quality.report import IssueReport

__all__ = ["CSV_NAME", "SUMMARY_NAME", "csv_cell", "parse_column", "read_report"]

#: Files :meth:`IssueReport.save` writes.
CSV_NAME, SUMMARY_NAME = "issues.csv", "summary.json"


def read_report(cls: type[IssueReport], folder: str | os.PathLike[str]) -> IssueReport:
    """The body of :meth:`IssueReport.load`: ``cls`` built from the files in ``folder``."""
    folder = Path(folder)
    csv_path, summary_path = folder / CSV_NAME, folder / SUMMARY_NAME
    for path in (csv_path, summary_path):
        if not path.is_file():
            raise DataError(f"no {path.name} here: expected a folder written by `cellkit inspect --report`",
                            path=folder)
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        summary = summary.get("issues", summary)
        issues, parameters = summary["checked"], summary["parameters"]
        class_names = summary.get("class_names", [])
        with open(csv_path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
        header, rows = rows[0], rows[1:]
        if any(len(r) != len(header) for r in rows):
            raise ValueError("rows of different lengths")
        columns = {name: parse_column(name, [r[j] for r in rows]) for j, name in enumerate(header)}
        return cls(columns, issues, parameters, class_names)
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise DataError(
            f"not a cellkit issue report ({type(exc).__name__}: {exc}); expected the issues.csv and "
            "summary.json that `cellkit inspect --report` writes (an inspection by an older cellkit: inspect again)",
            path=folder,
        ) from None


def csv_cell(value: Any) -> str:
    """A table cell as :meth:`IssueReport.to_csv` writes it (floats in full precision)."""
    if isinstance(value, (np.floating, float)):
        return repr(float(value))
    if isinstance(value, (np.bool_, bool)):
        return str(bool(value))
    if isinstance(value, np.integer):
        return str(int(value))
    return str(value)


def parse_column(name: str, values: list[str]) -> np.ndarray:
    """A CSV column back to the dtype :meth:`IssueReport.to_csv` wrote it from."""
    if name in ("id", "class_name"):
        return np.asarray(values, dtype=str) if values else np.zeros(0, dtype="<U1")
    if name.startswith("is_"):
        if not set(values) <= {"True", "False"}:
            raise ValueError(f"column {name!r} holds values other than True/False")
        return np.asarray([v == "True" for v in values], dtype=bool)
    if name in ("index", "label", "duplicate_group"):
        return np.asarray([int(v) for v in values], dtype=np.int64)
    return np.asarray([float(v) for v in values], dtype=np.float64)
