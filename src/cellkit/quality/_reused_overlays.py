"""Find one overlay reused on many images: the copies share a component the cells do not.

A dataset corrupted with memes often carries *the same* picture on dozens of images. Each
copy is ``(1 - a) * cell + a * overlay`` with a different cell and ``a``, so their band-pass
images correlate wherever the overlay has structure, while two clean images hardly do.
:class:`ReusedOverlaySearch` compares every image with every other one (one matrix
product per chunk of images) on the periphery of the picture, where the overlay is seen
and the cell is not, and flags the images whose best matches stand out from the dataset
(a robust z-score). Two photographs of the same cell correlate too, but in the centre as
well: images whose best matches also share the centre are near-duplicates, not overlays,
and are not flagged.

The best copies of each reused overlay are kept, so that :meth:`ReusedOverlaySearch.z_scores`
also finds the same overlay on images not seen by ``fit``.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> cells = rng.integers(100, 200, (60, 48, 48, 3)).astype(np.uint8)
    >>> meme = rng.integers(0, 256, (48, 48, 3)).astype(np.float32)
    >>> cells[:10] = (0.6 * cells[:10] + 0.4 * meme).astype(np.uint8)
    >>> search = ReusedOverlaySearch().fit(cells)
    >>> bool(search.flags_[:10].all() and not search.flags_[10:].any())
    True
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

__all__ = ["ReusedOverlaySearch"]

_CHUNK = 2048
#: Images per chunk of :meth:`ReusedOverlaySearch.z_scores`.
_SCORE_CHUNK = 256


def _bandpass(images: np.ndarray, scale: int, sigma: float) -> np.ndarray:
    """Luma at ``1 / scale`` of the size minus its Gaussian blur, ``(n, h', w')`` float32."""
    n, h, w, _ = images.shape
    sh, sw = h // scale, w // scale
    out = np.empty((n, sh, sw), np.float32)
    k = int(2 * round(3 * sigma) + 1)
    for s in range(0, n, _CHUNK):
        chunk = np.ascontiguousarray(images[s : s + _CHUNK])
        m = chunk.shape[0]
        g = cv2.cvtColor(chunk.reshape(m * h, w, 3), cv2.COLOR_RGB2GRAY).astype(np.float32)
        if scale > 1:
            g = cv2.resize(g, (sw, m * sh), interpolation=cv2.INTER_AREA)
        out[s : s + m] = (g - cv2.GaussianBlur(g, (k, k), sigma, borderType=cv2.BORDER_REFLECT)).reshape(m, sh, sw)
    return out


def _top_pixels(mask: np.ndarray, key: np.ndarray, count: int) -> np.ndarray:
    """The ``count`` pixels of ``mask`` with the highest ``key`` (all of them when fewer)."""
    if mask.sum() <= count:
        return mask
    cut = np.sort(key[mask])[-count]
    return mask & (key >= cut)


def _unit_rows(v: np.ndarray) -> np.ndarray:
    v = v - v.mean(axis=1, keepdims=True)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-6)


def _regions(h: int, w: int, disc: float, border: int) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the periphery (outside a centred disc) and of the disc, away from the border."""
    yy, xx = np.mgrid[0:h, 0:w]
    r2 = ((yy - (h - 1) / 2) / (disc * h)) ** 2 + ((xx - (w - 1) / 2) / (disc * w)) ** 2
    inner = np.zeros((h, w), bool)
    inner[border : h - border, border : w - border] = True
    return (r2 > 1) & inner, (r2 <= 1) & inner


def _representatives(candidates: np.ndarray, matches: np.ndarray, flags: np.ndarray, z: np.ndarray,
                     top: int) -> np.ndarray:
    """Of each group of flagged images linked by best matches, the ``top`` with the highest ``z``.

    The copies of one overlay are ``(1 - a) * cell + a * overlay``: every copy's best matches
    are the copies with the most overlay (highest ``a``), the same for all of them, and those
    match the others best (highest ``z``). Keeping them alone, per group, gives any image the
    mean correlation with its best matches that comparing it with every copy would, at a
    fraction of the cost (Table 1's corruption of all pbc96: 932 flagged copies -> 113 kept,
    ``benchmarks/probes/reused_overlay_memory.py``).
    """
    flagged = candidates[flags[candidates]]
    if flagged.size == 0:
        return flagged
    position = np.full(flags.size, -1)
    position[flagged] = np.arange(flagged.size)
    src = np.repeat(position[candidates], matches.shape[1])
    dst = position[matches.ravel()]
    keep = (src >= 0) & (dst >= 0)
    graph = coo_matrix((np.ones(int(keep.sum())), (src[keep], dst[keep])), shape=(flagged.size,) * 2)
    _, group = connected_components(graph, directed=True, connection="weak")
    order = np.lexsort((-z[flagged], group))  # by group, best first
    rank = np.arange(order.size) - np.searchsorted(group[order], group[order])
    return np.sort(flagged[order[rank < top]])


