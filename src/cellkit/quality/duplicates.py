"""Near-duplicate images: perceptual hashes and groups of images within a Hamming radius.

:func:`perceptual_hash` is the classic pHash (as in the ``imagehash`` package): grey
levels, shrunk to 32x32 by area averaging, a 2-D DCT, the 8x8 lowest frequencies
thresholded at their median: 64 bits in a ``uint64``. Re-encoding, small brightness or
contrast changes and rescaling move few bits; different cells differ in about half.

:func:`duplicate_groups` links every pair of images whose hashes differ in at most
``radius`` bits and returns the connected components (a group is the union of chained
pairs: if a~b and b~c, then a, b and c share a group even when a and c are further
apart). Pairs are found by XOR and popcount over chunks of rows, so memory stays bounded
and 15,000 images take about a second. With ``invariant=True`` an image also matches
flipped and rotated copies of another (the 8 symmetries of the square; their hashes come
from the same DCT, with sign changes and a transpose).

Example:
    >>> import numpy as np
    >>> from cellkit.quality.duplicates import duplicate_groups, perceptual_hash
    >>> rng = np.random.default_rng(0)
    >>> a = rng.integers(0, 256, (3, 96, 96, 3), dtype=np.uint8)
    >>> x = np.concatenate([a, a[:1] // 2 + 60])  # image 3: a dimmer copy of image 0
    >>> perceptual_hash(x).dtype
    dtype('uint64')
    >>> duplicate_groups(x).tolist()
    [0, -1, -1, 0]
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import scipy.fft
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from cellkit.data.dataset import image_batch

__all__ = [
    "DEFAULT_RADIUS",
    "duplicate_groups",
    "groups_from_pairs",
    "hamming_distance",
    "near_duplicate_pairs",
    "perceptual_hash",
]

#: Default Hamming radius (bits out of 64) of :func:`duplicate_groups`. Measured on
#: pbc96 (14,528 images, 11 of them byte-identical copies): within 4 bits there are only
#: those 11 copies and one re-acquisition of the same cell; different cells start at 6
#: bits (8 pairs at 6, 138 more at 8). Copies of 2,000 of its images re-encoded (JPEG
#: quality 50-95), brightened or darkened (x0.9, x1.05, +10, -15), contrast-stretched
#: (x1.1), rescaled (96->48->96) or blurred all stay within 4 bits. Shifts and crops
#: move more bits (1-pixel shift: 53% within 4 bits).
DEFAULT_RADIUS: int = 4

_HASH_SIDE = 32
_LOW = 8
_BITS = _LOW * _LOW
_GREY = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601 luma
_HAS_BITWISE_COUNT = hasattr(np, "bitwise_count")
_POPCOUNT8 = np.array([bin(i).count("1") for i in range(256)], np.uint8)


def _area_matrix(size: int, out: int) -> np.ndarray:
    """``(out, size)`` matrix that averages ``size`` samples into ``out`` equal bins."""
    edges = np.arange(out + 1) * (size / out)
    lo, hi = edges[:-1, None], edges[1:, None]
    px = np.arange(size)[None, :]
    overlap = np.clip(np.minimum(hi, px + 1) - np.maximum(lo, px), 0, None)
    return (overlap / overlap.sum(axis=1, keepdims=True)).astype(np.float32)


def _low_dct(images: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """Yield the 8x8 low-frequency DCT block of each batch, ``(b, 8, 8)`` float64."""
    n, h, w, _ = images.shape
    ry = _area_matrix(h, _HASH_SIDE)
    # grey conversion and column averaging in one (w * 3, 32) matrix
    rx = np.kron(_area_matrix(w, _HASH_SIDE).T, np.ones((3, 1), np.float32)) * np.tile(_GREY, w)[:, None]
    for s in range(0, n, batch_size):
        batch = images[s : s + batch_size]
        rows = batch.reshape(batch.shape[0], h, w * 3).astype(np.float32) @ rx  # (b, h, 32)
        small = ry @ rows  # (b, 32, 32): grey levels, area-averaged
        coef = scipy.fft.dctn(small.astype(np.float64), type=2, axes=(1, 2), norm="ortho")
        yield coef[:, :_LOW, :_LOW]


def _bits_to_uint64(bits: np.ndarray) -> np.ndarray:
    """Pack ``(..., 64)`` booleans (first = most significant) into ``uint64``."""
    packed = np.packbits(bits.astype(np.uint8), axis=-1)  # (..., 8) big-endian bytes
    return np.ascontiguousarray(packed).view(">u8")[..., 0].astype(np.uint64)


def _hash_block(block: np.ndarray) -> np.ndarray:
    """pHash bits of ``(b, 8, 8)`` DCT blocks: above the median of the block."""
    flat = block.reshape(block.shape[0], _BITS)
    return _bits_to_uint64(flat > np.median(flat, axis=1, keepdims=True))


def _dihedral_blocks(block: np.ndarray) -> np.ndarray:
    """The DCT blocks of the 8 flips/rotations of each image, ``(b, 8, 8, 8)``.

    For an orthonormal DCT-II, reversing the rows multiplies coefficient ``(u, v)`` by
    ``(-1)**u``, reversing the columns by ``(-1)**v``, and transposing the image
    transposes the block. Order: identity, flip columns, flip rows, rotate 180, then the
    same four after a transpose.
    """
    sign = (-1.0) ** np.arange(_LOW)
    su, sv = sign[:, None], sign[None, :]
    plain = [block, block * sv, block * su, block * su * sv]
    trans = [b.transpose(0, 2, 1) for b in plain]
    return np.stack(plain + trans, axis=1)


def perceptual_hash(images: Any, *, dihedral: bool = False, batch_size: int = 2048) -> np.ndarray:
    """64-bit perceptual hash (pHash) of each image, vectorised over the batch.

    Args:
        images: a cellkit Dataset or a ``uint8`` ``(n, h, w, 3)`` RGB array.
        dihedral: also return the hashes of the 8 flips/rotations of each image.
        batch_size: images per batch (bounds memory).

    Returns:
        ``uint64`` ``(n,)``, or ``(n, 8)`` when ``dihedral`` (column 0: the image itself;
        the others: its flips and rotations, as if the image had been transformed).

    Example:
        >>> import numpy as np
        >>> x = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
        >>> h = perceptual_hash(x, dihedral=True)
        >>> h.shape, bool(h[0, 2] == perceptual_hash(x[:1, ::-1])[0])
        ((2, 8), True)
    """
    images = image_batch(images)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"`batch_size` must be an integer >= 1. Received: batch_size={batch_size!r}")
    n = images.shape[0]
    out = np.zeros((n, 8) if dihedral else (n,), np.uint64)
    start = 0
    for block in _low_dct(images, int(batch_size)):
        b = block.shape[0]
        if dihedral:
            variants = _dihedral_blocks(block)
            out[start : start + b] = _hash_block(variants.reshape(-1, _LOW, _LOW)).reshape(b, 8)
        else:
            out[start : start + b] = _hash_block(block)
        start += b
    return out


def _popcount(x: np.ndarray) -> np.ndarray:
    if _HAS_BITWISE_COUNT:
        return np.bitwise_count(x)
    by = x.view(np.uint8).reshape(*x.shape, 8)  # numpy < 2 has no bitwise_count
    return _POPCOUNT8[by].sum(axis=-1, dtype=np.uint8)


def hamming_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Number of differing bits between ``uint64`` hashes (broadcasting), ``uint8``.

    Example:
        >>> import numpy as np
        >>> hamming_distance(np.uint64(0b1011), np.array([0, 0b1000], np.uint64)).tolist()
        [3, 2]
    """
    return _popcount(np.bitwise_xor(np.asarray(a, np.uint64), np.asarray(b, np.uint64)))


