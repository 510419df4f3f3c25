"""Find data-quality issues in a dataset: superpositions, colour filters, near-duplicates.

:func:`find_issues` fits the detectors on the user's images (no labels needed) and
returns an :class:`IssueReport`: one row per image, with for each issue type a score and
a flag, the near-duplicate group, and the label when the dataset has one.

**Scores, everywhere in cellkit's quality module, are in [0, 1] and lower means more
likely an issue** (cleanvision's convention): an image is flagged when its score is
below the detector's ``threshold_``.

Example:
    >>> import cellkit
    >>> from cellkit.quality.report import find_issues
    >>> report = find_issues(cellkit.load("sample"), quiet=True)  # doctest: +SKIP
    >>> print(report)  # doctest: +SKIP
    >>> report.issue_mask("duplicates").sum()  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from cellkit._io import atomic_writer
from cellkit._progress import progress
from cellkit.data import Dataset
from cellkit.quality.color import ColorFilterDetector
from cellkit.quality.duplicates import DEFAULT_RADIUS, duplicate_groups, perceptual_hash

__all__ = ["ISSUE_TYPES", "IssueReport", "find_issues"]

#: Issue types :func:`find_issues` knows, in report order.
ISSUE_TYPES: tuple[str, ...] = ("superposition", "color_filter", "duplicates")

_SCORED = ("superposition", "color_filter")


def _check_issues(issues: str | Sequence[str], allowed: Sequence[str] = ISSUE_TYPES) -> tuple[str, ...]:
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
      ``is_color_filter_issue`` (bool).
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
            need = ("duplicate_group",) if kind == "duplicates" else (f"{kind}_score", f"is_{kind}_issue")
            missing = [c for c in need if c not in columns]
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
        group = self.columns["duplicate_group"]
        members = np.flatnonzero(group >= 0)
        if members.size == 0:
            return np.zeros(0, np.int64)
        scores = [self.columns[f"{k}_score"] for k in _SCORED if k in self.issues]
        typical = np.min(scores, axis=0) if scores else np.zeros(len(self))
        # sort members by group, then by decreasing typicality, then by index
        order = np.lexsort((members, -typical[members], group[members]))
        ranked = members[order]
        first = np.r_[True, group[ranked][1:] != group[ranked][:-1]]
        return ranked[first].astype(np.int64)

    def issue_mask(self, kinds: str | Sequence[str] | None = None) -> np.ndarray:
        """``bool`` ``(n,)``: images with any of the issues ``kinds`` (default: all checked).

        For ``"duplicates"``: every member of a near-duplicate group except its
        representative (:meth:`duplicate_representatives`), i.e. the images one would drop.
        """
        mask = np.zeros(len(self), bool)
        for kind in self._kinds(kinds):
            if kind == "duplicates":
                dup = self.columns["duplicate_group"] >= 0
                dup[self.duplicate_representatives()] = False
                mask |= dup
            else:
                mask |= self.columns[f"is_{kind}_issue"].astype(bool)
        return mask

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
        if kind == "duplicates":
            idx = np.flatnonzero(self.issue_mask("duplicates"))
            idx = idx[np.argsort(self.columns["duplicate_group"][idx], kind="stable")]
        else:
            idx = np.argsort(self.columns[f"{kind}_score"], kind="stable")
        return idx[:k].astype(np.int64) if k is not None else idx.astype(np.int64)

    def summary(self) -> dict[str, Any]:
        """Counts per issue type (and per class when labelled), duplicate groups, parameters.

        Example keys: ``n_images``, ``issues`` (``{kind: n_flagged}``), ``by_class``
        (``{class_name: {kind: n_flagged}}``), ``duplicates`` (``n_groups``,
        ``n_images_in_groups``, ``n_redundant``), ``parameters``.
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
        if "duplicates" in self.issues:
            group = self.columns["duplicate_group"]
            out["duplicates"] = {
                "n_groups": int(len(np.unique(group[group >= 0]))),
                "n_images_in_groups": int((group >= 0).sum()),
                "n_redundant": out["issues"]["duplicates"],
            }
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
                writer.writerow([_cell(col[i]) for col in cols])

    def __str__(self) -> str:
        s = self.summary()
        n = s["n_images"]
        lines = [
            f"Issues in {n} images (scores in [0, 1]: lower = more likely an issue)",
            "",
            f"{'issue_type':<16}{'num_images':>11}{'%':>8}   setting",
        ]
        for kind in self.issues:
            count = s["issues"][kind]
            if kind == "duplicates":
                d = s["duplicates"]
                setting = (
                    f"radius {self.parameters.get('duplicate_radius')} bits; "
                    f"{d['n_groups']} groups, {d['n_images_in_groups']} images"
                )
            else:
                setting = f"threshold {self.parameters.get(f'{kind}_threshold', float('nan')):.3g}"
            lines.append(f"{kind:<16}{count:>11}{100 * count / max(n, 1):>7.2f}%   {setting}")
        if "by_class" in s:
            lines += ["", f"{'class':<16}{'n':>7}" + "".join(f"{k:>16}" for k in self.issues)]
            for name, row in s["by_class"].items():
                lines.append(
                    f"{name:<16}{row['n_images']:>7}" + "".join(f"{row[k]:>16}" for k in self.issues)
                )
        ids = self.columns.get("id")
        for kind in self.issues:
            top = self.most_suspicious(kind, None)
            top = top[self.issue_mask(kind)[top]][:5]  # flagged images only
            if top.size == 0:
                continue
            what = "lowest score" if kind in _SCORED else "group"
            lines += ["", f"Most suspicious for {kind} ({what}):"]
            for i in top:
                value = (
                    f"score {self.columns[f'{kind}_score'][i]:.3f}"
                    if kind in _SCORED
                    else f"group {self.columns['duplicate_group'][i]}"
                )
                name = f"  {ids[i]}" if ids is not None else ""
                lines.append(f"  #{i:<7}{value}{name}")
        return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, (np.floating, float)):
        return repr(float(value))
    if isinstance(value, (np.bool_, bool)):
        return str(bool(value))
    if isinstance(value, np.integer):
        return str(int(value))
    return str(value)


