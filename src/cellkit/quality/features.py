"""Image features for the superposition detector: frequency, edge and colour statistics.

Every public feature function is pure and batch-vectorised: ``(n, h, w, 3) uint8 ->
(n, k) float32``. The work runs on a whole batch at once: OpenCV filters the batch
stacked as one tall image, scipy's FFT runs over the batch axis, and each histogram is a
single ``cv2.calcHist`` call whose second channel is the image index. Pixels within a
kernel radius of an image border are given no image index, so neighbouring images of the
stack never leak into each other's features and every feature is invariant to flips and
quarter turns of square images (to float32 rounding: the stain features' edge sums run in
float32, in an order a flip changes).

Why these features find superpositions (``(1 - a) * cell + a * overlay``):

* edges: the overlay brings "ghost" edges at a fraction of their contrast and dims the
  cell's own edges, so the distribution of gradient and Laplacian magnitudes shifts, at
  every scale of the image pyramid (:func:`edge_features`);
* frequency: the radial power spectrum changes level and slope (:func:`spectral_features`);
* colour: mixtures of two pictures create colours a stained smear does not have
  (:func:`color_features`);
* stain space: a stained smear is light absorbed by two or three dyes, so in optical
  density (``-log`` of the transmitted light) its pixels and its edges lie close to a plane
  spanned by the dyes' colours. A superposition adds light, not dye: the mixture leaves
  that plane, whatever the overlay is (:func:`stain_features`). A colour filter multiplies
  the light, which only shifts optical densities, so it leaves these features unchanged.

Example:
    >>> import numpy as np
    >>> from cellkit.quality.features import superposition_features, feature_names
    >>> x = np.random.default_rng(0).integers(0, 256, (4, 96, 96, 3), dtype=np.uint8)
    >>> f = superposition_features(x)
    >>> f.shape == (4, len(feature_names())), f.dtype
    (True, dtype('float32'))
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import cv2
import numpy as np
import scipy.fft
import scipy.sparse

from cellkit.data.dataset import image_batch
from cellkit.filters.kernels import laplacian_kernel, sobel_kernels

__all__ = [
    "MIN_SIZE",
    "color_features",
    "edge_features",
    "feature_names",
    "spectral_features",
    "stain_features",
    "superposition_features",
]

#: Smallest image side accepted (the pyramid goes down three levels).
MIN_SIZE = 32
#: Images per internal chunk: the image index is a ``uint8`` histogram channel (255 = none), so
#: at most 255; 64 keeps a chunk's float temporaries (about 7 MB) in cache: features 1.5x faster
#: than chunks of 255 (``benchmarks/test_bench_quality.py``, "where the time goes").
_CHUNK = 64

N_BANDS = 12
PYRAMID_LEVELS = 4
#: Log2 histogram bins: 2 per octave. |Laplacian| from 2**-2, gradient magnitude from 2**-1.
_PER_OCTAVE = 2
_LAP_LO, _LAP_BINS = -2, 26
_GRAD_LO, _GRAD_BINS = -1, 25
_LUMA_BINS = 16
_CHROMA_BINS = 8


def _check(images: np.ndarray) -> np.ndarray:
    images = image_batch(images)
    h, w = images.shape[1:3]
    if h < MIN_SIZE or w < MIN_SIZE or h % 8 or w % 8:
        raise ValueError(
            f"`images` must be at least {MIN_SIZE}x{MIN_SIZE} pixels with sides divisible by 8. "
            f"Received: images.shape={images.shape}"
        )
    return images


def _chunked(fn, images: np.ndarray) -> np.ndarray:  # noqa: ANN001
    """Apply a per-chunk feature function over chunks of at most :data:`_CHUNK` images."""
    if images.shape[0] == 0:  # the right number of columns, from a dummy image
        return fn(np.zeros((1, *images.shape[1:]), np.uint8))[:0]
    return np.concatenate(map_chunks(fn, images, n_jobs=1), axis=0)


@functools.cache
def _ids(n: int, h: int, w: int, border: int) -> np.ndarray:
    """``uint8`` ``(n * h, w)``: the image index of each pixel, 255 within ``border`` of an edge."""
    ids = np.full((n, h, w), 255, np.uint8)
    ids[:, border : h - border, border : w - border] = np.arange(n, dtype=np.uint8)[:, None, None]
    ids = ids.reshape(n * h, w)
    ids.setflags(write=False)
    return ids


def _per_image_hist(values: np.ndarray, ids: np.ndarray, n: int, nb: int) -> np.ndarray:
    """Per-image histograms of a ``uint8`` bin image ``values`` (bins ``0..nb-1``), normalised."""
    if n == 0:
        return np.zeros((0, nb), np.float32)
    hist = cv2.calcHist([values, ids], [0, 1], None, [nb, n], [0, nb, 0, n]).T
    return hist / np.maximum(hist.sum(axis=1, keepdims=True), 1.0)


def _log2_bins(values: np.ndarray, lo: int, nb: int) -> np.ndarray:
    """``uint8`` bin of ``log2(values)`` for ``values >= 0``: 2 bins per octave from ``2**lo``.

    Read from the float32 bit pattern (exponent and first mantissa bit, so bins start at
    ``2**k`` and ``1.5 * 2**k``): no logarithm is computed. Values below ``2**lo``
    (zeros included) fall in bin 0, values beyond the last bin in bin ``nb - 1``.
    """
    bits = values.view(np.int32) >> 22
    q = cv2.subtract(bits, (127 + lo) * 2, dtype=cv2.CV_8U)  # saturates below at 0
    return cv2.min(q, nb - 1)


def _gray(images: np.ndarray) -> np.ndarray:
    """Luma (ITU-R 601) of a batch as a float32 tall image ``(n * h, w)``."""
    n, h, w, _ = images.shape
    g = cv2.cvtColor(np.ascontiguousarray(images).reshape(n * h, w, 3), cv2.COLOR_RGB2GRAY)
    return g.astype(np.float32)


@functools.cache
def _band_matrix(h: int, w: int, n_bands: int) -> tuple[scipy.sparse.csr_matrix, np.ndarray]:
    """Ring-averaging matrix (transposed, sparse) over the rfft2 grid as float pairs; band centres."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    r = np.sqrt(fy**2 + fx**2).ravel()
    edges = np.geomspace(1.0 / max(h, w), np.sqrt(0.5), n_bands + 1)
    band = np.clip(np.searchsorted(edges, r, side="right") - 1, -1, n_bands - 1)
    m = np.zeros((r.size, n_bands), np.float32)
    valid = np.flatnonzero(band >= 0)  # the DC term (band -1) is left out
    m[valid, band[valid]] = 1.0
    # rfft2 stores the columns 1..w/2-1 once for two conjugate frequencies: weight them twice.
    col = np.broadcast_to(np.arange(w // 2 + 1)[None, :], (h, w // 2 + 1)).ravel()
    twice = (col > 0) & (col < (w + 1) // 2)
    m[twice] *= 2.0
    m /= np.maximum(m.sum(axis=0, keepdims=True), 1.0)
    # The complex spectrum is viewed as interleaved float32 pairs. Sparse (one band per
    # frequency) and transposed, so that the ring sums are a CSR product in one thread
    # rather than a BLAS call that would oversubscribe the cores next to the feature threads.
    m2t = scipy.sparse.csr_matrix(np.repeat(m, 2, axis=0).T)
    return m2t, np.sqrt(edges[:-1] * edges[1:]).astype(np.float32)


@functools.cache
def _hann(h: int, w: int) -> np.ndarray:
    win = np.outer(np.hanning(h), np.hanning(w)).astype(np.float32)
    win.setflags(write=False)
    return win


def _spectral_chunk(images: np.ndarray, gray: np.ndarray | None = None) -> np.ndarray:
    n, h, w, _ = images.shape
    g = (_gray(images) if gray is None else gray.copy()).reshape(n, h, w)
    g -= g.mean(axis=(1, 2), keepdims=True)
    g *= _hann(h, w)
    f = scipy.fft.rfft2(g, workers=1)
    p = f.view(np.float32).reshape(n, -1)
    np.square(p, out=p)
    m2t, centres = _band_matrix(h, w, N_BANDS)
    bands = np.log10((m2t @ p.T).T + np.float32(1e-6))
    x = np.log10(centres)
    xc = (x - x.mean()).astype(np.float32)
    mean = bands.mean(axis=1, keepdims=True)
    slope = (bands - mean) @ xc / np.float32((xc**2).sum())
    return np.concatenate([bands - bands.max(axis=1, keepdims=True), mean, slope[:, None]], axis=1)


def spectral_features(images: np.ndarray) -> np.ndarray:
    """Radial power spectrum of the luma: ``N_BANDS + 2`` features.

    The mean-removed, Hann-windowed luma is Fourier transformed and its power averaged
    over ``N_BANDS`` log-spaced rings from ``1/size`` to ``sqrt(0.5)`` cycles per pixel.
    Features: log10 band powers relative to the strongest band (the spectrum's shape),
    the mean log10 band power (contrast) and the spectral slope (least-squares slope of
    log power against log frequency).
    """
    return _chunked(_spectral_chunk, _check(images))


_LAP = laplacian_kernel().astype(np.float32)
_SOBEL = tuple(k.astype(np.float32) for k in sobel_kernels())


def _edge_level(tall: np.ndarray, n: int, h: int, w: int) -> list[np.ndarray]:
    ids = _ids(n, h, w, 1)  # 3x3 kernels: the outer ring of each image is reflected, drop it
    lap = cv2.filter2D(tall, cv2.CV_32F, _LAP, borderType=cv2.BORDER_REFLECT)
    np.abs(lap, out=lap)
    gx = cv2.filter2D(tall, cv2.CV_32F, _SOBEL[0], borderType=cv2.BORDER_REFLECT)
    gy = cv2.filter2D(tall, cv2.CV_32F, _SOBEL[1], borderType=cv2.BORDER_REFLECT)
    mag = cv2.magnitude(gx, gy)
    return [
        _per_image_hist(_log2_bins(lap, _LAP_LO, _LAP_BINS), ids, n, _LAP_BINS),
        _per_image_hist(_log2_bins(mag, _GRAD_LO, _GRAD_BINS), ids, n, _GRAD_BINS),
    ]


def _edge_chunk(images: np.ndarray, gray: np.ndarray | None = None) -> np.ndarray:
    n, h, w, _ = images.shape
    g = _gray(images) if gray is None else gray
    out: list[np.ndarray] = []
    for level in range(PYRAMID_LEVELS):
        out += _edge_level(g, n, h, w)
        if level < PYRAMID_LEVELS - 1:
            # 2x2 box average: blocks never straddle two images of the stack (even sides)
            h, w = h // 2, w // 2
            g = cv2.resize(g, (w, n * h), interpolation=cv2.INTER_AREA)
    return np.concatenate(out, axis=1)


def edge_features(images: np.ndarray) -> np.ndarray:
    """Edge statistics of the luma over a 4-level image pyramid.

    At each level (full size, then 2x2 box-averaged halvings): the histogram of absolute
    Laplacian responses (:func:`cellkit.filters.kernels.laplacian_kernel`) and of Sobel
    gradient magnitudes (:func:`cellkit.filters.kernels.sobel_kernels`), both in log2
    bins (2 per octave), as fractions of the image's interior pixels. Together they
    describe edge density and contrast scale by scale: superpositions add weak "ghost"
    edges and dim the strong ones.
    """
    return _chunked(_edge_chunk, _check(images))


def _color_chunk(images: np.ndarray) -> np.ndarray:
    n, h, w, _ = images.shape
    half = cv2.resize(
        np.ascontiguousarray(images).reshape(n * h, w, 3), (w // 2, n * h // 2), interpolation=cv2.INTER_AREA
    )
    ycc = cv2.cvtColor(half, cv2.COLOR_RGB2YCrCb)
    ids = _ids(n, h // 2, w // 2, 0)
    if n == 0:
        return np.zeros((0, _LUMA_BINS + _CHROMA_BINS**2), np.float32)
    luma = cv2.calcHist([ycc, ids], [0, 3], None, [_LUMA_BINS, n], [0, 256, 0, n]).T
    chroma = cv2.calcHist(
        [ycc, ids], [1, 2, 3], None, [_CHROMA_BINS, _CHROMA_BINS, n], [0, 256, 0, 256, 0, n]
    )
    chroma = chroma.reshape(_CHROMA_BINS * _CHROMA_BINS, n).T
    count = np.float32((h // 2) * (w // 2))
    return np.concatenate([luma / count, np.sqrt(chroma / count)], axis=1)


def color_features(images: np.ndarray) -> np.ndarray:
    """Colour statistics on the half-size image: luma and joint chroma histograms (YCrCb).

    A 16-bin luma histogram and the square root of an ``8 x 8`` Cr/Cb histogram over the
    whole chroma plane: a stained smear occupies a few of its cells, overlays of natural
    pictures and drawings bring colours (greens, greys, saturated blues) it never has.
    """
    return _chunked(_color_chunk, _check(images))


#: Optical density of each 8-bit value: ``-log((v + 1) / 256)``.
_OD_LUT = (-np.log((np.arange(256, dtype=np.float64) + 1.0) / 256.0)).astype(np.float32)


#: The six distinct entries of a symmetric 3x3 matrix, in the order :func:`_second_moments` sums them.
_PAIRS = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))


def _second_moments(planes: np.ndarray) -> np.ndarray:
    """``(n, 3, 3)`` float64: ``sum_p planes[i, c, p] * planes[i, d, p]`` for ``(n, 3, p)`` float32 planes.

    Six row-wise ``np.vecdot`` over contiguous rows, in float32 (about 1e-6 of the sum): twice
    as fast as a batched ``(3, p) @ (p, 3)`` matmul, which BLAS runs one tiny product at a time.
    """
    sums = [np.vecdot(planes[:, c], planes[:, d]).astype(np.float64) for c, d in _PAIRS]
    m = np.empty((planes.shape[0], 3, 3), np.float64)
    for k, (c, d) in enumerate(_PAIRS):
        m[:, c, d] = m[:, d, c] = sums[k]
    return m


def _eigen_fractions(m: np.ndarray) -> np.ndarray:
    """``(n, 3)``: eigenvalues (ascending) of symmetric 3x3 matrices ``m``, over their sum."""
    ev = np.maximum(np.linalg.eigvalsh(m), 0.0)
    return (ev / np.maximum(ev.sum(axis=1, keepdims=True), 1e-12)).astype(np.float32)


def _stain_chunk(images: np.ndarray) -> np.ndarray:
    n, h, w, _ = images.shape
    # Channel planes (n, 3, h, w) of optical density: every sum below runs over contiguous rows.
    planes = np.ascontiguousarray(np.asarray(images).transpose(0, 3, 1, 2)).reshape(n * 3 * h, w)
    od = cv2.LUT(planes, _OD_LUT).reshape(n, 3, h, w)
    # Pixel covariance accumulated in float64 (its smallest eigenvalue is a small difference, and
    # a float32 sum would change with the pixel order, which a flip changes).
    pixels = np.stack([
        cv2.calcCovarMatrix(plane, None, cv2.COVAR_NORMAL | cv2.COVAR_COLS, cv2.CV_64F)[0]
        for plane in od.reshape(n, 3, h * w)
    ])
    gx = np.subtract(od[..., 1:], od[..., :-1]).reshape(n, 3, -1)
    gy = np.subtract(od[:, :, 1:], od[:, :, :-1]).reshape(n, 3, -1)
    edges = _second_moments(gx) + _second_moments(gy)
    f = np.concatenate([_eigen_fractions(pixels), _eigen_fractions(edges)], axis=1)
    return np.concatenate([f, np.log10(f + np.float32(1e-4))], axis=1)


def stain_features(images: np.ndarray) -> np.ndarray:
    """Where the pixels and edges sit in optical-density space: 12 features.

    Optical density ``OD = -log((v + 1) / 256)`` per channel. The eigenvalues of each
    image's OD covariance over its pixels, and of the second moments of its OD gradients
    (horizontal and vertical neighbour differences), each divided by their sum, and the
    log10 of those fractions. A stained smear has a small third eigenvalue (its colours lie
    near the plane of its dyes); superposed light raises it. A per-channel gain (colour
    filter) shifts OD by a constant and changes neither matrix.
    """
    return _chunked(_stain_chunk, _check(images))


def features_of_chunk(images: np.ndarray) -> np.ndarray:
    """:func:`superposition_features` of at most :data:`_CHUNK` checked images, in this thread."""
    gray = _gray(images)
    return np.concatenate(
        [_spectral_chunk(images, gray), _edge_chunk(images, gray), _color_chunk(images), _stain_chunk(images)],
        axis=1,
    ).astype(np.float32, copy=False)


def map_chunks(fn: Callable[[np.ndarray], Any], images: np.ndarray, n_jobs: int = 2) -> list[Any]:
    """``[fn(chunk) for chunk in images]`` over chunks of :data:`_CHUNK` images, in order, on ``n_jobs`` threads.

    OpenCV, the FFT and NumPy's loops release the GIL, so the threads share the work; a chunk
    small enough to stay in cache is what makes each thread fast.
    """
    chunks = [images[s : s + _CHUNK] for s in range(0, images.shape[0], _CHUNK)]
    if n_jobs > 1 and len(chunks) > 1:
        with ThreadPoolExecutor(max_workers=n_jobs) as pool:
            return list(pool.map(fn, chunks))
    return [fn(c) for c in chunks]


def superposition_features(images: np.ndarray, n_jobs: int = 2) -> np.ndarray:
    """All features of the superposition detector, ``(n, len(feature_names()))`` float32.

    The concatenation of :func:`spectral_features`, :func:`edge_features`,
    :func:`color_features` and :func:`stain_features`, chunk by chunk (:func:`map_chunks`).
    """
    images = _check(images)
    if images.shape[0] == 0:
        return np.zeros((0, len(feature_names())), np.float32)
    return np.concatenate(map_chunks(features_of_chunk, images, n_jobs), axis=0)


def feature_names() -> list[str]:
    """Names of the columns of :func:`superposition_features`, in order."""
    names = [f"spectrum_band{i}" for i in range(N_BANDS)] + ["spectrum_mean", "spectrum_slope"]
    for level in range(PYRAMID_LEVELS):
        names += [f"edge_l{level}_laplacian{i}" for i in range(_LAP_BINS)]
        names += [f"edge_l{level}_gradient{i}" for i in range(_GRAD_BINS)]
    names += [f"color_luma{i}" for i in range(_LUMA_BINS)]
    names += [f"color_chroma{i}" for i in range(_CHROMA_BINS**2)]
    stain = [f"stain_{part}_eigen{i}" for part in ("pixels", "edges") for i in range(3)]
    names += stain + [f"{name}_log10" for name in stain]
    return names
