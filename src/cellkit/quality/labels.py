"""Likely label errors, from out-of-fold probabilities (confident learning, by cleanlab).

A model that never saw an image (the run of its fold in ``cellkit train --folds K``,
:mod:`cellkit.train.cross_validation`) gives its class probabilities; confident learning
(Northcutt et al., 2021) estimates from them, class by class, how many labels of each class
are really another, and flags the images whose given label is least likely.
:func:`find_label_issues` calls cleanlab's ``find_label_issues`` for that (optional
dependency: ``pip install "cellkit[labels]"``) and its ``get_label_quality_scores`` for the
score; nothing here implements confident learning again.

The ``"label"`` issue type (:class:`LabelIssue`) puts them in an inspection report
(``cellkit inspect DATA --labels-from CV_FOLDER``): columns ``label_score`` (the
probability of the given label; lower = more suspicious), ``is_label_issue`` and
``label_suggested`` (the most likely class); its montage captions read ``given>suggested``.
It is checked only when out-of-fold probabilities are given.

Example:
    >>> import numpy as np
    >>> labels = np.array([0] * 50 + [1] * 50)
    >>> proba = np.where(np.arange(2) == labels[:, None], 0.95, 0.05)
    >>> proba[[3, 60]] = proba[[3, 60]][:, ::-1]  # two images the model puts in the other class
    >>> found = find_label_issues(labels, proba)
    >>> np.flatnonzero(found.is_issue).tolist(), found.suggested[[3, 60]].tolist()
    ([3, 60], [1, 0])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cellkit.errors import CellkitError, DataError
from cellkit.quality._issue_base import CheckContext, IssueType

__all__ = ["LABEL_OPTION", "LabelIssue", "LabelIssues", "find_label_issues", "probabilities_for"]

#: The :class:`~cellkit.quality._issue_base.CheckContext` option that carries the
#: out-of-fold probabilities, aligned with the images (``find_issues(label_probabilities=...)``).
LABEL_OPTION = "label_probabilities"


@dataclass(frozen=True)
class LabelIssues:
    """What :func:`find_label_issues` found, one entry per image.

    Attributes:
        is_issue: ``bool``: likely mislabelled (cleanlab's ``find_label_issues``).
        score: the label quality (self-confidence: the probability of the given label).
        suggested: the most likely class.
    """

    is_issue: np.ndarray
    score: np.ndarray
    suggested: np.ndarray


def _cleanlab() -> Any:
    try:
        import cleanlab.filter
        import cleanlab.rank
    except ImportError:
        raise CellkitError('finding label errors needs cleanlab: pip install "cellkit[labels]"') from None
    return cleanlab


def find_label_issues(labels: np.ndarray, probabilities: np.ndarray) -> LabelIssues:
    """Likely label errors among ``labels`` given out-of-fold ``probabilities`` ``(n, k)``.

    Raises:
        ValueError: shapes that do not match, or probabilities that are not ``[0, 1]``.
        CellkitError: cleanlab is not installed (the message says how to install it).
    """
    labels = np.asarray(labels)
    proba = np.asarray(probabilities, dtype=np.float64)
    if proba.ndim != 2 or labels.shape != (proba.shape[0],) or proba.shape[1] < 2:
        raise ValueError(f"`probabilities` must be (n, k >= 2) for n labels. Received: probabilities.shape="
                         f"{proba.shape}, labels.shape={labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= proba.shape[1] or not np.isfinite(proba).all()
                        or proba.min() < 0 or proba.max() > 1 + 1e-6):
        raise ValueError("`labels` must be class indices of `probabilities`, whose entries must be in [0, 1]")
    labels = labels.astype(np.int64)
    proba = proba / np.maximum(proba.sum(axis=1, keepdims=True), 1e-12)
    cleanlab = _cleanlab()
    present = np.unique(labels)
    if present.size < 2:
        return LabelIssues(np.zeros(labels.size, bool), proba[np.arange(labels.size), labels],
                           np.argmax(proba, axis=1))
    # cleanlab wants every class of `proba` among the labels: work on the classes present
    sub = proba[:, present] / np.maximum(proba[:, present].sum(axis=1, keepdims=True), 1e-12)
    code = np.searchsorted(present, labels)
    # n_jobs=1: no multiprocessing pool (it forks, and find_issues runs the checks in threads)
    is_issue = np.asarray(cleanlab.filter.find_label_issues(code, sub, filter_by="prune_by_noise_rate", n_jobs=1),
                          bool)
    score = np.asarray(cleanlab.rank.get_label_quality_scores(code, sub, method="self_confidence"), np.float64)
    return LabelIssues(is_issue, score, np.argmax(proba, axis=1))


def probabilities_for(ids: np.ndarray, cv: Any, source: Any = None) -> np.ndarray:
    """The out-of-fold probabilities of :class:`~cellkit.train.cross_validation.CrossValidation`
    ``cv`` in the order of ``ids``; :class:`~cellkit.errors.DataError` when an image has none."""
    where = {str(i): j for j, i in enumerate(cv.ids)}
    missing = [str(i) for i in ids if str(i) not in where]
    if missing:
        raise DataError(f"{len(missing)} images have no out-of-fold prediction in {cv.out} (first: {missing[0]!r}); "
                        "expected the cross-validation of these very images", path=source)
    return cv.probabilities[[where[str(i)] for i in ids]]


class LabelIssue(IssueType):
    """Likely label errors (module docstring); needs out-of-fold probabilities and labels."""

    name = "label"
    description = "likely label errors (confident learning on out-of-fold probabilities)"
    removed_by_default = False
    needs = (LABEL_OPTION,)

    @property
    def columns(self) -> tuple[str, ...]:
        return ("label_score", "is_label_issue", "label_suggested")

    def prepare(self, context: CheckContext) -> None:
        if context.options.get(LABEL_OPTION) is not None:
            _cleanlab()  # imported in the calling thread

    def check(self, images: np.ndarray, context: CheckContext) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        proba = context.options.get(LABEL_OPTION)
        labels = context.options.get("labels")
        if proba is None or labels is None:
            raise DataError("the label check needs labelled images and their out-of-fold probabilities "
                            "(expected --labels-from CV_FOLDER on labelled data)")
        if len(proba) != len(images) or len(labels) != len(images):
            raise ValueError(f"{len(proba)} probabilities and {len(labels)} labels for {len(images)} images")
        found = find_label_issues(labels, proba)
        columns = {"label_score": found.score, "is_label_issue": found.is_issue,
                   "label_suggested": found.suggested.astype(np.int64)}
        return columns, {"label_method": "cleanlab find_label_issues (prune_by_noise_rate), self-confidence"}

    def flagged(self, report: Any, strong_only: bool = False) -> np.ndarray:
        return report.columns["is_label_issue"].astype(bool)

    def ranking(self, report: Any) -> np.ndarray:
        score = report.columns["label_score"]
        flagged = self.flagged(report)
        return np.lexsort((score, ~flagged))  # flagged first, least likely label first

    def setting(self, report: Any) -> str:
        return "confident learning on out-of-fold probabilities"

    def _names(self, report: Any, index: int) -> tuple[str, str]:
        names = list(report.class_names or [])
        given = int(report.columns["label"][index]) if "label" in report.columns else -1
        suggested = int(report.columns["label_suggested"][index])
        name = (lambda c: names[c] if 0 <= c < len(names) else str(c))  # noqa: E731
        return name(given), name(suggested)

    def describe(self, report: Any, index: int) -> str:
        given, suggested = self._names(report, index)
        return f"given {given}, likely {suggested} (p(given) {report.columns['label_score'][index]:.3f})"

    def caption(self, report: Any, index: int) -> str:
        given, suggested = self._names(report, index)
        return f"{given[:5]}>{suggested[:5]}"