def _check_radius(radius: int) -> int:
    if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or not 0 <= radius <= _BITS:
        raise ValueError(f"`radius` must be an integer in [0, {_BITS}]. Received: radius={radius!r}")
    return int(radius)


def _as_hashes(images_or_hashes: Any, invariant: bool, batch_size: int) -> np.ndarray:
    """``(n, 8)`` dihedral hashes when ``invariant``, else ``(n,)`` hashes."""
    x = getattr(images_or_hashes, "images", images_or_hashes)
    if isinstance(x, np.ndarray) and x.ndim == 4:
        return perceptual_hash(x, dihedral=invariant, batch_size=batch_size)
    h = np.asarray(x)
    if h.dtype != np.uint64 or h.ndim not in (1, 2) or (h.ndim == 2 and h.shape[1] != 8):
        raise ValueError(
            "`images_or_hashes` must be uint8 images (n, h, w, 3), a Dataset, uint64 hashes (n,) "
            f"or dihedral hashes (n, 8) from perceptual_hash(..., dihedral=True). "
            f"Received: dtype={h.dtype}, shape={h.shape}"
        )
    if invariant and h.ndim == 1:
        raise ValueError(
            "`invariant=True` needs images or the (n, 8) hashes of perceptual_hash(..., dihedral=True). "
            f"Received: hashes of shape {h.shape}"
        )
    if not invariant and h.ndim == 2:
        return h[:, 0]
    return h