def _is_fitted(detector: Any) -> bool:
    return hasattr(detector, "threshold_")


def find_issues(
    dataset_or_images: Dataset | np.ndarray,
    *,
    issues: str | Sequence[str] = ISSUE_TYPES,
    batch_size: int = 1024,
    random_state: int = 0,
    quiet: bool = False,
    superposition_detector: Any = None,
    color_detector: Any = None,
    duplicate_radius: int = DEFAULT_RADIUS,
    invariant_duplicates: bool = False,
) -> IssueReport:
    """Check a dataset for superposed, colour-filtered and near-duplicate images.

    Args:
        dataset_or_images: a :class:`~cellkit.data.Dataset` or a ``uint8`` ``(n, h, w, 3)``
            RGB array.
        issues: the issue types to check, from :data:`ISSUE_TYPES`.
        batch_size: images per batch (bounds memory).
        random_state: seed of the detectors' self-supervised training.
        quiet: no progress bar.
        superposition_detector: a fitted detector to use as is, or an unfitted one to fit
            on the data (default: :class:`~cellkit.quality.superposition.SuperpositionDetector`).
            Any object with ``fit(images)``, ``score_samples(images)`` and ``threshold_``.
        color_detector: the same for colour filters (default:
            :class:`~cellkit.quality.color.ColorFilterDetector`).
        duplicate_radius: Hamming radius of :func:`~cellkit.quality.duplicates.duplicate_groups`.
        invariant_duplicates: also match flipped/rotated copies.

    Returns:
        An :class:`IssueReport`.
    """
    kinds = _check_issues(issues)
    ds = (
        dataset_or_images
        if isinstance(dataset_or_images, Dataset)
        else Dataset(np.asarray(dataset_or_images))
    )
    images = ds.images
    n = len(ds)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"`batch_size` must be an integer >= 1. Received: batch_size={batch_size!r}")
    columns: dict[str, np.ndarray] = {
        "index": np.arange(n, dtype=np.int64),
        "id": np.asarray(ds.ids, dtype=str) if n else np.zeros(0, dtype="<U1"),
    }
    if ds.labels is not None:
        columns["label"] = ds.labels.astype(np.int64)
        if ds.class_names:
            columns["class_name"] = np.asarray([ds.class_names[i] for i in ds.labels], dtype=str).reshape(n)
    params: dict[str, Any] = {"source": ds.source, "random_state": random_state}

    for kind in progress(kinds, desc="checking", unit="issue", quiet=quiet):
        if kind == "duplicates":
            hashes = perceptual_hash(images, dihedral=invariant_duplicates, batch_size=batch_size)
            columns["duplicate_group"] = duplicate_groups(
                hashes, duplicate_radius, invariant=invariant_duplicates
            )
            params["duplicate_radius"] = int(duplicate_radius)
            params["duplicate_invariant"] = bool(invariant_duplicates)
            continue
        det = superposition_detector if kind == "superposition" else color_detector
        if det is None:
            det = _default_detector(kind, batch_size, random_state)
        if _is_fitted(det):
            scores = det.score_samples(images)
        else:
            det.fit(images)
            scores = getattr(det, "training_scores_", None)
            if scores is None or len(scores) != n:
                scores = det.score_samples(images)
        scores = np.asarray(scores, dtype=np.float64)
        threshold = float(det.threshold_)
        columns[f"{kind}_score"] = scores
        columns[f"is_{kind}_issue"] = scores < threshold
        params[f"{kind}_threshold"] = threshold
        params[f"{kind}_detector"] = repr(det)
    # report order: index, id, issue columns in ISSUE_TYPES order, label, class_name
    order = ["index", "id"]
    for kind in ISSUE_TYPES:
        if kind in kinds:
            order += ["duplicate_group"] if kind == "duplicates" else [f"{kind}_score", f"is_{kind}_issue"]
    order += [c for c in ("label", "class_name") if c in columns]
    return IssueReport({c: columns[c] for c in order}, kinds, params, ds.class_names)


def _default_detector(kind: str, batch_size: int, random_state: int) -> Any:
    if kind == "color_filter":
        return ColorFilterDetector(batch_size=batch_size, random_state=random_state)
    from cellkit.quality.superposition import SuperpositionDetector

    return SuperpositionDetector(batch_size=batch_size, random_state=random_state)
