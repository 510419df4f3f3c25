"""Find superposed images without labels: a self-supervised detector.

A superposed image is ``(1 - a) * cell + a * overlay``. :class:`SuperpositionDetector`
learns what that looks like *on the user's own data*: it superposes overlays of eight
families (:data:`~cellkit.corrupt.overlays.OVERLAY_FAMILIES`: photographs, drawings, the
user's other images, flat cartoons, text, graphics, microscopy, faces) on the user's images
with ``a`` drawn from a range, stores positives and negatives alike at a random quality
(lossless or JPEG, :data:`TRAINING_STORAGE`; :mod:`cellkit.quality._superposition_examples`),
and trains a small neural network (:mod:`cellkit.quality._mlp`) on the features of
:mod:`cellkit.quality.features` (spectrum, edges, colour, stain space) to tell them apart.

The user's images may already contain superpositions (the seed dataset had ~13%, some
with one overlay reused many times), which would teach the model that they are clean.
So ``fit`` never vouches for an image with a model trained on it:

1. the copies of a reused overlay are found by comparing every image with every other one
   (:mod:`cellkit.quality._reused_overlays`): they are never negatives, always positives,
   and flagged whatever the classifier says (also on new images carrying the same overlay);
2. four cross-fitted rounds (:mod:`cellkit.quality._cross_fit`) score every user image
   with models that did not see it, the first split by appearance clusters, the next three at
   random (clean images of every appearance are seen again, and wrongly suspected ones are
   re-admitted); each round's suspects are left out of the next round's negatives, and
   confidently suspected images join the positives (this is how the detector learns overlays
   of a kind none of its families draws: they are in the user's data);
3. the final model is trained on all images not suspected against all positives; the
   fraction of images more likely superposed than not estimates the contamination, the
   prior of the score.

How it does on overlay families held out of its training, at every storage:
``docs/results/quality.md`` (:mod:`cellkit.quality.held_out`).

Scores follow scikit-learn's outlier detectors: ``score_samples`` is in ``[0, 1]`` and
**lower means more likely superposed** (it is the estimated probability that the image
is clean); ``decision_function = score_samples - threshold_`` is negative for issues;
``predict`` gives ``+1`` (clean) or ``-1`` (superposed).

Example:
    >>> import cellkit
    >>> from cellkit.corrupt import corrupt_dataset
    >>> from cellkit.quality.superposition import SuperpositionDetector
    >>> corrupted = corrupt_dataset(cellkit.load("sample"), seed=1)
    >>> det = SuperpositionDetector(random_state=0).fit(corrupted.dataset)  # no labels
    >>> flagged = det.predict(corrupted.dataset) == -1
    >>> bool((flagged & corrupted.is_superposed).sum() > 0.8 * corrupted.is_superposed.sum())
    True
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from cellkit._random import as_generator
from cellkit.corrupt.overlays import OVERLAY_FAMILIES
from cellkit.corrupt.superpose import BLEND_MODES, check_alpha_range, check_kinds
from cellkit.data.dataset import image_batch
from cellkit.quality._blas import one_blas_thread
from cellkit.quality._cross_fit import cross_fit
from cellkit.quality._detector import IssueDetectorMixin
from cellkit.quality._folds import cluster_folds, clusters
from cellkit.quality._mlp import MLP, sigmoid
from cellkit.quality._reused_overlays import ReusedOverlaySearch
from cellkit.quality._superposition_examples import training_features
from cellkit.quality.features import features_of_chunk, map_chunks, superposition_features

__all__ = ["AUTO_THRESHOLD", "MAX_TRAIN_IMAGES", "TRAINING_STORAGE", "SuperpositionDetector"]

#: Threshold of ``contamination="auto"``: flag images whose estimated probability of being
#: clean is below 0.35. Measured on held-out overlay families (pbc96, 4,000 images, four
#: family/storage pairs): against the earlier 0.2, recall +2 to +6 points for about -1 point
#: of precision; 0.5 adds recall again but flags over 3% of the clean images of a few hundred
#: (the bundled sample), where the estimate is less sure (benchmarks/test_bench_held_out.py).
AUTO_THRESHOLD = 0.35

#: At most this many overlays are drawn per family for a fit; the other synthetic
#: superpositions reuse them in a random orientation (drawing text and charts is slow).
MAX_DRAWN_OVERLAYS = 256

#: Default ``max_train_images``: a larger dataset is fitted on a random 6,000 of its images and
#: scored whole. On all 14,528 pbc96 images corrupted as in Table 1 (``corrupt_dataset(seed=2024)``)
#: a fit on 5,000 / 8,000 / all images found 0.993 / 0.993 / 0.995 of the superpositions at
#: precision 0.965 / 0.968 / 0.959, and took 8 / 12 / 28 s (2 cores; measured with the earlier
#: ``pseudo_logit=3``, ``refine_rounds=2``): the held-out protocol fits 4,000 images
#: (``docs/results/quality.md``).
MAX_TRAIN_IMAGES = 6000

#: How the training images are stored, one drawn per image: lossless, or JPEG at these
#: qualities. A user's data may be PNG, JPEG of any quality or a mix, so compression must
#: be no cue (trained on JPEG q90 only, recall on PNG data fell to 0.66).
TRAINING_STORAGE: tuple[int | None, ...] = (None, 95, 90, 75, 50)


class SuperpositionDetector(IssueDetectorMixin):
    """Self-supervised detector of superposed images (no labels needed).

    Args:
        contamination: ``"auto"``: flag images whose estimated probability of being
            clean (under the contamination estimated at fit time) is below
            :data:`AUTO_THRESHOLD`; a float in ``(0, 0.5]``: flag that fraction of the
            images seen by ``fit``.
        threshold: an explicit threshold on :meth:`score_samples` (overrides
            ``contamination``).
        alpha: range of overlay weights of the synthetic superpositions.
        overlay_kinds: overlay kinds used for the synthetic superpositions.
        synthetic_ratio: synthetic superpositions per training image.
        jpeg_quality: the storage round trip applied to positives *and* negatives during
            training: a JPEG quality, ``None`` (lossless), or a sequence of them from which
            each image draws one (default :data:`TRAINING_STORAGE`), so that compression is
            no cue.
        color_augment: fraction of the training images (both classes) seen through a
            random colour filter, so that a colour cast (e.g. the blue-filtered images of
            the seed dataset) is no cue for superposition.
        blend_modes: editor layer modes (:data:`~cellkit.corrupt.superpose.BLEND_MODES`:
            multiply, screen, darken, lighten) through which a quarter of the synthetic
            superpositions mix in their overlay instead of plain transparency (at alpha >= 0.35:
            :mod:`cellkit.quality._superposition_examples`); ``()`` (the default): plain
            transparency only. What it changes on blends drawn by a third
            party: ``docs/results/quality_external_blends.md``.
        hidden_units: width of the hidden layer of the classifier.
        l2: L2 penalty of the classifier's weights, per training sample (the weight
            decay is ``l2 / n_samples``: strong for a few hundred images, light for 10k).
        max_iter: L-BFGS iterations per training round.
        max_train_images: at most this many user images, drawn at random, are used for
            training (default :data:`MAX_TRAIN_IMAGES`); every image is scored.
        refine_rounds: cross-fitted rounds at random after the first (clustered) one;
            each re-scores every user image and updates the suspects left out of the
            negatives.
        pseudo_logit: from the second round on, user images whose out-of-fold logit
            exceeds this are also used as positives. With ``refine_rounds``, how far the
            detector adapts to overlays of a kind it never drew: chosen on four held-out
            families (natural, drawn, cells, text) and confirmed on the other four (cartoon,
            graphics, microscopy, faces; 6 storages): 3 rounds at logit 2 against 2 at logit 3
            raised the mean recall at the default threshold from 0.916 to 0.951 (lowest row
            0.738 to 0.848), AUROC 0.9954 to 0.9966, for 0.4 points of precision
            (``benchmarks/probes/held_out_dev_split.py``).
        suspect_logit: user images whose out-of-fold logit exceeds this are left out of
            the next round's negatives.
        batch_size: images per batch when computing features (bounds memory).
        n_jobs: threads used for the features.
        random_state: seed of the synthesis, the split and the initial weights.

    Fitted attributes (about the images used for training: all of them, or a random
    ``max_train_images`` of them):
        threshold_: the decision threshold on :meth:`score_samples`.
        contamination_: estimated fraction of superposed images among those fitted.
        prior_logit_: ``log(contamination_ / (1 - contamination_))``, added to the logit.
        image_shape_: ``(h, w, 3)`` of the fitted images.
        suspects_: ``bool`` mask of the images left out of the final model's negatives.
        n_suspects_: ``suspects_.sum()``.
        oof_logit_: each image's out-of-fold log-odds of superposition (last round).
        n_shared_component_: images flagged as copies of a reused overlay (step 1).
        reused_overlays_: the fitted :class:`~cellkit.quality._reused_overlays.ReusedOverlaySearch`.
        n_pseudo_positives_: images used as positives by the final model.
        n_iter_: L-BFGS iterations of the final model.
        fit_time_: seconds spent in ``fit``.
    """

    def __init__(
        self,
        contamination: str | float = "auto",
        threshold: float | None = None,
        *,
        alpha: Sequence[float] = (0.15, 0.7),
        overlay_kinds: Sequence[str] = OVERLAY_FAMILIES,
        synthetic_ratio: float = 1.0,
        jpeg_quality: int | Sequence[int | None] | None = TRAINING_STORAGE,
        color_augment: float = 0.1,
        blend_modes: Sequence[str] = (),
        hidden_units: int = 16,
        l2: float = 10.0,
        max_iter: int = 100,
        max_train_images: int = MAX_TRAIN_IMAGES,
        refine_rounds: int = 3,
        pseudo_logit: float = 2.0,
        suspect_logit: float = 0.0,
        batch_size: int = 4096,
        n_jobs: int = 2,
        random_state: int | None = 0,
    ) -> None:
        self.contamination = contamination
        self.threshold = threshold
        self.alpha = alpha
        self.overlay_kinds = overlay_kinds
        self.synthetic_ratio = synthetic_ratio
        self.jpeg_quality = jpeg_quality
        self.color_augment = color_augment
        self.blend_modes = blend_modes
        self.hidden_units = hidden_units
        self.l2 = l2
        self.max_iter = max_iter
        self.max_train_images = max_train_images
        self.refine_rounds = refine_rounds
        self.pseudo_logit = pseudo_logit
        self.suspect_logit = suspect_logit
        self.batch_size = batch_size
        self.n_jobs = n_jobs
        self.random_state = random_state

    # -- parameters ---------------------------------------------------------------------
    _FITTED_ATTR = "model_"
    _PARAMS = tuple(
        (
            "contamination threshold alpha overlay_kinds synthetic_ratio jpeg_quality color_augment blend_modes "
            "hidden_units l2 "
            "max_iter max_train_images refine_rounds pseudo_logit suspect_logit batch_size n_jobs random_state"
        ).split()
    )

    def _validate_params(self) -> None:
        self._validate_contamination_and_threshold()
        check_alpha_range(self.alpha)
        check_kinds(self.overlay_kinds)
        modes = self.blend_modes
        if isinstance(modes, str) or not all(isinstance(m, str) and m in BLEND_MODES for m in modes):
            raise ValueError(
                f"`blend_modes` must be a sequence of modes from {tuple(BLEND_MODES)}. Received: blend_modes={modes!r}"
            )
        for name, low in (
            ("refine_rounds", 0),
            ("hidden_units", 1),
            ("max_iter", 1),
            ("max_train_images", 10),
            ("batch_size", 1),
            ("n_jobs", 1),
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
                raise ValueError(f"`{name}` must be an integer >= {low}. Received: {name}={v!r}")
        if not (isinstance(self.synthetic_ratio, (float, int)) and 0 < self.synthetic_ratio <= 4):
            raise ValueError(
                f"`synthetic_ratio` must be in (0, 4]. Received: synthetic_ratio={self.synthetic_ratio!r}"
            )
        if not (isinstance(self.color_augment, (float, int)) and 0 <= self.color_augment <= 1):
            raise ValueError(
                f"`color_augment` must be in [0, 1]. Received: color_augment={self.color_augment!r}"
            )
        for name in ("pseudo_logit", "suspect_logit"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (float, int)):
                raise ValueError(f"`{name}` must be a number. Received: {name}={v!r}")
        q = self.jpeg_quality
        for v in (q,) if q is None or isinstance(q, (int, np.integer)) else tuple(q) or (0,):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 1 <= v <= 100):
                raise ValueError(
                    "`jpeg_quality` must be None, an integer in [1, 100] or a non-empty sequence of them. "
                    f"Received: jpeg_quality={q!r}"
                )
        if not (isinstance(self.l2, (float, int)) and self.l2 >= 0):
            raise ValueError(f"`l2` must be >= 0. Received: l2={self.l2!r}")

    # -- fitting ------------------------------------------------------------------------
    def _features(self, images: np.ndarray) -> np.ndarray:
        parts = [
            superposition_features(images[s : s + self.batch_size], n_jobs=self.n_jobs)
            for s in range(0, images.shape[0], self.batch_size)
        ]
        return np.concatenate(parts, axis=0) if parts else superposition_features(images[:0])

    def _train(self, x_neg: np.ndarray, x_pos: np.ndarray, seed: int) -> MLP:
        """Train a classifier superposed (1) vs clean (0), the two classes weighted equally."""
        x = np.concatenate([x_neg, x_pos])
        y = np.r_[np.zeros(len(x_neg)), np.ones(len(x_pos))]
        weight = np.where(y > 0, 0.5 / max(len(x_pos), 1), 0.5 / max(len(x_neg), 1))
        return MLP(int(self.hidden_units), float(self.l2), int(self.max_iter), seed).fit(x, y, weight)

    def fit(self, images: Any, y: None = None) -> SuperpositionDetector:
        """Learn to find superpositions in ``images`` (a Dataset or uint8 array); no labels.

        ``y`` is ignored (present for API consistency). Returns ``self``. BLAS runs in
        one thread meanwhile (:func:`~cellkit.quality._blas.one_blas_thread`): faster here, and the same fitted
        model whatever the machine's core count.
        """
        self._validate_params()
        start = time.perf_counter()
        with one_blas_thread():
            self._fit(images)
        self.fit_time_ = time.perf_counter() - start
        return self

    def _fit(self, images: Any) -> None:
        images = image_batch(images)
        n = images.shape[0]
        if n < 20:
            raise ValueError(
                f"`images` must hold at least 20 images to fit the detector. Received: {n} images"
            )
        rng = as_generator(self.random_state, "random_state")
        seed = int(rng.integers(0, 2**31 - 1))
        if n > self.max_train_images:
            images = images[np.sort(rng.choice(n, self.max_train_images, replace=False))]
            n = images.shape[0]

        # Positives: superposed copies of the user's images; negatives: the images. Both
        # go through the same colour augmentation and storage round trip.
        x_neg, x_pos, base = training_features(
            images, max(int(round(self.synthetic_ratio * n)), 10), rng, self._features, alpha=self.alpha,
            kinds=self.overlay_kinds, max_drawn=MAX_DRAWN_OVERLAYS, jpeg_quality=self.jpeg_quality,
            color_fraction=self.color_augment, blend_modes=tuple(self.blend_modes),
        )

        # Rounds of cross-fitting (_cross_fit). Round 1 splits by appearance clusters, so that
        # copies of one overlay reused many times fall in the same fold (a model that saw them
        # as "clean" cannot vouch for them), and starts without the images that share a
        # component with many others; later rounds split at random, so that clean images of
        # every appearance are seen again and wrongly suspected ones are re-admitted.
        groups = clusters(x_neg, rng)
        search = ReusedOverlaySearch().fit(images)
        reused = search.flags_  # copies of one overlay: never negatives, always positives
        suspects = reused | (search.z_ > search.z_threshold)
        self.n_shared_component_ = int(reused.sum())
        folds = [cluster_folds(groups, rng)] + [rng.permutation(n) % 2 for _ in range(self.refine_rounds)]
        oof, suspects, pseudo = cross_fit(
            self._train, x_neg, x_pos, base, folds, reused, suspects, seed=seed,
            suspect_logit=self.suspect_logit, pseudo_logit=self.pseudo_logit,
        )
        contamination = float(np.clip(((oof > 0.0) | reused).mean(), 1e-3, 0.5))  # balanced odds: "superposed"

        # Final model: synthetic and pseudo-labelled positives against the images not suspected.
        model = self._train(x_neg[~suspects], np.concatenate([x_pos, x_neg[pseudo]]), seed + 2 * len(folds))

        self.reused_overlays_ = search
        self.model_ = model
        self.contamination_ = contamination
        self.prior_logit_ = float(np.log(contamination / (1.0 - contamination)))
        self.image_shape_ = tuple(images.shape[1:])
        self.n_suspects_ = int(suspects.sum())
        self.n_iter_ = model.n_iter_
        self.suspects_ = suspects
        self.oof_logit_ = oof
        self.n_pseudo_positives_ = int(pseudo.sum())
        if self.threshold is not None:
            self.threshold_ = float(self.threshold)
        elif self.contamination == "auto":
            self.threshold_ = AUTO_THRESHOLD
        else:
            train_scores = self.score_features(x_neg)
            self.threshold_ = float(np.quantile(train_scores, float(self.contamination)))

    # -- scoring ------------------------------------------------------------------------
    def score_features(self, features: np.ndarray, reused_z: np.ndarray | None = None) -> np.ndarray:
        """:meth:`score_samples` from precomputed :func:`~cellkit.quality.features.superposition_features`.

        The probability of being clean under the contamination estimated at fit time:
        ``sigmoid(-(logit + prior_logit_))`` where ``logit`` is the classifier's
        (class-balanced) log-odds of superposition. With ``reused_z`` (the z-scores of
        :meth:`ReusedOverlaySearch.z_scores <cellkit.quality._reused_overlays.ReusedOverlaySearch.z_scores>`),
        images carrying an overlay found reused at fit time score lower still: a z-score at
        the search's threshold maps to :data:`AUTO_THRESHOLD`, higher ones below it.
        """
        self._check_fitted()
        x = np.asarray(features, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.model_.d_:
            raise ValueError(
                f"`features` must have shape (n, {self.model_.d_}). Received: features.shape={x.shape}"
            )
        logit = self.model_.logit(x) + self.prior_logit_
        if reused_z is not None:
            z = np.asarray(reused_z, dtype=np.float64)
            reused_logit = np.log((1 - AUTO_THRESHOLD) / AUTO_THRESHOLD) + (z - self.reused_overlays_.z_threshold)
            logit = np.maximum(logit, reused_logit)
        return sigmoid(-logit)

    def score_samples(self, images: Any) -> np.ndarray:
        """Probability that each image is clean, ``(n,)`` float in [0, 1]; lower = superposed.

        The classifier's score, lowered for images that carry one of the overlays found
        reused at fit time (:meth:`score_features` with ``reused_z``): such an image is
        flagged whatever the classifier says.
        """
        self._check_fitted()
        images = image_batch(images)
        if tuple(images.shape[1:]) != self.image_shape_:
            raise ValueError(
                f"`images` must have the fitted image shape {self.image_shape_}. Received: images.shape={images.shape}"
            )
        if images.shape[0] == 0:
            return self.score_features(superposition_features(images), np.zeros(0, np.float32))
        search = self.reused_overlays_

        def features_and_z(chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return features_of_chunk(chunk), search.z_scores(chunk)

        # Both parts of a chunk in the same worker: every core busy, every chunk's data in cache;
        # the workers are the parallelism, so BLAS (the z-scores' products) gets one thread.
        with one_blas_thread():
            parts = map_chunks(features_and_z, images, self.n_jobs)
        return self.score_features(np.concatenate([f for f, _ in parts]), np.concatenate([z for _, z in parts]))