def near_duplicate_pairs(
    images_or_hashes: Any,
    radius: int = DEFAULT_RADIUS,
    *,
    invariant: bool = False,
    chunk_size: int | None = None,
    batch_size: int = 2048,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs ``i < j`` whose hashes differ in at most ``radius`` bits.

    Args:
        images_or_hashes: images (array or Dataset), ``uint64`` hashes ``(n,)``, or the
            ``(n, 8)`` dihedral hashes of :func:`perceptual_hash`.
        radius: largest Hamming distance of a pair (0 to 64).
        invariant: compare each image with the 8 flips/rotations of every later image
            and keep the smallest distance (8 times the work).
        chunk_size: rows compared at once (default: about 4 million hashes per chunk,
            i.e. 32 MB of XORs).
        batch_size: images hashed at once.

    Returns:
        ``(i, j, distance)``: ``int64``, ``int64``, ``uint8`` arrays, sorted by ``i`` then ``j``.

    Example:
        >>> import numpy as np
        >>> h = np.array([0, 1, 3, 2**63 - 1], np.uint64)
        >>> [a.tolist() for a in near_duplicate_pairs(h, radius=1)]
        [[0, 1], [1, 2], [1, 1]]
    """
    radius = _check_radius(radius)
    hashes = _as_hashes(images_or_hashes, invariant, batch_size)
    n = hashes.shape[0]
    variants = hashes if hashes.ndim == 2 else hashes[:, None]
    base = variants[:, 0]
    if chunk_size is None:
        chunk_size = max(1, (4 << 20) // max(n, 1))
    elif isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"`chunk_size` must be an integer >= 1. Received: chunk_size={chunk_size!r}")
    ii, jj, dd = [], [], []
    for s in range(0, n, int(chunk_size)):
        e = min(n, s + int(chunk_size))
        # rows s..e against the images from s on (upper triangle); with variants, the
        # distance to the closest flip/rotation of the other image
        dist = hamming_distance(base[s:e, None], variants[None, s:, 0])
        for k in range(1, variants.shape[1]):
            np.minimum(dist, hamming_distance(base[s:e, None], variants[None, s:, k]), out=dist)
        r, c = np.nonzero(dist <= radius)
        keep = c > r  # column offset c is image s + c; the row is image s + r
        ii.append(r[keep] + s)
        jj.append(c[keep] + s)
        dd.append(dist[r[keep], c[keep]])
    if not ii:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.uint8)
    return (
        np.concatenate(ii).astype(np.int64),
        np.concatenate(jj).astype(np.int64),
        np.concatenate(dd).astype(np.uint8),
    )


def duplicate_groups(
    images_or_hashes: Any,
    radius: int = DEFAULT_RADIUS,
    *,
    invariant: bool = False,
    chunk_size: int | None = None,
    batch_size: int = 2048,
) -> np.ndarray:
    """Group id of each image, ``int64`` ``(n,)``; ``-1`` for images with no near-duplicate.

    Two images are linked when their perceptual hashes differ in at most ``radius`` bits
    (with ``invariant=True``: after the best flip/rotation); groups are the connected
    components of these links, numbered ``0, 1, ...`` in order of their first image.
    Arguments as in :func:`near_duplicate_pairs`.

    Example:
        >>> import numpy as np
        >>> h = np.array([0b0, 0b111, 0b1, 0b11, 2**40 - 1], np.uint64)
        >>> duplicate_groups(h, radius=1).tolist()  # 0~2~3~1 chained; 4 alone
        [0, 0, 0, 0, -1]
    """
    hashes = _as_hashes(images_or_hashes, invariant, batch_size)
    i, j, _ = near_duplicate_pairs(hashes, radius, invariant=invariant, chunk_size=chunk_size)
    return groups_from_pairs(hashes.shape[0], i, j)


def groups_from_pairs(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Connected components of the links ``i[k] ~ j[k]`` among ``n`` items, singletons -1.

    Example:
        >>> groups_from_pairs(5, np.array([3, 1]), np.array([4, 3])).tolist()
        [-1, 0, -1, 0, 0]
    """
    if n == 0:
        return np.zeros(0, np.int64)
    graph = coo_matrix((np.ones(len(i), np.int8), (np.asarray(i), np.asarray(j))), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    size = np.bincount(comp)
    comp = np.where(size[comp] > 1, comp, -1)
    # renumber the groups 0, 1, ... in order of their first member
    grouped = comp >= 0
    _, first = np.unique(comp[grouped], return_index=True)
    order = np.argsort(np.flatnonzero(grouped)[first], kind="stable")
    new_id = np.empty(len(first), np.int64)
    new_id[order] = np.arange(len(first))
    out = np.full(n, -1, np.int64)
    out[grouped] = new_id[np.searchsorted(np.unique(comp[grouped]), comp[grouped])]
    return out
