"""Colour filters: the generator (cellkit.corrupt.color) and the detector (cellkit.quality.color)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given

from cellkit.corrupt.color import (
    ANY_GAIN_RANGE,
    ANY_MIN_CAST,
    BLUE_FILTER_GAINS,
    BLUE_GAIN_RANGES,
    color_filter,
    random_filter_gains,
)
from cellkit.corrupt.overlays import dihedral
from cellkit.corrupt.superpose import jpeg_roundtrip, random_superpositions
from cellkit.quality.color import (
    COLOR_FEATURE_NAMES,
    ColorFilterDetector,
    background_chroma,
    color_features,
)
from strategies import dihedral_ks, sample_indices, seeded_uint8_images

# ---------------------------------------------------------------------------------------
# color_filter


def test_color_filter_vectorised_equals_per_image(rng):
    images = rng.integers(0, 256, (5, 12, 10, 3), dtype=np.uint8)
    gains = rng.uniform(0.3, 1.6, (5, 3))
    batch = color_filter(images, gains)
    for i in range(5):
        np.testing.assert_array_equal(batch[i], color_filter(images[i], gains[i]))
        expected = np.clip(np.rint(images[i].astype(np.float64) * gains[i]), 0, 255).astype(np.uint8)
        np.testing.assert_allclose(batch[i].astype(int), expected.astype(int), atol=1)  # float32 rounding


def test_color_filter_shared_gains_broadcast_and_clip(rng):
    images = rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    out = color_filter(images, (1.0, 0.5, 3.0))
    np.testing.assert_array_equal(out, color_filter(images, np.tile([1.0, 0.5, 3.0], (4, 1))))
    np.testing.assert_array_equal(out[..., 0], images[..., 0])
    assert out.dtype == np.uint8 and out[..., 2].max() <= 255
    assert np.array_equal(out[..., 2] == 255, images[..., 2].astype(int) * 3 >= 255)


def test_color_filter_does_not_modify_input(rng):
    images = rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    before = images.copy()
    out = color_filter(images, BLUE_FILTER_GAINS)
    np.testing.assert_array_equal(images, before)
    assert not np.shares_memory(out, images)


@pytest.mark.parametrize(
    ("gains", "match"),
    [
        ((1.0, 1.0), r"gains.shape=\(2,\)"),
        (np.ones((2, 3)), r"\(3,\) or \(4, 3\)"),
        ((1.0, -0.1, 1.0), "finite and >= 0"),
        ((1.0, np.nan, 1.0), "finite and >= 0"),
    ],
)
def test_color_filter_rejects_bad_gains(gains, match):
    with pytest.raises(ValueError, match=match):
        color_filter(np.zeros((4, 8, 8, 3), np.uint8), gains)


@pytest.mark.parametrize("images", [np.zeros((2, 8, 8, 3), np.float32), np.zeros((2, 8, 8), np.uint8)])
def test_color_filter_rejects_bad_images(images):
    with pytest.raises(ValueError, match="Received: images.dtype="):
        color_filter(images, BLUE_FILTER_GAINS)


# ---------------------------------------------------------------------------------------
# random_filter_gains


def test_blue_gains_are_blue_and_in_range():
    g = random_filter_gains(5000, rng=0, kind="blue")
    assert g.shape == (5000, 3) and g.dtype == np.float64
    assert np.all(g[:, 0] < g[:, 1]) and np.all(g[:, 1] < g[:, 2])
    (b_lo, b_hi), (r_lo, r_hi), (gr_lo, gr_hi) = BLUE_GAIN_RANGES
    assert np.all((g[:, 2] >= b_lo) & (g[:, 2] <= b_hi))
    assert np.all((g[:, 0] / g[:, 2] >= r_lo - 1e-12) & (g[:, 0] / g[:, 2] <= r_hi))
    assert np.all((g[:, 1] / g[:, 2] >= gr_lo) & (g[:, 1] / g[:, 2] <= gr_hi))
    # the documented typical filter lies inside the ranges
    typical = np.array(BLUE_FILTER_GAINS)
    assert b_lo <= typical[2] <= b_hi and r_lo <= typical[0] / typical[2] <= r_hi


def test_any_gains_are_visible_casts():
    g = random_filter_gains(3000, rng=np.random.default_rng(1), kind="any")
    lo, hi = ANY_GAIN_RANGE
    assert np.all((g >= lo) & (g <= hi))
    assert np.all(g.max(axis=1) >= ANY_MIN_CAST * g.min(axis=1))
    # every channel is sometimes the strongest: not only blue casts
    assert set(np.argmax(g, axis=1)) == {0, 1, 2}


def test_random_gains_reproducible_from_seed():
    np.testing.assert_array_equal(random_filter_gains(7, rng=3), random_filter_gains(7, rng=3))
    assert not np.array_equal(random_filter_gains(7, rng=3), random_filter_gains(7, rng=4))
    assert random_filter_gains(0, rng=0).shape == (0, 3)


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"n": -1}, "n=-1"), ({"n": 2.5}, "n=2.5"), ({"n": 2, "kind": "red"}, "kind='red'")]
)
def test_random_gains_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        random_filter_gains(**kwargs)


def test_blue_filter_gains_reproduce_the_natural_blue_cast(sample):
    """BLUE_FILTER_GAINS turns ordinary sample images into the look of its blue-cast ones."""
    chroma = background_chroma(color_features(sample.images))
    blue = chroma[:, 0] < 0.1  # the sample's own blue-cast images (background log R/B near 0)
    assert 5 <= blue.sum() <= 0.1 * len(sample)
    filtered = background_chroma(color_features(color_filter(sample.images[~blue], BLUE_FILTER_GAINS)))
    np.testing.assert_allclose(np.median(filtered, axis=0), np.median(chroma[blue], axis=0), atol=0.04)


# ---------------------------------------------------------------------------------------
# color_features


def test_color_features_shape_and_constant_image():
    x = np.zeros((3, 16, 16, 3), np.uint8)
    x[..., 0], x[..., 1], x[..., 2] = 200, 150, 100
    f = color_features(x)
    assert f.shape == (3, len(COLOR_FEATURE_NAMES)) and f.dtype == np.float64
    np.testing.assert_allclose(f[0, [0, 1, 2]], np.log([201, 151, 101]), rtol=1e-6)
    np.testing.assert_allclose(f[0, [3, 4, 8, 9]], 0, atol=1e-3)
    assert color_features(x[:0]).shape == (0, len(COLOR_FEATURE_NAMES))


def test_color_features_see_the_filter_as_a_shift_of_log_levels(sample):
    x = sample.images[:40]
    gains = np.array([0.8, 0.9, 1.0])  # attenuate only: no clipping added
    f, g = color_features(x), color_features(color_filter(x, gains))
    # bright and dark mean log levels move by about log(gain); chroma spreads do not move
    np.testing.assert_allclose(np.median(g[:, :3] - f[:, :3], axis=0), np.log(gains), atol=0.02)
    np.testing.assert_allclose(g[:, [3, 4]], f[:, [3, 4]], atol=0.01)


@given(dihedral_ks(identity=True), seeded_uint8_images((3, 24, 24, 3)))
def test_color_features_invariant_to_flips_and_rotations(k, x):
    np.testing.assert_allclose(
        color_features(dihedral(x, np.full(3, k))), color_features(x), rtol=1e-5, atol=1e-6
    )


# ---------------------------------------------------------------------------------------
# ColorFilterDetector


@pytest.fixture(scope="module")
def fitted(sample) -> ColorFilterDetector:
    return ColorFilterDetector(random_state=0).fit(sample)


def test_detector_flags_exactly_the_blue_cast_sample_images(sample, fitted):
    blue = background_chroma(color_features(sample.images))[:, 0] < 0.1
    flagged = fitted.training_scores_ < fitted.threshold_
    np.testing.assert_array_equal(flagged, blue)
    np.testing.assert_array_equal(fitted.predict(sample), np.where(blue, -1, 1))


def test_detector_flags_synthetic_blue_filters_not_clean_images(sample, fitted):
    blue = background_chroma(color_features(sample.images))[:, 0] < 0.1
    clean = sample.images[~blue][::3]
    assert np.all(fitted.predict(clean) == 1)
    typical = jpeg_roundtrip(color_filter(clean, BLUE_FILTER_GAINS), 90)
    assert np.all(fitted.predict(typical) == -1)
    random_blue = jpeg_roundtrip(color_filter(clean, random_filter_gains(len(clean), rng=7)), 90)
    assert np.mean(fitted.predict(random_blue) == -1) >= 0.95


def test_detector_mostly_ignores_superpositions(sample, fitted):
    blue = background_chroma(color_features(sample.images))[:, 0] < 0.1
    clean = sample.images[~blue]
    sup = random_superpositions(clean, 200, rng=5, alpha=(0.25, 0.6)).images
    assert np.mean(fitted.predict(jpeg_roundtrip(sup, 90)) == -1) <= 0.06


def test_detector_api(sample, fitted):
    x = sample.images[:50]
    s = fitted.score_samples(x)
    assert s.shape == (50,) and s.dtype == np.float64 and np.all((s >= 0) & (s <= 1))
    np.testing.assert_allclose(fitted.decision_function(x), s - fitted.threshold_)
    np.testing.assert_array_equal(fitted.predict(x), np.where(s < fitted.threshold_, -1, 1))
    np.testing.assert_array_equal(fitted.score_samples(sample.subset(range(50))), s)  # a Dataset works too
    np.testing.assert_allclose(fitted.training_scores_[:50], s)
    assert fitted.threshold_ == 0.5 and fitted.image_shape_ == (96, 96, 3)
    assert 0 < fitted.n_references_ <= len(sample) and fitted.n_synthetic_ == 512
    assert fitted.score_samples(x[:0]).shape == (0,)


@given(sample_indices(), dihedral_ks())
def test_detector_scores_invariant_to_flips_and_rotations(fitted_for_hypothesis, index, k):
    det, images = fitted_for_hypothesis
    x = images[[index]]
    np.testing.assert_allclose(det.score_samples(dihedral(x, np.array([k]))), det.score_samples(x), atol=1e-6)


@pytest.fixture(scope="module")
def fitted_for_hypothesis(sample, fitted):
    blue = background_chroma(color_features(sample.images))[:, 0] < 0.1
    images = sample.images.copy()
    some = np.flatnonzero(~blue)[:40]
    images[some] = color_filter(images[some], BLUE_FILTER_GAINS)  # some filtered ones too
    return fitted, images


def test_detector_contamination_and_threshold(sample):
    det = ColorFilterDetector(contamination=0.1, random_state=0, min_synthetic=64).fit(sample)
    assert abs(np.mean(det.training_scores_ < det.threshold_) - 0.1) <= 0.06
    det2 = ColorFilterDetector(threshold=0.2, random_state=0, min_synthetic=64).fit(sample)
    assert det2.threshold_ == 0.2


def test_detector_fit_is_reproducible_and_fit_predict(sample):
    x = sample.images[::4]
    a = ColorFilterDetector(random_state=3, min_synthetic=64)
    labels = a.fit_predict(x)
    b = ColorFilterDetector(random_state=3, min_synthetic=64).fit(x)
    np.testing.assert_array_equal(a.training_scores_, b.training_scores_)
    np.testing.assert_array_equal(labels, b.predict(x))


def test_detector_not_fitted_and_input_errors(sample):
    det = ColorFilterDetector()
    with pytest.raises(RuntimeError, match="not fitted"):
        det.score_samples(sample.images[:2])
    with pytest.raises(ValueError, match="at least 10 images"):
        det.fit(sample.images[:5])
    with pytest.raises(ValueError, match="Received: images dtype=float32"):
        det.fit(sample.images.astype(np.float32))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"contamination": 0.7}, "contamination=0.7"),
        ({"threshold": 2}, "threshold=2"),
        ({"filter_kinds": ("red",)}, "filter_kinds"),
        ({"n_neighbors": 0}, "n_neighbors=0"),
        ({"min_synthetic": 100, "max_synthetic": 10}, "min_synthetic"),
        ({"synthetic_ratio": 0}, "synthetic_ratio=0"),
        ({"max_chroma_z": -1}, "max_chroma_z=-1"),
        ({"strong_threshold": 0}, "strong_threshold=0"),
        ({"strength_share": 0.5}, "strength_share=0.5"),
        ({"strength_share": True}, "strength_share=True"),
        ({"jpeg_quality": 0}, "jpeg_quality=0"),
        ({"alpha": (0.8, 0.2)}, "alpha"),
    ],
)
def test_detector_parameter_validation(sample, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ColorFilterDetector(**kwargs).fit(sample.images[:20])


def test_strength_a_shared_cast_is_weak_a_lone_cast_is_strong(sample, fitted):
    blue = background_chroma(color_features(sample.images))[:, 0] < 0.1
    # the sample's blue-cast images are a group of their own: flagged, but weak
    assert blue.sum() >= 5
    assert not fitted.is_strong(fitted.training_strength_[blue]).any()
    clean = sample.images[~blue][:40]
    casts = jpeg_roundtrip(color_filter(clean, random_filter_gains(len(clean), rng=3, kind="any")), 90)
    strong = fitted.is_strong(fitted.strength(casts))
    assert strong.mean() >= 0.95  # random casts that no fitted image shares
    # strength is a distance in log-chroma: 0 for a fitted colour, and grows with the cast
    s = fitted.strength(color_filter(clean[:10], np.tile([0.7, 0.85, 1.0], (10, 1))))
    s2 = fitted.strength(color_filter(clean[:10], np.tile([0.5, 0.72, 1.0], (10, 1))))
    assert np.all(s2 > s) and np.all(s > fitted.strong_threshold)
    assert fitted.training_strength_.shape == (len(sample),) and fitted.strength_neighbors_ == 2


def test_strength_does_not_depend_on_the_dataset_size(sample):
    """k is a share of the data: the same colours, each four times, give the same strengths."""
    one = ColorFilterDetector(random_state=0, strength_share=0.01).fit(sample)
    four = ColorFilterDetector(random_state=0, strength_share=0.01).fit(np.repeat(sample.images, 4, axis=0))
    assert (one.strength_neighbors_, four.strength_neighbors_) == (5, 20)
    np.testing.assert_allclose(four.training_strength_[::4], one.training_strength_)


def test_detector_params_and_repr():
    det = ColorFilterDetector(n_neighbors=7, filter_kinds=("blue", "any"))
    assert det.get_params()["n_neighbors"] == 7
    assert repr(det) == "ColorFilterDetector(filter_kinds=('blue', 'any'), n_neighbors=7)"
    assert repr(ColorFilterDetector()) == "ColorFilterDetector()"
