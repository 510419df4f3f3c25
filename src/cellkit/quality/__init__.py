"""Dataset quality: superposed images, colour-filtered images and near-duplicates.

Scores everywhere in this package follow one direction (cleanvision's and
scikit-learn's): values in ``[0, 1]``, **lower = more likely an issue**; ``predict``
returns ``+1`` for a clean image and ``-1`` for an issue. The issue types live in one
registry (:mod:`cellkit.quality.issue_types`); names are imported on first use, so the
command line reads the registry without loading the detectors.

Example:
    >>> import cellkit
    >>> from cellkit.quality import find_issues, issue_type_names
    >>> issue_type_names()
    ('superposition', 'color_filter', 'duplicates', 'label')
    >>> report = find_issues(cellkit.load("sample"), issues="duplicates", quiet=True)
    >>> report.summary()["issues"]
    {'duplicates': 0}
"""

from __future__ import annotations

from cellkit._lazy import lazy_names

#: Public names, by the module that defines them (imported on first use).
_LAZY: dict[str, str] = {
    "ColorFilterDetector": "cellkit.quality.color",
    "color_features": "cellkit.quality.color",
    "DEFAULT_RADIUS": "cellkit.quality.duplicates",
    "duplicate_groups": "cellkit.quality.duplicates",
    "near_duplicate_pairs": "cellkit.quality.duplicates",
    "perceptual_hash": "cellkit.quality.duplicates",
    "edge_features": "cellkit.quality.features",
    "spectral_features": "cellkit.quality.features",
    "superposition_features": "cellkit.quality.features",
    "IssueType": "cellkit.quality.issue_types",
    "ScoredIssue": "cellkit.quality.issue_types",
    "get_issue_type": "cellkit.quality.issue_types",
    "issue_type_names": "cellkit.quality.issue_types",
    "register_issue_type": "cellkit.quality.issue_types",
    "default_issue_types": "cellkit.quality.issue_types",
    "LabelIssues": "cellkit.quality.labels",
    "find_label_issues": "cellkit.quality.labels",
    "make_montage": "cellkit.quality.montage",
    "save_montage": "cellkit.quality.montage",
    "ISSUE_TYPES": "cellkit.quality.report",
    "IssueReport": "cellkit.quality.report",
    "find_issues": "cellkit.quality.report",
    "SuperpositionDetector": "cellkit.quality.superposition",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
