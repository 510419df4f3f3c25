"""Dataset quality: superposed images, colour-filtered images and near-duplicates.

Scores everywhere in this package follow one direction (cleanvision's and
scikit-learn's): values in ``[0, 1]``, **lower = more likely an issue**; ``predict``
returns ``+1`` for a clean image and ``-1`` for an issue.

Example:
    >>> import cellkit
    >>> from cellkit.quality import find_issues
    >>> report = find_issues(cellkit.load("sample"), quiet=True)  # doctest: +SKIP
    >>> sorted(report.summary()["issues"])  # doctest: +SKIP
    ['color_filter', 'duplicates', 'superposition']
"""

from cellkit.quality.color import ColorFilterDetector, color_features
from cellkit.quality.duplicates import DEFAULT_RADIUS, duplicate_groups, near_duplicate_pairs, perceptual_hash
from cellkit.quality.features import edge_features, spectral_features, superposition_features
from cellkit.quality.montage import make_montage, save_montage
from cellkit.quality.report import ISSUE_TYPES, IssueReport, find_issues
from cellkit.quality.superposition import SuperpositionDetector

__all__ = [
    "DEFAULT_RADIUS",
    "ISSUE_TYPES",
    "ColorFilterDetector",
    "IssueReport",
    "SuperpositionDetector",
    "color_features",
    "duplicate_groups",
    "edge_features",
    "find_issues",
    "make_montage",
    "near_duplicate_pairs",
    "perceptual_hash",
    "save_montage",
    "spectral_features",
    "superposition_features",
]