class ReusedOverlaySearch:
    """Flag images that share one overlay with several others (see the module docstring).

    Args:
        top: each image's statistic is the mean of its ``top`` best correlations.
        z_threshold: flag images whose statistic is this many robust standard deviations
            (median absolute deviation) above the median.
        duplicate_correlation: best matches whose centres correlate more than this on
            average are near-duplicates of the image, not copies of an overlay.
        scale, sigma: band-pass at ``1 / scale`` of the image size, minus a Gaussian blur
            of ``sigma`` pixels: the scale of overlay strokes and text.
        disc: radius of the central disc (fraction of the side) left out of the comparison.

    Fitted attributes: ``z_`` (each image's z-score), ``flags_`` (reused overlay),
    ``duplicates_`` (share their best matches with the centre too), ``median_``, ``mad_``,
    ``templates_`` (the flagged images :meth:`z_scores` compares with: the ``top`` + 1 best of
    each reused overlay's copies).
    """

    def __init__(self, top: int = 5, z_threshold: float = 6.0, duplicate_correlation: float = 0.97, *,
                 scale: int = 1, sigma: float = 1.0, disc: float = 0.31, pixels: int | None = 1600) -> None:
        self.top = top
        self.z_threshold = z_threshold
        self.duplicate_correlation = duplicate_correlation
        self.scale = scale
        self.sigma = sigma
        self.disc = disc
        self.pixels = pixels

    def _masks(self, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        """Periphery and centre masks; at most ``pixels`` of each, a fixed pattern symmetric
        under flips and quarter turns (so the 8 orientations of an image select the same set)."""
        outer, inner = _regions(h, w, self.disc, border=int(round(3 * self.sigma)) + 1)
        if self.pixels is None or h != w:
            return outer, inner
        keep = np.random.default_rng(0).random((h, w))
        keep = np.max([np.rot90(v, k) for v in (keep, keep[:, ::-1]) for k in range(4)], axis=0)  # symmetric
        return tuple(_top_pixels(m, keep, self.pixels) for m in (outer, inner))

    def _vectors(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        bp = _bandpass(images, self.scale, self.sigma)
        outer, inner = self._masks(bp.shape[1], bp.shape[2])
        return _unit_rows(bp[:, outer]), _unit_rows(bp[:, inner]), bp

    def fit(self, images: np.ndarray) -> ReusedOverlaySearch:
        n = images.shape[0]
        outer, inner, bp = self._vectors(images)
        top = int(min(self.top, max(n - 1, 1)))
        stat = np.zeros(n, np.float32)
        for s in range(0, n, _CHUNK):
            stat[s : s + _CHUNK] = self._best_mean(outer, s, top)[0]
        self.median_ = float(np.median(stat))
        self.mad_ = float(max(1.4826 * np.median(np.abs(stat - self.median_)), 1e-3))
        self.z_ = (stat - self.median_) / self.mad_
        # Only the images above the threshold need their best matches' centres compared.
        self.duplicates_ = np.zeros(n, bool)
        candidates = np.flatnonzero(self.z_ > self.z_threshold)
        matches = np.zeros((candidates.size, top), np.int64)  # each candidate's best matches
        for s in range(0, candidates.size, _CHUNK):
            rows = candidates[s : s + _CHUNK]
            g = outer[rows] @ outer.T
            g[np.arange(rows.size), rows] = -1.0
            best = np.argpartition(-g, top - 1, axis=1)[:, :top]
            matches[s : s + rows.size] = best
            centre = np.einsum("id,ikd->i", inner[rows], inner[best]) / top
            self.duplicates_[rows] = centre > self.duplicate_correlation
        self.flags_ = (self.z_ > self.z_threshold) & ~self.duplicates_
        # Kept for z_scores: of each reused overlay (flagged images linked by best matches), the
        # `top` + 1 copies that match the others best (a kept copy, scored, leaves `top` others),
        # in their 8 orientations (square images; 2 otherwise), so that an image scores the
        # same whatever way it is flipped or turned.
        self.templates_ = _representatives(candidates, matches, self.flags_, self.z_, top + 1)
        memory = bp[self.templates_]
        views = [memory, memory[:, :, ::-1]]
        if memory.shape[1] == memory.shape[2]:
            views = [np.rot90(v, k, axes=(1, 2)) for v in views for k in range(4)]
        mask = self._masks(*bp.shape[1:])[0]
        self.memory_ = np.concatenate([_unit_rows(v[:, mask]) for v in views]) if memory.size else outer[:0]
        return self

    @staticmethod
    def _best_mean(outer: np.ndarray, start: int, top: int) -> tuple[np.ndarray, np.ndarray]:
        """Mean of the ``top`` best correlations of rows ``start:start + _CHUNK`` with all others."""
        g = outer[start : start + _CHUNK] @ outer.T
        rows = np.arange(g.shape[0])
        g[rows, start + rows] = -1.0  # not oneself
        best = np.partition(g, g.shape[1] - top, axis=1)[:, -top:]
        return best.mean(axis=1), g

    def z_scores(self, images: np.ndarray) -> np.ndarray:
        """Each image's z-score against the flagged images of ``fit`` (0 when none were flagged).

        An image is compared with the copies of the reused overlays found by ``fit``: it
        scores high when it carries one of them too.
        """
        n = images.shape[0]
        if self.memory_.shape[0] == 0 or n == 0:
            return np.zeros(n, np.float32)
        top = int(min(self.top, max(1, self.memory_.shape[0] // 8)))
        z = np.empty(n, np.float32)
        # All steps on one chunk of images at a time: its temporaries stay in cache (1.5x faster
        # than each step on every image in turn).
        for s in range(0, n, _SCORE_CHUNK):
            g = self._vectors(images[s : s + _SCORE_CHUNK])[0] @ self.memory_.T
            g[g > 0.999] = -1.0  # an image of the fit is not its own match
            best = -np.partition(-g, top - 1, axis=1)[:, :top]
            z[s : s + g.shape[0]] = (best.mean(axis=1) - self.median_) / self.mad_
        return z
