"""The two shapes of an issue type: :class:`IssueType` and :class:`ScoredIssue`, and :class:`CheckContext`.

Public as :mod:`cellkit.quality.issue_types`, which holds the registry and the built-in types
(see its docstring): a new issue type subclasses one of these classes there or in a module of
its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from cellkit.data.dataset import Dataset
from cellkit.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    from cellkit.quality.report import IssueReport

__all__ = ["MIN_DETECTOR_IMAGES", "CheckContext", "IssueType", "ScoredIssue"]

#: Fewest images the fitted detectors (superposition, colour filter) fit on.
MIN_DETECTOR_IMAGES = 20


@dataclass
class CheckContext:
    """What :func:`~cellkit.quality.report.find_issues` passes to every issue type's ``check``.

    Attributes:
        batch_size: images per batch (bounds memory).
        random_state: seed of the detectors' self-supervision.
        detectors: detectors given by the caller, by issue type (fitted: used as they are;
            unfitted: fitted on the images).
        options: issue-type specific settings (``duplicate_radius``, ``invariant_duplicates``).
    """

    batch_size: int = 1024
    random_state: int = 0
    detectors: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


class IssueType:
    """One kind of data-quality issue. Subclass it, then :func:`register_issue_type`.

    Class attributes: ``name`` (the issue type's name in reports, ``--remove`` and file
    names), ``description`` (one line), ``removed_by_default`` (whether ``cellkit clean``
    removes it without ``--remove``), ``needs`` (the :attr:`CheckContext.options` it cannot
    check without: ``find_issues`` checks it by default only when they are given).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    removed_by_default: ClassVar[bool] = True
    needs: ClassVar[tuple[str, ...]] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        """The report columns this issue type always writes."""
        raise NotImplementedError

    def check_input(self, dataset: Dataset) -> None:
        """:class:`~cellkit.errors.DataError` if the images cannot be checked (default: any can)."""

    def prepare(self, context: CheckContext) -> None:
        """Run in the calling thread before :meth:`check`, which may run in another thread:
        import what the check imports (two threads importing one package at once can see it
        half-initialised) and fill in ``context`` (default: nothing)."""

    def check(self, images: np.ndarray, context: CheckContext) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Check ``images``: the columns to add to the report and the parameters to record."""
        raise NotImplementedError

    def flagged(self, report: IssueReport, strong_only: bool = False) -> np.ndarray:
        """``bool`` ``(n,)``: the images with this issue (``strong_only``: its strong ones)."""
        raise NotImplementedError

    def ranking(self, report: IssueReport) -> np.ndarray:
        """Image indices, most suspicious first (the montage's order)."""
        raise NotImplementedError

    def setting(self, report: IssueReport) -> str:
        """What the printed report says of the setting (threshold, radius, groups...)."""
        raise NotImplementedError

    def describe(self, report: IssueReport, index: int) -> str:
        """One image's value as printed in the report (``score 0.123``, ``group 4``)."""
        raise NotImplementedError

    def caption(self, report: IssueReport, index: int) -> str:
        """One image's caption under it in the montage (short: about 12 characters)."""
        return self.describe(report, index)

    def summary(self, report: IssueReport) -> dict[str, Any] | None:
        """Extra figures for ``IssueReport.summary()[name]`` (``None``: none)."""
        return None


class ScoredIssue(IssueType):
    """An issue scored per image by a detector with scikit-learn's outlier surface.

    Subclasses set ``name`` and implement :meth:`default_detector`. A detector with a
    ``strength(images)`` method, a ``strong_threshold`` and (after ``fit``) a
    ``training_strength_`` also fills ``{name}_strength``; then ``strong_only`` keeps the
    flagged images at or above the threshold.
    """

    def default_detector(self, context: CheckContext) -> Any:
        """The detector to fit when the caller gives none."""
        raise NotImplementedError

    @property
    def columns(self) -> tuple[str, ...]:
        return (f"{self.name}_score", f"is_{self.name}_issue")

    def check_input(self, dataset: Dataset) -> None:
        from cellkit.quality.features import MIN_SIZE

        n, h, w = len(dataset), int(dataset.images.shape[1]), int(dataset.images.shape[2])
        if n < MIN_DETECTOR_IMAGES:
            raise DataError(
                f"{n} images are too few for the quality detectors (expected at least {MIN_DETECTOR_IMAGES})",
                path=dataset.source,
            )
        if h < MIN_SIZE or w < MIN_SIZE or h % 8 or w % 8:
            raise DataError(
                f"images of {h}x{w} (HxW) are too small for the quality detectors (expected at least "
                f"{MIN_SIZE}x{MIN_SIZE} with sides divisible by 8; pass --size {max(MIN_SIZE, h + -h % 8)}x"
                f"{max(MIN_SIZE, w + -w % 8)} to resize them)",
                path=dataset.source,
            )

    def prepare(self, context: CheckContext) -> None:
        if self.name not in context.detectors:  # the detector's modules imported here
            context.detectors[self.name] = self.default_detector(context)

    def check(self, images: np.ndarray, context: CheckContext) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        det = context.detectors.get(self.name)
        if det is None:
            det = self.default_detector(context)
        fitted_here = not hasattr(det, "threshold_")
        scores = None
        if fitted_here:
            det.fit(images)
            scores = getattr(det, "training_scores_", None)
        if scores is None or len(scores) != len(images):
            scores = det.score_samples(images)
        scores = np.asarray(scores, dtype=np.float64)
        threshold = float(det.threshold_)
        columns = {f"{self.name}_score": scores, f"is_{self.name}_issue": scores < threshold}
        params: dict[str, Any] = {f"{self.name}_threshold": threshold, f"{self.name}_detector": repr(det)}
        if hasattr(det, "strength") and hasattr(det, "strong_threshold"):
            # Fitted on these very images: each image left out of its own neighbours.
            strength = getattr(det, "training_strength_", None) if fitted_here else None
            if strength is None or len(strength) != len(images):
                strength = det.strength(images)
            columns[f"{self.name}_strength"] = np.asarray(strength, dtype=np.float64)
            params[f"{self.name}_strong_threshold"] = float(det.strong_threshold)
        return columns, params

    def has_strength(self, report: IssueReport) -> bool:
        return f"{self.name}_strength" in report.columns and f"{self.name}_strong_threshold" in report.parameters

    def strong(self, report: IssueReport) -> np.ndarray:
        if not self.has_strength(report):
            raise ValueError(f"issue {self.name!r} has no strength in this report. Received: kind={self.name!r}")
        return report.columns[f"{self.name}_strength"] >= float(report.parameters[f"{self.name}_strong_threshold"])

    def flagged(self, report: IssueReport, strong_only: bool = False) -> np.ndarray:
        mask = report.columns[f"is_{self.name}_issue"].astype(bool)
        return mask & self.strong(report) if strong_only and self.has_strength(report) else mask

    def ranking(self, report: IssueReport) -> np.ndarray:
        return np.argsort(report.columns[f"{self.name}_score"], kind="stable")

    def setting(self, report: IssueReport) -> str:
        text = f"threshold {report.parameters.get(f'{self.name}_threshold', float('nan')):.3g}"
        extra = self.summary(report)
        if extra:
            text += (
                f"; {extra['n_strong']} strong, {extra['n_weak']} weak "
                f"(strength >= {extra['strong_threshold_percent']:g}%)"
            )
        return text

    def describe(self, report: IssueReport, index: int) -> str:
        return f"score {report.columns[f'{self.name}_score'][index]:.3f}"

    def caption(self, report: IssueReport, index: int) -> str:
        cols = report.columns
        mark = "!" if cols[f"is_{self.name}_issue"][index] else " "
        text = f"{mark}{cols[f'{self.name}_score'][index]:.3f}"
        if f"{self.name}_strength" in cols:
            return text + f" s{cols[f'{self.name}_strength'][index]:.1f}"
        return text + f" #{int(index)}"

    def summary(self, report: IssueReport) -> dict[str, Any] | None:
        if not self.has_strength(report):
            return None
        flagged = self.flagged(report)
        n_strong = int((flagged & self.strong(report)).sum())
        return {
            "n_strong": n_strong,
            "n_weak": int(flagged.sum()) - n_strong,
            "strong_threshold_percent": float(report.parameters[f"{self.name}_strong_threshold"]),
        }
