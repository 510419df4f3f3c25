"""The issue types cellkit checks, in one registry: how each is found, flagged, ranked and shown.

An issue type (cleanvision calls them issue managers) owns everything about one kind of
data-quality issue: which images it needs, the report columns it writes, which images it
flags (and which of those a strong-only clean removes), how it ranks images for the montage
and what it prints. :func:`~cellkit.quality.report.find_issues`, :class:`IssueReport
<cellkit.quality.report.IssueReport>`, ``cellkit inspect`` and ``cellkit clean`` iterate the
registry, so **a new issue type is one module defining an** :class:`IssueType` **subclass,
plus one** :func:`register_issue_type` **call**; nothing else changes.

Two shapes cover the built-in types:

* :class:`ScoredIssue`: a detector with scikit-learn's outlier surface scores every image
  (``{name}_score`` in ``[0, 1]``, lower = more likely an issue; ``is_{name}_issue``), and
  optionally a strength (``{name}_strength``) that separates strong issues from mild ones;
* :class:`DuplicatesIssue`: groups of near-copies (``duplicate_group``); every member but
  the group's most typical image is an issue.

This module holds the registry and the built-in types; the base classes :class:`IssueType`
and :class:`ScoredIssue`, and :class:`CheckContext`, are defined in
:mod:`cellkit.quality._issue_base` and importable from here.

Example:
    >>> from cellkit.quality.issue_types import get_issue_type, issue_type_names
    >>> issue_type_names()
    ('superposition', 'color_filter', 'duplicates', 'label')
    >>> get_issue_type("color_filter").columns
    ('color_filter_score', 'is_color_filter_issue')
    >>> get_issue_type("blur")
    Traceback (most recent call last):
    ...
    ValueError: `name` must be a registered issue type, one of ('superposition', 'color_filter', 'duplicates', 'label'). Received: name='blur'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from cellkit.data.dataset import Dataset
from cellkit.errors import DataError
from cellkit.quality._issue_base import MIN_DETECTOR_IMAGES, CheckContext, IssueType, ScoredIssue
from cellkit.quality.labels import LabelIssue

if TYPE_CHECKING:  # pragma: no cover
    from cellkit.quality.report import IssueReport

__all__ = [
    "CheckContext",
    "DuplicatesIssue",
    "IssueType",
    "MIN_DETECTOR_IMAGES",
    "MIN_DUPLICATE_SIZE",
    "ScoredIssue",
    "check_inputs",
    "get_issue_type",
    "issue_type_names",
    "register_issue_type",
]

#: Smallest side the perceptual hash of the duplicate finder accepts.
MIN_DUPLICATE_SIZE = 8


class _OverlayTrainedIssue(ScoredIssue):
    """A scored issue whose default detector trains on synthetic superpositions: its fit draws
    overlays, so :meth:`prepare` also imports what they are drawn with."""

    def prepare(self, context: CheckContext) -> None:
        from cellkit.corrupt.overlay_families import import_drawing_libraries

        super().prepare(context)
        import_drawing_libraries()


class SuperpositionIssue(_OverlayTrainedIssue):
    name = "superposition"
    description = "a second image superposed on the cell"

    def default_detector(self, context: CheckContext) -> Any:
        from cellkit.quality.superposition import SuperpositionDetector

        return SuperpositionDetector(batch_size=context.batch_size, random_state=context.random_state)


class ColorFilterIssue(_OverlayTrainedIssue):
    name = "color_filter"
    description = "a colour filter or cast (strength: how far from the dataset's own colours)"

    def default_detector(self, context: CheckContext) -> Any:
        from cellkit.quality.color import ColorFilterDetector

        return ColorFilterDetector(batch_size=context.batch_size, random_state=context.random_state)


class DuplicatesIssue(IssueType):
    """Near-copies: groups of images within a Hamming radius of perceptual hash.

    Every member of a group except its representative (the most typical: the highest of its
    lowest score over the report's scored issue types; ties to the first) is an issue.
    """

    name = "duplicates"
    description = "near-copies of another image (one per group is kept)"

    @property
    def columns(self) -> tuple[str, ...]:
        return ("duplicate_group",)

    def check_input(self, dataset: Dataset) -> None:
        h, w = int(dataset.images.shape[1]), int(dataset.images.shape[2])
        if h < MIN_DUPLICATE_SIZE or w < MIN_DUPLICATE_SIZE:
            raise DataError(
                f"images of {h}x{w} (HxW) are too small for the duplicate finder (expected at least "
                f"{MIN_DUPLICATE_SIZE}x{MIN_DUPLICATE_SIZE}; pass --size to resize them)",
                path=dataset.source,
            )

    def check(self, images: np.ndarray, context: CheckContext) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        from cellkit.quality.duplicates import DEFAULT_RADIUS, duplicate_groups, perceptual_hash

        radius = context.options.get("duplicate_radius", DEFAULT_RADIUS)
        invariant = bool(context.options.get("invariant_duplicates", False))
        hashes = perceptual_hash(images, dihedral=invariant, batch_size=context.batch_size)
        groups = duplicate_groups(hashes, radius, invariant=invariant)
        return {"duplicate_group": groups}, {"duplicate_radius": int(radius), "duplicate_invariant": invariant}

    def representatives(self, report: IssueReport) -> np.ndarray:
        group = report.columns["duplicate_group"]
        members = np.flatnonzero(group >= 0)
        if members.size == 0:
            return np.zeros(0, np.int64)
        scored = _scored_types(report)
        typical = (
            np.min([report.columns[f"{t.name}_score"] for t in scored], axis=0) if scored else np.zeros(len(report))
        )
        # sort members by group, then by decreasing typicality, then by index
        order = np.lexsort((members, -typical[members], group[members]))
        ranked = members[order]
        first = np.r_[True, group[ranked][1:] != group[ranked][:-1]]
        return ranked[first].astype(np.int64)

    def flagged(self, report: IssueReport, strong_only: bool = False) -> np.ndarray:
        dup = report.columns["duplicate_group"] >= 0
        dup[self.representatives(report)] = False
        return dup

    def ranking(self, report: IssueReport) -> np.ndarray:
        idx = np.flatnonzero(self.flagged(report))
        return idx[np.argsort(report.columns["duplicate_group"][idx], kind="stable")]

    def setting(self, report: IssueReport) -> str:
        d = self.summary(report)
        return (
            f"radius {report.parameters.get('duplicate_radius')} bits; "
            f"{d['n_groups']} groups, {d['n_images_in_groups']} images"
        )

    def describe(self, report: IssueReport, index: int) -> str:
        return f"group {report.columns['duplicate_group'][index]}"

    def caption(self, report: IssueReport, index: int) -> str:
        return f"group {int(report.columns['duplicate_group'][index])}"

    def summary(self, report: IssueReport) -> dict[str, Any]:
        group = report.columns["duplicate_group"]
        return {
            "n_groups": int(len(np.unique(group[group >= 0]))),
            "n_images_in_groups": int((group >= 0).sum()),
            "n_redundant": int(self.flagged(report).sum()),
        }


def _scored_types(report: IssueReport) -> list[ScoredIssue]:
    return [t for t in map(get_issue_type, report.issues) if isinstance(t, ScoredIssue)]


_REGISTRY: dict[str, IssueType] = {}


def register_issue_type(issue_type: IssueType | Callable[[], IssueType]) -> IssueType:
    """Add an issue type (an instance, or a class to instantiate) to the registry; returns it.

    Its ``name`` must be a new identifier (letters, digits, underscores).
    """
    instance = issue_type() if isinstance(issue_type, type) else issue_type
    if not isinstance(instance, IssueType):
        raise TypeError(f"`issue_type` must be an IssueType. Received: {issue_type!r}")
    name = instance.name
    if not (isinstance(name, str) and name.isidentifier()) or name in _REGISTRY:
        raise ValueError(
            f"an issue type needs a new identifier as its name; registered: {tuple(_REGISTRY)}. Received: name={name!r}"
        )
    _REGISTRY[name] = instance
    return instance


def issue_type_names() -> tuple[str, ...]:
    """The registered issue types, in report order."""
    return tuple(_REGISTRY)


def get_issue_type(name: str) -> IssueType:
    """The registered issue type called ``name``."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"`name` must be a registered issue type, one of {issue_type_names()}. Received: name={name!r}"
        ) from None


def check_inputs(dataset: Dataset, issues: tuple[str, ...] | None = None) -> None:
    """:class:`~cellkit.errors.DataError` if any of ``issues`` (default: all) cannot check ``dataset``.

    Example:
        >>> import numpy as np
        >>> check_inputs(Dataset(np.zeros((25, 32, 32, 3), np.uint8)))
        >>> check_inputs(Dataset(np.zeros((5, 32, 32, 3), np.uint8)))
        Traceback (most recent call last):
        ...
        cellkit.errors.DataError: <array>: 5 images are too few for the quality detectors (expected at least 20)
    """
    for name in issues if issues is not None else issue_type_names():
        get_issue_type(name).check_input(dataset)


def default_issue_types(options: dict[str, Any] | None = None) -> tuple[str, ...]:
    """The issue types checked when none are named: those whose ``needs`` are all in ``options``.

    Example:
        >>> default_issue_types()
        ('superposition', 'color_filter', 'duplicates')
    """
    given = set(options or {})
    return tuple(k for k in issue_type_names() if set(get_issue_type(k).needs) <= given)


for _builtin in (SuperpositionIssue, ColorFilterIssue, DuplicatesIssue, LabelIssue):
    register_issue_type(_builtin)
