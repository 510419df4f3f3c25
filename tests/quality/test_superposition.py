"""Tests of the superposition features and the self-supervised SuperpositionDetector.

The detector is fitted once per module, on the bundled sample corrupted the way the seed
dataset was (13% superposed, 2% blue-filtered, every image JPEG re-encoded), without
labels, with a detector seed different from the corruption seed.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cellkit.corrupt import CorruptionResult, corrupt_dataset, overlay_bank, superpose
from cellkit.corrupt.overlays import OVERLAY_FAMILIES, dihedral
from cellkit.data import Dataset
from cellkit.evaluate.metrics import roc_auc
from cellkit.quality.features import (
    color_features,
    edge_features,
    feature_names,
    spectral_features,
    stain_features,
    superposition_features,
)
from cellkit.quality.superposition import AUTO_THRESHOLD, SuperpositionDetector
from strategies import dihedral_ks, sample_indices, seeds

#: Scores of an image and of its flips/quarter turns agree to this (features are exactly
#: invariant; only float32 summation order differs).
INVARIANCE_TOL = 1e-4


@pytest.fixture(scope="module")
def corrupted(sample: Dataset) -> CorruptionResult:
    return corrupt_dataset(sample, seed=11)


@pytest.fixture(scope="module")
def detector(corrupted: CorruptionResult) -> SuperpositionDetector:
    return SuperpositionDetector(random_state=0).fit(corrupted.dataset)


@pytest.fixture(scope="module")
def scores(detector: SuperpositionDetector, corrupted: CorruptionResult) -> np.ndarray:
    return detector.score_samples(corrupted.dataset)


# -- features -------------------------------------------------------------------------------


def test_features_shapes_names_and_purity(sample: Dataset) -> None:
    x = sample.images[:7]
    before = x.copy()
    f = superposition_features(x)
    assert f.shape == (7, len(feature_names())) and f.dtype == np.float32
    assert np.all(np.isfinite(f))
    assert np.array_equal(x, before)
    functions = (spectral_features, edge_features, color_features, stain_features)
    parts = [fn(x) for fn in functions]
    assert np.allclose(np.concatenate(parts, axis=1), f, atol=1e-6)
    assert superposition_features(x[:0]).shape == (0, len(feature_names()))
    assert sum(fn(x[:0]).shape[1] for fn in functions) == f.shape[1]


def test_stain_features_see_added_light_and_ignore_a_colour_filter(sample: Dataset) -> None:
    from cellkit.corrupt import color_filter, overlay_bank, superpose

    x = sample.images[:64]
    third = stain_features(x)[:, 0]  # smallest eigenvalue fraction of the optical densities
    filtered = stain_features(color_filter(x, np.tile([0.8, 0.9, 1.0], (64, 1))))[:, 0]
    np.testing.assert_allclose(filtered, third, atol=0.02)  # a gain only shifts optical density
    cartoon = superpose(x, overlay_bank("cartoon", 64, rng=0), 0.4)
    assert np.median(stain_features(cartoon)[:, 0]) > 3 * np.median(third)


def test_features_of_a_batch_equal_features_of_each_image(sample: Dataset) -> None:
    """No leak between neighbouring images of the stacked batch, across chunk borders too."""
    x = sample.images[:300]
    batch = superposition_features(x, n_jobs=2)
    for i in (0, 1, 254, 255, 299):
        alone = superposition_features(x[i : i + 1])
        np.testing.assert_allclose(batch[i], alone[0], atol=1e-5)


def test_features_are_invariant_to_flips_and_quarter_turns(sample: Dataset) -> None:
    x = sample.images[:16]
    f = superposition_features(x)
    for k in range(1, 8):
        g = superposition_features(np.ascontiguousarray(dihedral(x, np.full(16, k))))
        np.testing.assert_allclose(g, f, atol=2e-5)  # float32 sums in another order (module docstring)


def test_histogram_features_are_distributions(sample: Dataset) -> None:
    """Each edge histogram (per pyramid level and filter) and the luma histogram sum to 1."""
    f = superposition_features(sample.images[:5])
    names = np.array([n.rstrip("0123456789") for n in feature_names()])
    groups = [g for g in dict.fromkeys(names) if g.startswith("edge_") or g == "color_luma"]
    assert len(groups) == 9
    for g in groups:
        np.testing.assert_allclose(f[:, names == g].sum(axis=1), 1.0, atol=1e-5, err_msg=g)
    chroma = f[:, names == "color_chroma"]  # square roots of fractions
    np.testing.assert_allclose((chroma**2).sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    "images",
    [
        np.zeros((2, 96, 96, 3), np.float32),
        np.zeros((2, 96, 96), np.uint8),
        np.zeros((2, 96, 96, 4), np.uint8),
        np.zeros((2, 20, 20, 3), np.uint8),
        [[1, 2, 3]],
    ],
)
def test_features_reject_bad_images(images: object) -> None:
    with pytest.raises(ValueError, match="images"):
        superposition_features(images)  # type: ignore[arg-type]


# -- detector -------------------------------------------------------------------------------


def test_detector_finds_superpositions_without_labels(
    detector: SuperpositionDetector, corrupted: CorruptionResult, scores: np.ndarray
) -> None:
    sup = corrupted.is_superposed
    assert roc_auc(sup, -scores) >= 0.97
    pred = detector.predict(corrupted.dataset)
    tp, fp = int(((pred == -1) & sup).sum()), int(((pred == -1) & ~sup).sum())
    assert tp >= 0.8 * sup.sum() and fp <= 0.03 * (~sup).sum()


def test_detector_scores_follow_the_outlier_api(
    detector: SuperpositionDetector, corrupted: CorruptionResult, scores: np.ndarray
) -> None:
    images = corrupted.dataset.images
    assert scores.shape == (len(images),) and scores.dtype == np.float64
    assert np.all((scores >= 0) & (scores <= 1))
    np.testing.assert_array_equal(detector.score_samples(images), scores)  # Dataset or array
    np.testing.assert_allclose(detector.decision_function(images), scores - detector.threshold_)
    pred = detector.predict(images)
    assert set(np.unique(pred)) <= {-1, 1}
    np.testing.assert_array_equal(pred == -1, scores < detector.threshold_)
    assert detector.threshold_ == AUTO_THRESHOLD and 0 < detector.contamination_ < 0.5
    assert detector.image_shape_ == (96, 96, 3)


def test_detector_scores_in_batches_like_all_at_once(
    detector: SuperpositionDetector, corrupted: CorruptionResult
) -> None:
    images = corrupted.dataset.images[:50]
    small_batches = SuperpositionDetector(batch_size=7)
    small_batches.__dict__.update({k: v for k, v in detector.__dict__.items() if k.endswith("_")})
    np.testing.assert_allclose(small_batches.score_samples(images), detector.score_samples(images), atol=1e-6)


@given(index=sample_indices(), k=dihedral_ks())
def test_scores_are_invariant_to_flips_and_quarter_turns(
    detector: SuperpositionDetector, corrupted: CorruptionResult, scores: np.ndarray, index: int, k: int
) -> None:
    x = corrupted.dataset.images[index : index + 1]
    turned = np.ascontiguousarray(dihedral(x, np.array([k])))
    assert abs(detector.score_samples(turned)[0] - scores[index]) <= INVARIANCE_TOL


# alpha <= 1/256: no pixel moves by more than about one grey level. Histogram features have
# bin edges, so a single image can move by up to ~0.2; over the sample the change is tiny.
@given(alpha=st.floats(0.0, 1 / 256), seed=seeds(1000))
def test_a_vanishing_superposition_scores_like_the_clean_image(
    detector: SuperpositionDetector, sample: Dataset, alpha: float, seed: int
) -> None:
    x = sample.images[::3]
    clean = detector.score_samples(x)
    faint = detector.score_samples(superpose(x, overlay_bank("drawn", len(x), rng=seed), alpha))
    change = np.abs(faint - clean)
    assert change.mean() <= 0.02 and np.percentile(change, 95) <= 0.08


def test_stronger_superpositions_score_lower(detector: SuperpositionDetector, sample: Dataset) -> None:
    x = sample.images[::8]
    over = overlay_bank("natural", len(x), rng=1)
    means = [detector.score_samples(superpose(x, over, a)).mean() for a in (0.0, 0.2, 0.5)]
    assert means[0] > means[1] > means[2]
    assert means[0] > 0.9 and means[2] < 0.1


def test_fit_is_deterministic_for_a_random_state(sample: Dataset) -> None:
    x = sample.images[::4]
    kw = {"max_iter": 20, "refine_rounds": 1, "random_state": 3}
    a = SuperpositionDetector(**kw).fit(x).score_samples(x)
    b = SuperpositionDetector(**kw).fit(x).score_samples(x)
    np.testing.assert_array_equal(a, b)


def test_contamination_fraction_sets_the_threshold(sample: Dataset) -> None:
    x = sample.images[::4]
    det = SuperpositionDetector(contamination=0.1, max_iter=20, refine_rounds=1).fit(x)
    assert 0.0 < det.threshold_ < 1.0
    flagged = (det.predict(x) == -1).mean()
    assert 0.02 <= flagged <= 0.25  # the quantile was taken on the JPEG-re-encoded copies
    fixed = SuperpositionDetector(threshold=0.2, max_iter=20, refine_rounds=0).fit(x)
    assert fixed.threshold_ == 0.2


def test_params_and_repr() -> None:
    det = SuperpositionDetector(contamination=0.05, random_state=4)
    params = det.get_params()
    assert params["contamination"] == 0.05 and params["random_state"] == 4
    assert "contamination=0.05" in repr(det) and "threshold" not in repr(det)
    assert not hasattr(det, "threshold_")  # __init__ only stores parameters


def test_unfitted_detector_raises() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        SuperpositionDetector().score_samples(np.zeros((1, 96, 96, 3), np.uint8))
    with pytest.raises(RuntimeError, match="fit"):
        SuperpositionDetector().predict(np.zeros((1, 96, 96, 3), np.uint8))


@pytest.mark.parametrize(
    ("images", "match"),
    [
        (np.zeros((30, 96, 96, 3), np.float64), "images.*uint8"),
        (np.zeros((30, 96, 96), np.uint8), "images"),
        (np.zeros((5, 96, 96, 3), np.uint8), "at least 20 images"),
        ("cells/", "images"),
    ],
)
def test_fit_rejects_bad_images(images: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SuperpositionDetector().fit(images)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"contamination": 0.9}, "contamination"),
        ({"contamination": "most"}, "contamination"),
        ({"threshold": 2.0}, "threshold"),
        ({"alpha": (0.8, 0.1)}, "alpha"),
        ({"overlay_kinds": ("video",)}, "overlay kinds"),
        ({"hidden_units": 0}, "hidden_units"),
        ({"batch_size": 0}, "batch_size"),
        ({"color_augment": 2.0}, "color_augment"),
        ({"blend_modes": "multiply"}, "blend_modes"),
        ({"blend_modes": ("multiply", "dodge")}, "blend_modes"),
    ],
)
def test_fit_rejects_bad_params(params: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SuperpositionDetector(**params).fit(np.zeros((30, 96, 96, 3), np.uint8))


def test_score_rejects_other_image_sizes(detector: SuperpositionDetector) -> None:
    with pytest.raises(ValueError, match="fitted image shape"):
        detector.score_samples(np.zeros((2, 64, 64, 3), np.uint8))


def test_score_features_matches_score_samples(
    detector: SuperpositionDetector, corrupted: CorruptionResult
) -> None:
    images = corrupted.dataset.images[:30]
    features, z = superposition_features(images), detector.reused_overlays_.z_scores(images)
    np.testing.assert_allclose(detector.score_features(features, z), detector.score_samples(images), atol=1e-9)
    assert np.all(detector.score_features(features) >= detector.score_samples(images) - 1e-12)
    with pytest.raises(ValueError, match="features"):
        detector.score_features(np.zeros((3, 5), np.float32))


@settings(max_examples=20, deadline=None, derandomize=True)
@given(family=st.sampled_from(OVERLAY_FAMILIES), alpha=st.floats(0.4, 0.7), index=sample_indices(),
       seed=seeds(10_000))
def test_a_strong_superposition_of_any_family_scores_below_its_source(
    detector: SuperpositionDetector, sample: Dataset, family: str, alpha: float, index: int, seed: int
) -> None:
    clean = sample.images[index : index + 1]
    pool = np.delete(sample.images, index, axis=0)
    overlay = overlay_bank(family, 1, rng=seed, cells=pool)
    superposed = superpose(clean, overlay, alpha)
    source, score = detector.score_samples(clean)[0], detector.score_samples(superposed)[0]
    assert score < source or score < detector.threshold_  # lower than its source, or flagged anyway


def test_reused_overlay_search_flags_every_copy_and_remembers_it(sample: Dataset) -> None:
    from cellkit.quality._reused_overlays import ReusedOverlaySearch

    rng = np.random.default_rng(3)
    images = sample.images.copy()
    copies = rng.choice(len(images), 25, replace=False)
    meme = overlay_bank("cartoon", 1, rng=5)
    images[copies] = superpose(images[copies], np.repeat(meme, 25, axis=0), rng.uniform(0.25, 0.6, 25))
    search = ReusedOverlaySearch().fit(images)
    assert set(np.flatnonzero(search.flags_)) == set(copies)
    fresh = superpose(sample.images[:4], np.repeat(meme, 4, axis=0), 0.3)  # the same meme on other cells
    turned = np.ascontiguousarray(dihedral(fresh, np.array([1, 3, 5, 6])))
    assert np.all(search.z_scores(turned) > search.z_threshold)
    assert np.all(search.z_scores(sample.images[100:140]) < search.z_threshold)


def test_reused_overlay_search_keeps_the_best_copies_of_each_overlay_and_scores_as_with_all(sample: Dataset) -> None:
    from cellkit.quality._reused_overlays import ReusedOverlaySearch

    rng = np.random.default_rng(4)
    images = sample.images.copy()
    picked = rng.choice(len(images), 60, replace=False)
    groups = (picked[:30], picked[30:])
    memes = [overlay_bank(family, 1, rng=7) for family in ("cartoon", "text")]
    for group, meme in zip(groups, memes, strict=True):
        images[group] = superpose(images[group], np.repeat(meme, len(group), axis=0), rng.uniform(0.25, 0.6, len(group)))
    search = ReusedOverlaySearch().fit(images)
    kept = search.templates_
    assert search.flags_[kept].all()
    for group in groups:  # top + 1 copies of each overlay, those that match the others best
        mine = np.intersect1d(kept, group)
        assert mine.size == search.top + 1
        flagged = group[search.flags_[group]]
        assert search.z_[mine].min() >= np.sort(search.z_[flagged])[-(search.top + 1)]
    # against the kept copies an image scores as against every flagged copy (a subset's best are no
    # better: never higher), and is flagged or not the same way
    fresh = np.concatenate([superpose(sample.images[:6], np.repeat(meme, 6, axis=0), 0.3) for meme in memes])
    untouched = np.setdiff1d(np.arange(len(images)), picked)[:60]  # not the cells under a copy: those match it
    probe = np.concatenate([fresh, sample.images[untouched]])
    kept_only = search.z_scores(probe)
    search.memory_ = _memory_of_every_flagged_copy(search, images)
    every_copy = search.z_scores(probe)
    assert np.all(kept_only <= every_copy + 1e-4)
    found = every_copy > search.z_threshold
    assert found[6:12].all() and not found[12:].any()  # the caption on new cells; no clean image
    assert np.array_equal(kept_only > search.z_threshold, found)
    assert np.all(kept_only[found] >= 0.9 * every_copy[found])

def _memory_of_every_flagged_copy(search, images: np.ndarray) -> np.ndarray:  # noqa: ANN001
    """What ``memory_`` held before the search kept only the best copies: every flagged copy, 8 orientations."""
    from cellkit.quality._reused_overlays import _unit_rows

    bp = search._vectors(images)[2][search.flags_]
    views = [np.rot90(v, k, axes=(1, 2)) for v in (bp, bp[:, :, ::-1]) for k in range(4)]
    mask = search._masks(*bp.shape[1:])[0]
    return np.concatenate([_unit_rows(v[:, mask]) for v in views])

def test_a_flat_purple_caption_once_missed_scores_below_its_image(detector: SuperpositionDetector,
                                                                   sample: Dataset) -> None:
    """A near-uniform purple caption at alpha 0.69 read as a colour cast to the detector fitted on
    the 480-image sample (a strict xfail until pseudo_logit=2, refine_rounds=3 found it)."""
    overlay = overlay_bank("text", 1, rng=171)
    superposed = superpose(sample.images[:1], overlay, 0.6875)
    assert detector.score_samples(superposed)[0] < detector.score_samples(sample.images[:1])[0]


def test_blend_modes_mix_half_of_the_synthetic_overlays_through_the_modes(sample: Dataset) -> None:
    """``blend_modes=("multiply",)``: about a quarter of the positives moded, the rest identical."""
    from cellkit.quality._superposition_examples import training_features

    images = sample.images[:60]
    base = np.zeros(200, np.int64)

    def positives(modes: tuple[str, ...]) -> np.ndarray:
        _, x_pos, base[:] = training_features(images, 200, np.random.default_rng(3), lambda x: x.astype(np.int16),
                                        alpha=(0.3, 0.6), kinds=("cartoon",), max_drawn=16, jpeg_quality=None,
                                        color_fraction=0.0, blend_modes=modes)
        return x_pos

    plain, multiplied = positives(()), positives(("multiply",))
    changed = np.any(plain != multiplied, axis=(1, 2, 3))
    assert 0.15 < changed.mean() < 0.35
    assert np.array_equal(plain[~changed], multiplied[~changed])
    # a multiply layer is never brighter than the image, so a moded positive is never brighter than
    # its base image (rounding aside), and at alpha >= 0.35 it is clearly darker
    cells = images[base[changed]].astype(np.int16)
    assert np.all(multiplied[changed] <= cells + 1)
    assert multiplied[changed].mean() < 0.95 * cells.mean()
