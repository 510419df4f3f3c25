"""Find data-quality issues in a dataset: superpositions, colour filters, near-duplicates.

:func:`find_issues` runs every issue type of the registry
(:mod:`cellkit.quality.issue_types`) on the user's images (no labels needed) and returns an
:class:`IssueReport`: one row per image, with for each issue type its columns (a score and a
flag, a strength, the near-duplicate group), and the label when the dataset has one.
:meth:`IssueReport.save` writes ``issues.csv`` and ``summary.json``; :meth:`IssueReport.load`
reads them back, so ``cellkit clean --report DIR`` reuses an inspection (the files' cells
and columns: :mod:`cellkit.quality._report_files`; the printed report:
:mod:`cellkit.quality._report_text`).

**Scores, everywhere in cellkit's quality module, are in [0, 1] and lower means more
likely an issue** (cleanvision's convention): an image is flagged when its score is
below the detector's ``threshold_``.

Example:
    >>> import cellkit
    >>> from cellkit.quality.report import find_issues
    >>> report = find_issues(cellkit.load("sample"), quiet=True)
    >>> print(report)
    Issues in 480 images (scores in [0, 1]: lower = more likely an issue)
    <BLANKLINE>
    issue_type       num_images       %   setting
    superposition    ...
    color_filter     ...
    duplicates                0   0.00%   radius 4 bits; 0 groups, 0 images
    ...
    >>> int(report.issue_mask("duplicates").sum())
    0
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

from cellkit._io import atomic_write_json, atomic_writer
from cellkit._progress import progress
from cellkit.data import Dataset
from cellkit.errors import DataError
from cellkit.quality._report_files import CSV_NAME, SUMMARY_NAME, csv_cell, read_report
from cellkit.quality._report_text import format_report
from cellkit.quality.duplicates import DEFAULT_RADIUS
from cellkit.quality.issue_types import CheckContext, default_issue_types, get_issue_type, issue_type_names

__all__ = ["ISSUE_TYPES", "IssueReport", "find_issues"]

#: The issue types checked by default, in report order (those that need nothing beyond the
#: images: :func:`~cellkit.quality.issue_types.default_issue_types`;
#: :func:`~cellkit.quality.issue_types.issue_type_names` lists every registered one).
ISSUE_TYPES: tuple[str, ...] = default_issue_types()


def _check_issues(issues: str | Sequence[str] | None, allowed: Sequence[str] | None = None,
                  default: Sequence[str] | None = None) -> tuple[str, ...]:
    allowed = tuple(allowed) if allowed is not None else issue_type_names()
    if issues is None:
        return tuple(default) if default is not None else allowed
    kinds = (issues,) if isinstance(issues, str) else tuple(issues)
    bad = [k for k in kinds if k not in allowed]
    if not kinds or bad or len(set(kinds)) != len(kinds):
        raise ValueError(
            f"`issues` must be distinct names from {tuple(allowed)}. Received: issues={issues!r}"
        )
    return kinds


class IssueReport:
    """Per-image issues of a dataset: a table of equal-length NumPy columns.

    Columns (present for the issue types that were checked):

    * ``index`` (int64): position of the image in the dataset; ``id`` (str): its id.
    * ``superposition_score`` (float64, lower = more likely superposed),
      ``is_superposition_issue`` (bool).
    * ``color_filter_score`` (float64, lower = more likely colour-filtered),
      ``is_color_filter_issue`` (bool), ``color_filter_strength`` (float64, percent: how far
      the image's colour sits from the dataset's own, see
      :meth:`~cellkit.quality.color.ColorFilterDetector.strength`) when the detector gives it.
    * ``duplicate_group`` (int64): near-duplicate group, -1 for none.
    * ``label`` (int64) and ``class_name`` (str) when the dataset is labelled.

    Args:
        columns: the columns, by name.
        issues: the issue types that were checked.
        parameters: thresholds and settings, reported by :meth:`summary`.
        class_names: class names of the dataset (for the per-class summary).
    """

    def __init__(
        self,
        columns: dict[str, np.ndarray],
        issues: Sequence[str],
        parameters: dict[str, Any] | None = None,
        class_names: Sequence[str] = (),
    ) -> None:
        lengths = {name: len(col) for name, col in columns.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"all columns must have the same length. Received lengths: {lengths}")
        if "index" not in columns:
            raise ValueError(f"`columns` must include 'index'. Received: {sorted(columns)}")
        self.issues = _check_issues(issues)
        for kind in self.issues:
            missing = [c for c in get_issue_type(kind).columns if c not in columns]
            if missing:
                raise ValueError(f"issue {kind!r} needs the columns {missing}. Received: {sorted(columns)}")
        self.columns = {name: np.asarray(col) for name, col in columns.items()}
        self.parameters = dict(parameters or {})
        self.class_names = tuple(class_names)

    # -- table access ---------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.columns["index"])

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.columns:
            raise KeyError(f"no column {name!r}; columns: {list(self.columns)}")
        return self.columns[name]

    def __repr__(self) -> str:
        return f"IssueReport(n={len(self)}, issues={self.issues}, columns={list(self.columns)})"

    # -- issues -----------------------------------------------------------------------------
    def _kinds(self, kinds: str | Sequence[str] | None) -> tuple[str, ...]:
        if kinds is None:
            return self.issues
        out = (kinds,) if isinstance(kinds, str) else tuple(kinds)
        missing = [k for k in out if k not in self.issues]
        if missing or not out:
            raise ValueError(
                f"issue types must be among those checked in this report, {self.issues}. Received: {kinds!r}"
            )
        return out

    def duplicate_representatives(self) -> np.ndarray:
        """Index of the image kept from each duplicate group, ``(n_groups,)`` int64.

        The most typical member: the highest of its lowest score over the scored issue
        types (none scored: the first member); ties go to the first member.
        """
        self._kinds("duplicates")
        return get_issue_type("duplicates").representatives(self)  # type: ignore[attr-defined]

    def issue_mask(self, kinds: str | Sequence[str] | None = None, *, strong_only: bool = False) -> np.ndarray:
        """``bool`` ``(n,)``: images with any of the issues ``kinds`` (default: all checked).

        For ``"duplicates"``: every member of a near-duplicate group except its
        representative (:meth:`duplicate_representatives`), i.e. the images one would drop.
        ``strong_only``: for issue types with a strength (``{kind}_strength`` column), only
        the flagged images at or above the report's ``{kind}_strong_threshold``.
        """
        mask = np.zeros(len(self), bool)
        for kind in self._kinds(kinds):
            mask |= get_issue_type(kind).flagged(self, strong_only=strong_only)
        return mask

    def strong(self, kind: str) -> np.ndarray:
        """``bool`` ``(n,)``: images whose ``{kind}_strength`` reaches the strong threshold.

        Raises ``ValueError`` for an issue type without a strength.
        """
        (kind,) = self._kinds(kind)
        issue_type = get_issue_type(kind)
        if not hasattr(issue_type, "strong"):
            raise ValueError(f"issue {kind!r} has no strength in this report. Received: kind={kind!r}")
        return issue_type.strong(self)

    def most_suspicious(self, kind: str, k: int | None = 10) -> np.ndarray:
        """Indices of the ``k`` most suspicious images for ``kind`` (``None``: all of them).

        Scored kinds: every image, by increasing score (ties by index). ``"duplicates"``:
        the flagged images of :meth:`issue_mask`, by group then index.
        """
        if not isinstance(kind, str):
            raise ValueError(f"`kind` must be one issue type (a str). Received: kind={kind!r}")
        (kind,) = self._kinds(kind)
        if k is not None and (isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0):
            raise ValueError(f"`k` must be None or an integer >= 0. Received: k={k!r}")
        idx = get_issue_type(kind).ranking(self)
        return idx[:k].astype(np.int64) if k is not None else idx.astype(np.int64)

    def captions(self, kind: str, indices: Sequence[int]) -> list[str]:
        """Montage captions of the images ``indices`` for ``kind``."""
        (kind,) = self._kinds(kind)
        issue_type = get_issue_type(kind)
        return [issue_type.caption(self, int(i)) for i in indices]

    def summary(self) -> dict[str, Any]:
        """Counts per issue type (and per class when labelled), each type's figures, parameters.

        Keys: ``n_images``, ``issues`` (``{kind: n_flagged}``), ``any_issue``, ``by_class``
        (``{class_name: {kind: n_flagged}}``), one key per issue type with figures of its own
        (``duplicates``: ``n_groups``, ``n_images_in_groups``, ``n_redundant``;
        ``strength``: ``{kind: {n_strong, n_weak, strong_threshold_percent}}``),
        ``checked`` (the issue types, in order), ``class_names`` and ``parameters``.
        """
        out: dict[str, Any] = {
            "n_images": len(self),
            "issues": {kind: int(self.issue_mask(kind).sum()) for kind in self.issues},
            "any_issue": int(self.issue_mask().sum()),
        }
        if "label" in self.columns:
            labels = self.columns["label"]
            names = self.columns.get("class_name")
            by_class: dict[str, dict[str, int]] = {}
            for lab in np.unique(labels):
                sel = labels == lab
                key = str(names[sel][0]) if names is not None else str(int(lab))
                by_class[key] = {"n_images": int(sel.sum())} | {
                    kind: int(self.issue_mask(kind)[sel].sum()) for kind in self.issues
                }
            out["by_class"] = by_class
        strength = {}
        for kind in self.issues:
            extra = get_issue_type(kind).summary(self)
            if extra and kind == "duplicates":
                out["duplicates"] = extra
            elif extra:
                strength[kind] = extra
        if strength:
            out["strength"] = strength
        out["checked"] = list(self.issues)
        out["class_names"] = list(self.class_names)
        out["parameters"] = dict(self.parameters)
        return out

    # -- output -----------------------------------------------------------------------------
    def to_csv(self, path: str | os.PathLike[str]) -> None:
        """Write the table as CSV (header row, one row per image), atomically.

        Floats are written in full precision (``repr``), booleans as ``True``/``False``.
        """
        names = list(self.columns)
        cols = [self.columns[c] for c in names]
        with atomic_writer(path, "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(names)
            for i in range(len(self)):
                writer.writerow([csv_cell(col[i]) for col in cols])

    def save(self, folder: str | os.PathLike[str], extra: Mapping[str, Any] | None = None) -> None:
        """Write ``issues.csv`` and ``summary.json`` (``{**extra, "issues": summary()}``) into ``folder``.

        Each file is written atomically; ``cellkit inspect --report`` builds the whole folder
        aside and swaps it in, so the two always belong together there.
        """
        folder = Path(folder)
        self.to_csv(folder / CSV_NAME)
        atomic_write_json(folder / SUMMARY_NAME, {**dict(extra or {}), "issues": self.summary()})

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> IssueReport:
        """Read a report that :meth:`save` (or ``cellkit inspect --report``) wrote.

        Raises :class:`~cellkit.errors.DataError` naming the file when it is missing, not a
        report, or its columns do not match what it says was checked.
        """
        return read_report(cls, folder)

    def __str__(self) -> str:
        return format_report(self)


def find_issues(
    dataset_or_images: Dataset | np.ndarray,
    *,
    issues: str | Sequence[str] | None = None,
    batch_size: int = 1024,
    random_state: int = 0,
    quiet: bool = False,
    detectors: Mapping[str, Any] | None = None,
    superposition_detector: Any = None,
    color_detector: Any = None,
    duplicate_radius: int = DEFAULT_RADIUS,
    invariant_duplicates: bool = False,
    n_jobs: int = 2,
    label_probabilities: np.ndarray | None = None,
) -> IssueReport:
    """Check a dataset for superposed, colour-filtered and near-duplicate images.

    Args:
        dataset_or_images: a :class:`~cellkit.data.Dataset` or a ``uint8`` ``(n, h, w, 3)``
            RGB array.
        issues: the issue types to check (default: every registered one that needs no
            more than what is given, :func:`~cellkit.quality.issue_types.default_issue_types`:
            ``"label"`` only with ``label_probabilities``).
        batch_size: images per batch (bounds memory).
        random_state: seed of the detectors' self-supervised training.
        quiet: no progress bar.
        detectors: detectors by issue type: a fitted detector is used as is, an unfitted one
            is fitted on the data (default: each issue type's own). Any object with
            ``fit(images)``, ``score_samples(images)`` and ``threshold_``.
        superposition_detector, color_detector: the same, for ``"superposition"`` and
            ``"color_filter"`` (default:
            :class:`~cellkit.quality.superposition.SuperpositionDetector`,
            :class:`~cellkit.quality.color.ColorFilterDetector`).
        duplicate_radius: Hamming radius of :func:`~cellkit.quality.duplicates.duplicate_groups`.
        invariant_duplicates: also match flipped/rotated copies.
        n_jobs: issue types checked at once, each in its own thread (the detectors' NumPy,
            OpenCV and SciPy work releases the GIL). Each detector draws from its own seed,
            so the report is the same for any ``n_jobs``; on pbc96 (14,528 images, 2 cores)
            two threads take the three checks from 27 s to 18 s.
        label_probabilities: out-of-fold class probabilities ``(n, k)`` of the images, in
            their order (:func:`cellkit.train.cross_validation.load_folds` and
            :func:`cellkit.quality.labels.probabilities_for`): enables the ``"label"`` check
            (likely label errors; the dataset must be labelled).

    Returns:
        An :class:`IssueReport`.
    """
    ds = (
        dataset_or_images
        if isinstance(dataset_or_images, Dataset)
        else Dataset(np.asarray(dataset_or_images))
    )
    n = len(ds)
    for name, value in (("batch_size", batch_size), ("n_jobs", n_jobs)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"`{name}` must be an integer >= 1. Received: {name}={value!r}")
    given = dict(detectors or {})
    for kind, det in (("superposition", superposition_detector), ("color_filter", color_detector)):
        if det is not None:
            given[kind] = det
    options: dict[str, Any] = {"duplicate_radius": duplicate_radius, "invariant_duplicates": invariant_duplicates}
    if label_probabilities is not None:
        from cellkit.quality.labels import LABEL_OPTION

        if ds.labels is None:
            raise DataError("the label check needs labelled images (expected a class-folder tree or a labelled .npz)",
                            path=ds.source)
        options |= {LABEL_OPTION: np.asarray(label_probabilities), "labels": np.asarray(ds.labels, np.int64)}
    kinds = _check_issues(issues, default=default_issue_types(options))
    context = CheckContext(batch_size=int(batch_size), random_state=random_state, detectors=given, options=options)
    columns: dict[str, np.ndarray] = {
        "index": np.arange(n, dtype=np.int64),
        "id": np.asarray(ds.ids, dtype=str) if n else np.zeros(0, dtype="<U1"),
    }
    params: dict[str, Any] = {"source": ds.source, "random_state": random_state}
    # Imports and default detectors in this thread, before the checks run side by side.
    for kind in kinds:
        get_issue_type(kind).prepare(context)
    by_kind: dict[str, tuple[dict[str, np.ndarray], dict[str, Any]]] = {}
    with ThreadPoolExecutor(max_workers=min(int(n_jobs), max(len(kinds), 1))) as pool:
        futures = {pool.submit(get_issue_type(kind).check, ds.images, context): kind for kind in kinds}
        for future in progress(as_completed(futures), total=len(futures), desc="checking", unit="issue", quiet=quiet):
            by_kind[futures[future]] = future.result()
    for kind in kinds:  # parameters in the order the issue types were asked for, whatever finished first
        params |= by_kind[kind][1]
    # report order: index, id, the issue types' columns in registry order, label, class_name
    for kind in issue_type_names():
        columns |= by_kind.get(kind, ({}, {}))[0]
    if ds.labels is not None:
        columns["label"] = ds.labels.astype(np.int64)
        if ds.class_names:
            columns["class_name"] = np.asarray([ds.class_names[i] for i in ds.labels], dtype=str).reshape(n)
    return IssueReport(columns, kinds, params, ds.class_names)
