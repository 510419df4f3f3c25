"""Find colour-filtered images without labels: colour statistics and a self-supervised detector.

A colour filter multiplies each channel by a gain: in log space every pixel's colour
moves by the same vector, the structure of the image stays. A superposition,
``(1 - a) * cell + a * overlay``, also moves colours, but unevenly (more in the dark
stain than in the bright background, and following the overlay's own pattern). Both
leave the image's colour statistics far from the usual ones, so a plain outlier test on
colour would flag superpositions too.

:class:`ColorFilterDetector` therefore learns what *filtered* looks like on the user's
own data. At ``fit`` time it

1. computes :func:`color_features` for every image and standardises them robustly
   (median and MAD);
2. keeps as references the images whose background colour is typical (robust z-score
   of the background log-chroma within ``max_chroma_z``): this drops filtered and
   strongly tinted images, whatever their number;
3. synthesises positives, colour-filtered copies of references
   (:func:`cellkit.corrupt.color.random_filter_gains`), and hard negatives,
   superposed copies (:func:`cellkit.corrupt.superpose.random_superpositions`), both
   through the same JPEG round trip as the data usually had;
4. indexes references, superpositions and filtered copies in a k-d tree.

An image's score is the kernel-weighted share of *unfiltered* examples among its
``n_neighbors`` nearest neighbours in feature space. (The colour statistics are computed in
:mod:`cellkit.quality._color_features`, the synthetic examples of step 3 made in
:mod:`cellkit.quality._color_examples`.)

Scores follow scikit-learn's outlier detectors: ``score_samples`` is in ``[0, 1]`` and
**lower means more likely colour-filtered**; ``decision_function = score_samples -
threshold_`` is negative for issues; ``predict`` gives ``+1`` (clean) or ``-1``
(colour-filtered).

**Strength.** A flag says "coloured like a filter"; it does not say how unusual that colour
is *for this dataset*. pbc96 holds 388 images (2.7%) from another acquisition whose
background is naturally grey-blue, and their colour is exactly what a mild blue filter
makes. :meth:`ColorFilterDetector.strength` is how far an image's background colour sits
from the dataset's own colour distribution: the distance, in percent of a channel gain, from
its background log-chroma to that of its k-th nearest fitted image, with k a fixed share
(``strength_share``, 0.15%) of the fitted images, so that the figure does not depend on the
dataset's size. A colour that a group of images shares (an acquisition, a stain batch) is
near its neighbours and weak; a cast that few other images share is strong.
:meth:`ColorFilterDetector.is_strong` compares it with ``strong_threshold`` (1%). Measured
on the 14,528 pbc96 images with 2% or 10% of them given random casts (``python -m pytest
benchmarks/test_bench_color_duplicates.py -k strength --full``,
docs/results/color_filter_strength.md): at most 1 of the 388 natural blue-cast images is
strong, 96-97% of the cast images are flagged and strong, and "flagged and strong" has
precision 0.996-1.000 where every flag has 0.42-0.78. What no colour statistic tells apart:
one filter applied alike to many images forms a group of its own and reads as weak, as a
second acquisition would.

Measured on pbc96 corrupted by :func:`cellkit.corrupt.corrupt_dataset` (13% superposed,
2% blue-filtered, seeds 0-2), at the default threshold: precision 0.988-0.991 and recall
0.997-1.000, counting as positives the synthetic filters and pbc96's own 388 blue-cast
images; the few false positives are superpositions of flat coloured cartoons or of
blue-cast cells (6-8 of about 1,890 superposed images).

Example:
    >>> import numpy as np
    >>> from cellkit.corrupt.color import BLUE_FILTER_GAINS, color_filter
    >>> from cellkit.quality.color import ColorFilterDetector, color_features
    >>> rng = np.random.default_rng(0)
    >>> cells = np.clip(rng.normal([230, 200, 190], 25, (40, 32, 32, 3)), 0, 255).astype(np.uint8)
    >>> color_features(cells).shape
    (40, 10)
    >>> det = ColorFilterDetector(random_state=0).fit(cells)
    >>> det.predict(color_filter(cells[:3], BLUE_FILTER_GAINS)).tolist()
    [-1, -1, -1]
    >>> det.predict(cells[:3]).tolist()
    [1, 1, 1]
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from cellkit._random import as_generator
from cellkit.corrupt.color import FILTER_KINDS
from cellkit.corrupt.overlays import OVERLAY_KINDS
from cellkit.corrupt.superpose import check_alpha_range, check_kinds
from cellkit.data.dataset import image_batch
from cellkit.quality._color_examples import filtered_copies, superposed_copies
from cellkit.quality._color_features import COLOR_FEATURE_NAMES, background_chroma, color_features
from cellkit.quality._detector import IssueDetectorMixin

__all__ = ["COLOR_FEATURE_NAMES", "ColorFilterDetector", "background_chroma", "color_features"]

_SOFT_CLIP = 30.0  # robust z-scores are squashed smoothly to about +-30
_MIN_IMAGES = 10


class ColorFilterDetector(IssueDetectorMixin):
    """Self-supervised detector of colour-filtered images (no labels needed).

    Args:
        contamination: ``"auto"``: flag images whose score is below 0.5 (most of their
            neighbours are filtered examples); a float in ``(0, 0.5]``: flag that fraction
            of the images seen by ``fit``.
        threshold: an explicit threshold on :meth:`score_samples` (overrides
            ``contamination``).
        filter_kinds: kinds of synthetic filters (:data:`cellkit.corrupt.color.FILTER_KINDS`):
            ``("blue",)`` finds the blue casts of the seed dataset; add ``"any"`` to look for
            every colour cast (more superpositions are then mistaken for filters).
        alpha: overlay weights of the synthetic superpositions (hard negatives).
        overlay_kinds: overlay kinds of the synthetic superpositions.
        synthetic_ratio: synthetic filtered (and as many superposed) images per fitted
            image, at least ``min_synthetic`` and at most ``max_synthetic`` of each.
        min_synthetic, max_synthetic: bounds on the number of synthetic images of each kind.
        jpeg_quality: JPEG round trip applied to the synthetic images (``None``: none),
            to look like the user's JPEG-decoded images.
        superposed_ratio: synthetic superpositions (hard negatives) per synthetic
            filtered image.
        n_neighbors: neighbours that vote.
        max_chroma_z: reference images have a background log-chroma within this robust
            z-score (Euclidean, over ``log R/B`` and ``log G/B``) of the median.
        strength_share: :meth:`strength` measures the distance to the k-th nearest fitted
            image, ``k = ceil(strength_share * n_fitted)`` (at least 2): a colour shared by
            this share of the images counts as the dataset's own.
        strong_threshold: :meth:`is_strong` is true from this strength (percent) on.
        batch_size: images per batch when computing features (bounds memory).
        random_state: seed of the synthesis.

    Fitted attributes:
        threshold_: the decision threshold on :meth:`score_samples`.
        center_, scale_: median and scaled MAD of the features of the fitted images.
        chroma_center_, chroma_scale_: the same for the background log-chroma.
        n_references_: fitted images kept as references (typical background colour).
        n_synthetic_: synthetic filtered images (as many synthetic superpositions).
        training_scores_: :meth:`score_samples` of the fitted images.
        training_strength_: :meth:`strength` of the fitted images (each image's own colour
            left out of its neighbours).
        strength_neighbors_: the neighbour :meth:`strength` measures to.
        image_shape_: ``(h, w, 3)`` of the fitted images.
        fit_time_: seconds spent in ``fit``.
    """

    def __init__(
        self,
        contamination: str | float = "auto",
        threshold: float | None = None,
        *,
        filter_kinds: Sequence[str] = ("blue",),
        alpha: Sequence[float] = (0.15, 0.7),
        overlay_kinds: Sequence[str] = OVERLAY_KINDS,
        synthetic_ratio: float = 0.5,
        min_synthetic: int = 512,
        max_synthetic: int = 4096,
        jpeg_quality: int | None = 90,
        superposed_ratio: float = 2.0,
        n_neighbors: int = 20,
        max_chroma_z: float = 6.0,
        strength_share: float = 0.0015,
        strong_threshold: float = 1.0,
        batch_size: int = 1024,
        random_state: int | np.random.Generator | None = 0,
    ) -> None:
        self.contamination = contamination
        self.threshold = threshold
        self.filter_kinds = filter_kinds
        self.alpha = alpha
        self.overlay_kinds = overlay_kinds
        self.synthetic_ratio = synthetic_ratio
        self.min_synthetic = min_synthetic
        self.max_synthetic = max_synthetic
        self.jpeg_quality = jpeg_quality
        self.superposed_ratio = superposed_ratio
        self.n_neighbors = n_neighbors
        self.max_chroma_z = max_chroma_z
        self.strength_share = strength_share
        self.strong_threshold = strong_threshold
        self.batch_size = batch_size
        self.random_state = random_state

    # -- parameters ---------------------------------------------------------------------
    _PARAMS = (
        "contamination threshold filter_kinds alpha overlay_kinds synthetic_ratio min_synthetic "
        "max_synthetic jpeg_quality superposed_ratio n_neighbors max_chroma_z strength_share "
        "strong_threshold batch_size random_state"
    ).split()

    def _validate_params(self) -> None:
        self._validate_contamination_and_threshold()
        kinds = (self.filter_kinds,) if isinstance(self.filter_kinds, str) else tuple(self.filter_kinds)
        if not kinds or any(k not in FILTER_KINDS for k in kinds):
            raise ValueError(
                f"`filter_kinds` must be a non-empty subset of {FILTER_KINDS}. Received: filter_kinds={self.filter_kinds!r}"
            )
        check_alpha_range(self.alpha)
        check_kinds(self.overlay_kinds)
        for name, low in (
            ("min_synthetic", 1),
            ("max_synthetic", 1),
            ("n_neighbors", 1),
            ("batch_size", 1),
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
                raise ValueError(f"`{name}` must be an integer >= {low}. Received: {name}={v!r}")
        if self.min_synthetic > self.max_synthetic:
            raise ValueError(
                "`min_synthetic` must be <= `max_synthetic`. "
                f"Received: min_synthetic={self.min_synthetic!r}, max_synthetic={self.max_synthetic!r}"
            )
        r = self.synthetic_ratio
        if isinstance(r, bool) or not isinstance(r, (float, int)) or not 0 < r <= 4:
            raise ValueError(f"`synthetic_ratio` must be in (0, 4]. Received: synthetic_ratio={r!r}")
        sr = self.superposed_ratio
        if isinstance(sr, bool) or not isinstance(sr, (float, int)) or not 0 <= sr <= 8:
            raise ValueError(f"`superposed_ratio` must be in [0, 8]. Received: superposed_ratio={sr!r}")
        for name in ("max_chroma_z", "strong_threshold"):
            z = getattr(self, name)
            if isinstance(z, bool) or not isinstance(z, (float, int)) or not z > 0:
                raise ValueError(f"`{name}` must be a number > 0. Received: {name}={z!r}")
        share = self.strength_share
        if isinstance(share, bool) or not isinstance(share, (float, int)) or not 0 < share < 0.5:
            raise ValueError(f"`strength_share` must be in (0, 0.5). Received: strength_share={share!r}")
        q = self.jpeg_quality
        if q is not None and (
            isinstance(q, bool) or not isinstance(q, (int, np.integer)) or not 1 <= q <= 100
        ):
            raise ValueError(
                f"`jpeg_quality` must be an integer in [1, 100] or None. Received: jpeg_quality={q!r}"
            )

    # -- fitting ------------------------------------------------------------------------
    def _features(self, images: np.ndarray) -> np.ndarray:
        bs = int(self.batch_size)
        parts = [color_features(images[s : s + bs]) for s in range(0, images.shape[0], bs)]
        return np.concatenate(parts, axis=0) if parts else color_features(images[:0])

    def _embed(self, features: np.ndarray) -> np.ndarray:
        z = (features - self.center_) / self.scale_
        return np.tanh(z / _SOFT_CLIP) * _SOFT_CLIP

    def fit(self, images: Any, y: None = None) -> ColorFilterDetector:
        """Learn what colour-filtered images look like in ``images`` (Dataset or uint8 array).

        No labels: ``y`` is ignored (present for API consistency). Returns ``self``.
        """
        self._validate_params()
        start = time.perf_counter()
        images = image_batch(images)
        n = images.shape[0]
        if n < _MIN_IMAGES:
            raise ValueError(
                f"`images` must hold at least {_MIN_IMAGES} images to fit the detector. Received: {n} images"
            )
        rng = as_generator(self.random_state, "random_state")
        feats = self._features(images)
        self.center_ = np.median(feats, axis=0)
        self.scale_ = np.maximum(1.4826 * np.median(np.abs(feats - self.center_), axis=0), 1e-4)
        chroma = background_chroma(feats)
        self.chroma_center_ = np.median(chroma, axis=0)
        self.chroma_scale_ = np.maximum(
            1.4826 * np.median(np.abs(chroma - self.chroma_center_), axis=0), 1e-4
        )
        chroma_z = np.sqrt((((chroma - self.chroma_center_) / self.chroma_scale_) ** 2).sum(axis=1))
        refs = np.flatnonzero(chroma_z <= self.max_chroma_z)
        if refs.size < _MIN_IMAGES:  # odd data: keep the most typical images anyway
            refs = np.sort(np.argsort(chroma_z, kind="stable")[:_MIN_IMAGES])

        m = int(np.clip(round(self.synthetic_ratio * n), self.min_synthetic, self.max_synthetic))
        kinds = (self.filter_kinds,) if isinstance(self.filter_kinds, str) else tuple(self.filter_kinds)
        storage = {"jpeg_quality": self.jpeg_quality, "batch_size": self.batch_size, "features": self._features}
        x_pos = filtered_copies(images, refs, m, kinds, rng, **storage)
        m_sup = int(round(self.superposed_ratio * m))
        x_sup = superposed_copies(images[refs], m_sup, rng, alpha=self.alpha, overlay_kinds=self.overlay_kinds, **storage)
        x = np.concatenate([feats[refs], x_sup, x_pos])
        self._labels = np.r_[np.zeros(refs.size + m_sup), np.ones(m)]
        self._tree = cKDTree(self._embed(x))
        self.n_references_ = int(refs.size)
        self.n_synthetic_ = m
        self.image_shape_ = tuple(images.shape[1:])
        self.training_scores_ = self._score_features(feats)
        self._chroma_tree = cKDTree(chroma)
        self.strength_neighbors_ = int(min(max(2, np.ceil(self.strength_share * n)), n - 1))
        self.training_strength_ = self._strength_of_chroma(chroma, fitted=True)
        if self.threshold is not None:
            self.threshold_ = float(self.threshold)
        elif self.contamination == "auto":
            self.threshold_ = 0.5
        else:
            self.threshold_ = float(np.quantile(self.training_scores_, float(self.contamination)))
        self.fit_time_ = time.perf_counter() - start
        return self

    # -- scoring ------------------------------------------------------------------------
    def _score_features(self, features: np.ndarray) -> np.ndarray:
        if features.shape[0] == 0:
            return np.zeros(0)
        k = min(int(self.n_neighbors), self._tree.n - 1)
        dist, idx = self._tree.query(self._embed(features), k=k + 1)
        # Weights fall linearly to 0 at the (k+1)-th neighbour: the score is continuous
        # in the features (no jump when two neighbours swap ranks).
        radius = dist[:, -1:]
        wgt = np.where(radius > 0, 1.0 - dist[:, :-1] / np.where(radius > 0, radius, 1.0), 1.0)
        total = wgt.sum(axis=1)
        p_filtered = (wgt * self._labels[idx[:, :-1]]).sum(axis=1) / np.where(total > 0, total, 1.0)
        return np.clip(1.0 - p_filtered, 0.0, 1.0)

    def score_samples(self, images: Any) -> np.ndarray:
        """Score of each image, ``(n,)`` float in [0, 1]; lower = more likely colour-filtered."""
        self._check_fitted()
        images = image_batch(images)
        return self._score_features(self._features(images))

    def _strength_of_chroma(self, chroma: np.ndarray, fitted: bool = False) -> np.ndarray:
        if chroma.shape[0] == 0:
            return np.zeros(0)
        k = self.strength_neighbors_ + int(fitted)  # a fitted image is its own nearest neighbour
        dist, _ = self._chroma_tree.query(chroma, k=[k])
        return 100.0 * dist[:, 0]

    def strength(self, images: Any) -> np.ndarray:
        """How far each image's colour sits from the fitted dataset's, ``(n,)`` float64, percent.

        The Euclidean distance between the image's background log-chroma
        (:func:`background_chroma`) and that of its ``strength_neighbors_``-th nearest fitted
        image, times 100 (about the percent by which a channel gain differs). For the fitted
        images themselves, use :attr:`training_strength_` (which leaves each image out).
        """
        self._check_fitted()
        return self._strength_of_chroma(background_chroma(self._features(image_batch(images))))

    def is_strong(self, strength: np.ndarray) -> np.ndarray:
        """``bool`` mask: strengths at or above ``strong_threshold`` (a cast few images share)."""
        self._check_fitted()
        return np.asarray(strength, dtype=np.float64) >= float(self.strong_threshold)

    def fit_predict(self, images: Any, y: None = None) -> np.ndarray:
        """``fit(images)``, then the prediction for the fitted images (scores kept from the fit)."""
        self.fit(images)
        return np.where(self.training_scores_ - self.threshold_ < 0, -1, 1)
