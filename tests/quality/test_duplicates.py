"""Perceptual hashes and near-duplicate groups (cellkit.quality.duplicates)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import scipy.fft
from hypothesis import given
from hypothesis import strategies as st

import cellkit.quality.duplicates as dup
from cellkit.corrupt.overlays import dihedral
from cellkit.corrupt.superpose import jpeg_roundtrip
from cellkit.quality.duplicates import (
    duplicate_groups,
    groups_from_pairs,
    hamming_distance,
    near_duplicate_pairs,
    perceptual_hash,
)


def _reference_phash(image: np.ndarray) -> int:
    """pHash of one image, written plainly: OpenCV area resize, per-image DCT, median."""
    grey = image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    small = cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA)
    low = scipy.fft.dct(scipy.fft.dct(small, axis=0, norm="ortho"), axis=1, norm="ortho")[:8, :8].ravel()
    bits = low > np.median(low)
    return int("".join("1" if b else "0" for b in bits), 2)


def test_hash_matches_a_plain_per_image_implementation(sample):
    x = sample.images[::40]
    hashes = perceptual_hash(x, batch_size=5)
    assert hashes.dtype == np.uint64 and hashes.shape == (len(x),)
    ref = np.array([_reference_phash(im) for im in x], np.uint64)
    # identical but for coefficients that tie with the median to float precision
    assert np.all(hamming_distance(hashes, ref) <= 2)
    assert np.mean(hashes == ref) >= 0.9


def test_hash_batching_and_dataset_input(sample):
    x = sample.images[:30]
    np.testing.assert_array_equal(perceptual_hash(x, batch_size=7), perceptual_hash(x))
    np.testing.assert_array_equal(perceptual_hash(sample.subset(range(30))), perceptual_hash(x))
    assert perceptual_hash(x[:0]).shape == (0,)


def test_hash_has_32_bits_set_and_differs_between_cells(sample):
    h = perceptual_hash(sample.images)
    assert np.all(hamming_distance(h, np.uint64(0)) == 32)  # median split of 64 coefficients
    i, j = np.triu_indices(len(h), 1)
    assert np.median(hamming_distance(h[i], h[j])) >= 20


@pytest.mark.parametrize("k", range(8))
def test_dihedral_hashes_are_hashes_of_transformed_images(sample, k):
    x = sample.images[:12]
    variants = perceptual_hash(x, dihedral=True)
    assert variants.shape == (12, 8)
    transformed = _dihedral_like_hash(x, k)
    np.testing.assert_array_equal(variants[:, 0], perceptual_hash(x))
    assert np.all(hamming_distance(variants[:, k], perceptual_hash(transformed)) <= 2)


def _dihedral_like_hash(x: np.ndarray, k: int) -> np.ndarray:
    """The transform whose hash is column ``k`` of ``perceptual_hash(..., dihedral=True)``."""
    t = x[:, :, ::-1] if k in (1, 3, 5, 7) else x  # columns reversed
    t = t[:, ::-1] if k in (2, 3, 6, 7) else t  # rows reversed
    return t.transpose(0, 2, 1, 3) if k >= 4 else t


def test_exact_and_lightly_edited_copies_are_grouped(sample):
    distinct = sample.images[:60]
    copies = np.concatenate(
        [
            distinct[:5],  # exact copies
            jpeg_roundtrip(distinct[5:10], 60),  # re-encoded
            np.clip(distinct[10:15].astype(np.int16) + 12, 0, 255).astype(np.uint8),  # brighter
            np.clip(np.rint(distinct[15:20] * 0.9), 0, 255).astype(np.uint8),  # darker
            np.stack(
                [
                    cv2.resize(cv2.resize(im, (64, 64), interpolation=cv2.INTER_AREA), (96, 96))
                    for im in distinct[20:25]
                ]
            ),
        ]
    )
    groups = duplicate_groups(np.concatenate([distinct, copies]))
    assert groups.shape == (85,) and groups.dtype == np.int64
    for c in range(25):
        assert groups[c] >= 0 and groups[c] == groups[60 + c], c
    assert np.all(groups[25:60] == -1)  # distinct cells are not grouped
    assert len(np.unique(groups[groups >= 0])) == 25


def test_distinct_sample_cells_form_no_group(sample):
    assert np.all(duplicate_groups(sample) == -1)


def test_groups_are_the_union_of_chained_pairs():
    a, b, c = 0, 0b1111, 0b11111111  # a~b (4 bits), b~c (4 bits), a and c 8 bits apart
    far = 2**64 - 1
    hashes = np.array([far, c, a, b], np.uint64)
    assert hamming_distance(np.uint64(a), np.uint64(c)) == 8
    np.testing.assert_array_equal(duplicate_groups(hashes, radius=4), [-1, 0, 0, 0])
    np.testing.assert_array_equal(duplicate_groups(hashes, radius=3), [-1, -1, -1, -1])


def test_group_ids_follow_first_members():
    np.testing.assert_array_equal(
        groups_from_pairs(6, np.array([4, 0]), np.array([5, 2])), [0, -1, 0, -1, 1, 1]
    )
    assert groups_from_pairs(0, np.zeros(0, int), np.zeros(0, int)).shape == (0,)


def test_invariant_mode_catches_rotated_and_flipped_copies(sample):
    x = sample.images[:40]
    turned = dihedral(x[:8], np.arange(8))  # one copy per symmetry (k=0: exact copy)
    both = np.concatenate([x, turned])
    plain = duplicate_groups(both)
    invariant = duplicate_groups(both, invariant=True)
    for k in range(8):
        assert invariant[k] >= 0 and invariant[k] == invariant[40 + k], k
    assert plain[0] == plain[40] and np.sum(plain[1:8] >= 0) < 7  # plain mode misses most
    assert np.all(invariant[8:40] == -1)
    # dihedral hashes can be passed instead of images
    np.testing.assert_array_equal(
        duplicate_groups(perceptual_hash(both, dihedral=True), invariant=True), invariant
    )


@given(
    st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=12),
    st.lists(st.integers(0, 63), max_size=30),
    st.integers(0, 12),
    st.integers(1, 7),
)
def test_pairs_equal_brute_force(seeds, flips, radius, chunk):
    # near copies of a few random hashes, so that some pairs fall within the radius
    values = list(seeds)
    for k, bit in enumerate(flips):
        values.append(values[k % len(seeds)] ^ (1 << bit) ^ (1 << ((bit * 7) % 64)))
    h = np.array(values, np.uint64)
    i, j, d = near_duplicate_pairs(h, radius, chunk_size=chunk)
    expected = [
        (a, b, bin(values[a] ^ values[b]).count("1"))
        for a in range(len(values))
        for b in range(a + 1, len(values))
        if bin(values[a] ^ values[b]).count("1") <= radius
    ]
    assert list(zip(i.tolist(), j.tolist(), d.tolist(), strict=True)) == expected


@given(st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=20))
def test_hamming_distance_and_popcount_fallback(values):
    h = np.array(values, np.uint64)
    expected = [bin(v ^ values[0]).count("1") for v in values]
    assert hamming_distance(h, h[0]).tolist() == expected
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(dup, "_HAS_BITWISE_COUNT", False)
        assert hamming_distance(h, h[0]).tolist() == expected


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((np.zeros(3, np.uint64),), {"radius": 65}, "radius=65"),
        ((np.zeros(3, np.uint64),), {"radius": -1}, "radius=-1"),
        ((np.zeros(3, np.int64),), {}, "dtype=int64"),
        ((np.zeros((3, 4), np.uint64),), {}, r"shape=\(3, 4\)"),
        ((np.zeros(3, np.uint64),), {"invariant": True}, "invariant=True"),
        ((np.zeros(3, np.uint64),), {"chunk_size": 0}, "chunk_size=0"),
    ],
)
def test_validation(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        duplicate_groups(*args, **kwargs)


def test_hash_validation():
    with pytest.raises(ValueError, match="Received: images dtype=float32"):
        perceptual_hash(np.zeros((2, 32, 32, 3), np.float32))
    with pytest.raises(ValueError, match="batch_size=0"):
        perceptual_hash(np.zeros((2, 32, 32, 3), np.uint8), batch_size=0)
