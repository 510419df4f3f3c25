"""Slide artefacts: ink/stain deposits, opaque blots and air bubbles.

* ``ink_deposits``: dark blobs and smudges of a random dark colour (stain precipitate,
  marker ink, dirt on the slide or the sensor): irregular soft-edged ellipses, up to 3:1
  elongated, darker in the middle. Severity raises their number, size and opacity.
* ``opaque_blots``: one opaque dark blot over the cell (a drop of ink, debris lying on it),
  its ragged outline a level set of smooth random noise, covering :data:`BLOT_COVERAGE` of
  the cell's area (10%-40%; the cell taken as the disk of radius a quarter of the image side
  around the centre). Nothing in training augmentation is noise-shaped.
* ``bubbles``: air bubbles in the mounting medium. Each is a disk that refracts (magnifies
  what lies under it, like a weak lens), is brighter inside with a bright halo just
  inside its rim, and is outlined by a thin dark ring where light is scattered away.
  Severity raises their number, radius and strength.

Sizes are given for 96-pixel images and scale with the image. All random draws (positions,
shapes, colours) are made for the largest severity and the first ``count[s]`` artefacts are
used, so with one seed a higher severity adds artefacts and grows them in place.

Example:
    >>> import numpy as np
    >>> from cellkit.corrupt.artefacts import bubbles, ink_deposits
    >>> x = np.full((4, 96, 96, 3), 200, np.uint8)
    >>> bool(ink_deposits(x, 5, rng=0).mean() < x.mean() < bubbles(x, 5, rng=0).mean())
    True
"""

from __future__ import annotations

import cv2
import numpy as np

from cellkit._random import as_generator
from cellkit.corrupt._batch import check_batch, check_severity, map_chunks

__all__ = [
    "BLOT_COVERAGE",
    "BUBBLE_COUNTS",
    "BUBBLE_RADII",
    "BUBBLE_STRENGTHS",
    "INK_COUNTS",
    "INK_OPACITIES",
    "INK_PALETTE",
    "INK_RADII",
    "bubbles",
    "ink_deposits",
    "opaque_blots",
]

#: Number of deposits, mean radius (pixels per 96) and peak opacity, severities 1..5.
INK_COUNTS: tuple[int, ...] = (1, 2, 3, 4, 6)
INK_RADII: tuple[float, ...] = (6.0, 7.0, 8.5, 10.0, 11.5)
INK_OPACITIES: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9)
#: Base colours of deposits (RGB): near-black, blue ink, violet precipitate, brown dirt, dark green.
INK_PALETTE: tuple[tuple[int, int, int], ...] = ((22, 20, 26), (28, 38, 96), (64, 26, 84), (74, 48, 26), (24, 60, 40))

#: Share of the cell's area (the disk of radius ``side / 4`` at the centre) an opaque blot covers, severities 1..5.
BLOT_COVERAGE: tuple[float, ...] = (0.10, 0.16, 0.22, 0.30, 0.40)

#: Number of bubbles, mean radius (pixels per 96) and strength (brightening, ring darkness,
#: magnification all scale with it), severities 1..5.
BUBBLE_COUNTS: tuple[int, ...] = (1, 1, 2, 2, 3)
BUBBLE_RADII: tuple[float, ...] = (9.0, 12.0, 14.0, 16.0, 18.0)
BUBBLE_STRENGTHS: tuple[float, ...] = (0.3, 0.42, 0.54, 0.66, 0.8)

_REFERENCE_SIZE = 96.0
# small chunks: each window must hold the chunk's largest artefact
_CHUNK = 8


class _Window:
    """Per-image square windows ``[c - extent, c + extent]`` of a chunk, read and written by fancy indexing.

    Artefacts are local: every pixel outside the window is left exactly as it is, so working
    on windows gives the same result as working on whole images, several times faster.
    """

    def __init__(self, shape: tuple[int, ...], cx: np.ndarray, cy: np.ndarray, extent: float) -> None:
        m, h, w, _ = shape
        side = 2 * int(np.ceil(extent)) + 3
        wy, wx = min(h, side), min(w, side)
        y0 = np.clip(np.floor(cy - extent).astype(np.int64) - 1, 0, h - wy)
        x0 = np.clip(np.floor(cx - extent).astype(np.int64) - 1, 0, w - wx)
        rows = (y0[:, None] + np.arange(wy))[:, :, None]  # (m, wy, 1)
        cols = (x0[:, None] + np.arange(wx))[:, None, :]  # (m, 1, wx)
        self.pixels = (np.arange(m)[:, None, None] * h + rows) * w + cols  # rows of x.reshape(-1, c)
        self.ys = rows.astype(np.float32)
        self.xs = cols.astype(np.float32)

    def read(self, x: np.ndarray) -> np.ndarray:
        return np.take(x.reshape(-1, x.shape[-1]), self.pixels, axis=0)

    def write(self, x: np.ndarray, patch: np.ndarray) -> None:
        x.reshape(-1, x.shape[-1])[self.pixels.ravel()] = patch.reshape(-1, x.shape[-1])


def _bilinear(patch: np.ndarray, src_x: np.ndarray, src_y: np.ndarray) -> np.ndarray:
    """Sample each ``(m, wy, wx, 3)`` patch at its own coordinates (clamped to the patch), bilinearly.

    Plain element-wise NumPy, so the result of a pixel does not depend on where its
    window starts (OpenCV's vectorised remap may differ in the last bit).
    """
    m, wy, wx, c = patch.shape
    sx = np.clip(src_x, 0, wx - 1)
    sy = np.clip(src_y, 0, wy - 1)
    x0 = np.minimum(np.floor(sx), wx - 2).astype(np.int64) if wx > 1 else np.zeros(sx.shape, np.int64)
    y0 = np.minimum(np.floor(sy), wy - 2).astype(np.int64) if wy > 1 else np.zeros(sy.shape, np.int64)
    fx = (sx - x0).astype(np.float32)[..., None]
    fy = (sy - y0).astype(np.float32)[..., None]
    x1 = np.minimum(x0 + 1, wx - 1)
    y1 = np.minimum(y0 + 1, wy - 1)
    flat = patch.reshape(-1, c)
    base = (np.arange(m)[:, None, None] * wy) * wx
    r0, r1 = base + y0 * wx, base + y1 * wx

    def at(idx: np.ndarray) -> np.ndarray:
        return np.take(flat, idx, axis=0)

    top = at(r0 + x0)
    top += (at(r0 + x1) - top) * fx
    bottom = at(r1 + x0)
    bottom += (at(r1 + x1) - bottom) * fx
    top += (bottom - top) * fy
    return top


def _harmonics(u: np.ndarray, v: np.ndarray, rho: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(cos j*theta, sin j*theta)`` for j = 2, 3, 4 where ``theta`` is the angle of ``(u, v)``, without trig."""
    inv = 1.0 / np.maximum(rho, np.float32(1e-6))
    c1, s1 = u * inv, v * inv
    out = []
    c, s = c1, s1
    for _ in range(3):
        c, s = c * c1 - s * s1, s * c1 + c * s1
        out.append((c, s))
    return out


def ink_deposits(images: np.ndarray, severity: int = 3, rng: int | np.random.Generator | None = None) -> np.ndarray:
    """Dark blobs/smudges of random dark colours: :data:`INK_COUNTS` of radius ~:data:`INK_RADII`."""
    check_batch(images)
    s = check_severity(severity)
    gen = as_generator(rng)
    n, h, w, _ = images.shape
    k_max = max(INK_COUNTS)
    scale = min(h, w) / _REFERENCE_SIZE
    # every draw is made for k_max deposits, whatever the severity (see module docstring)
    centre = np.stack([gen.uniform(0, w - 1, (n, k_max)), gen.uniform(0, h - 1, (n, k_max))], -1)
    size = gen.uniform(0.6, 1.25, (n, k_max))
    aspect = gen.uniform(1.0, 3.0, (n, k_max))
    orient = gen.uniform(0, np.pi, (n, k_max))
    wobble = gen.uniform(0.0, 0.15, (n, k_max, 3))
    phase = gen.uniform(0, 2 * np.pi, (n, k_max, 3))
    alpha = gen.uniform(0.8, 1.0, (n, k_max))
    colour = np.asarray(INK_PALETTE, np.float64)[gen.integers(0, len(INK_PALETTE), (n, k_max))]
    colour = np.clip(colour + gen.uniform(-12, 12, (n, k_max, 3)), 0, 255)

    count = INK_COUNTS[s - 1]
    r_major = INK_RADII[s - 1] * scale * size * np.sqrt(aspect)
    r_minor = r_major / aspect
    opacity = INK_OPACITIES[s - 1] * alpha
    # per image and deposit: cx, cy, cos, sin, 1/r_major, 1/r_minor, r_minor, opacity, wobble cos/sin terms
    params = np.concatenate(
        [
            centre,
            np.cos(orient)[..., None],
            np.sin(orient)[..., None],
            1.0 / r_major[..., None],
            1.0 / r_minor[..., None],
            r_minor[..., None],
            opacity[..., None],
            wobble * np.cos(phase),
            -wobble * np.sin(phase),
            colour,
        ],
        axis=-1,
    ).astype(np.float32)[:, :count]
    edge = np.float32(1.2 * scale)
    # the mask is 0 beyond the outline (at most 1.45 r_major from the centre) plus half an edge
    extent = 1.45 * r_major[:, :count] + 1.2 * scale

    def fn(x: np.ndarray, params: np.ndarray, extent: np.ndarray) -> np.ndarray:
        for k in range(count):
            p = params[:, k, :, None, None]  # (m, fields, 1, 1)
            win = _Window(x.shape, params[:, k, 0], params[:, k, 1], float(extent[:, k].max(initial=0.0)))
            patch = win.read(x)
            dx, dy = win.xs - p[:, 0], win.ys - p[:, 1]
            u = (p[:, 2] * dx + p[:, 3] * dy) * p[:, 4]
            v = (p[:, 2] * dy - p[:, 3] * dx) * p[:, 5]
            rho = np.sqrt(u * u + v * v)  # 1 on the ellipse
            boundary = np.ones_like(rho)
            for j, (cj, sj) in enumerate(_harmonics(u, v, rho)):  # irregular outline
                boundary += p[:, 8 + j] * cj + p[:, 11 + j] * sj
            mask = np.clip((boundary - rho) * (p[:, 6] / edge) + np.float32(0.5), 0.0, 1.0)
            mask *= 1.0 - np.float32(0.3) * np.minimum(rho / boundary, 1.0) ** 2  # denser in the middle
            mask *= p[:, 7]
            patch += mask[..., None] * (params[:, k, None, None, 14:17] - patch)
            win.write(x, patch)
        return x

    return map_chunks(fn, images, params, extent, chunk=_CHUNK)


def bubbles(images: np.ndarray, severity: int = 3, rng: int | np.random.Generator | None = None) -> np.ndarray:
    """Air bubbles: :data:`BUBBLE_COUNTS` refracting, brightened disks with a dark rim."""
    check_batch(images)
    s = check_severity(severity)
    gen = as_generator(rng)
    n, h, w, _ = images.shape
    k_max = max(BUBBLE_COUNTS)
    scale = min(h, w) / _REFERENCE_SIZE
    cy = gen.uniform(0.1 * h, 0.9 * h, (n, k_max))
    cx = gen.uniform(0.1 * w, 0.9 * w, (n, k_max))
    size = gen.uniform(0.8, 1.2, (n, k_max))
    count = BUBBLE_COUNTS[s - 1]
    params = np.stack([cx, cy, BUBBLE_RADII[s - 1] * scale * size], -1).astype(np.float32)[:, :count]
    strength = np.float32(BUBBLE_STRENGTHS[s - 1])
    ring_w = np.float32(1.3 * scale)
    reach = np.float32(4.0) * ring_w  # the dark ring is cut off 4 widths outside the rim (exp(-16))

    def fn(x: np.ndarray, params: np.ndarray) -> np.ndarray:
        for k in range(count):
            p = params[:, k, :, None, None]
            win = _Window(x.shape, params[:, k, 0], params[:, k, 1], float(params[:, k, 2].max(initial=0.0) + reach))
            patch = win.read(x)
            dx, dy = win.xs - p[:, 0], win.ys - p[:, 1]
            d = np.sqrt(dx * dx + dy * dy)
            t = np.minimum(d / p[:, 2], 1.0)
            # refraction: inside the disk, sample closer to the centre (a weak magnifying lens)
            shrink = 1.0 - np.float32(0.35) * strength * (1.0 - t * t)
            # absolute source coordinates, then minus the window's integer origin (exact in float32)
            src_x = (p[:, 0] + dx * shrink) - win.xs[:, :, :1]
            src_y = (p[:, 1] + dy * shrink) - win.ys[:, :1]
            patch = _bilinear(patch, src_x, src_y)
            inside = np.clip((p[:, 2] - d) / ring_w + np.float32(0.5), 0.0, 1.0)
            halo = np.exp(-(((d - (p[:, 2] - 2.5 * ring_w)) / (1.5 * ring_w)) ** 2)) * inside
            ring = np.where(d < p[:, 2] + reach, np.exp(-(((d - p[:, 2]) / ring_w) ** 2)), np.float32(0.0))
            light = np.minimum(strength * (np.float32(0.5) * inside + np.float32(0.6) * halo), 1.0)
            patch += (255.0 - patch) * light[..., None]
            patch *= (1.0 - np.float32(0.75) * strength * ring)[..., None]
            win.write(x, patch)
        return x

    return map_chunks(fn, images, params, chunk=_CHUNK)


def opaque_blots(images: np.ndarray, severity: int = 3, rng: int | np.random.Generator | None = None) -> np.ndarray:
    """One opaque dark blot per image over :data:`BLOT_COVERAGE` of the cell, with a noise-shaped outline.

    The blot is the top-scoring pixels of ``noise - distance**2 / (2 * (side / 8)**2)``, the
    noise a Gaussian-smoothed white noise (sigma ``side / 16``) and the distance taken to a
    centre within ``side / 8`` of the image's centre; the colour is one of
    :data:`INK_PALETTE`, darkened, at opacity 0.92-1 with a one-pixel soft edge. All draws
    are made once, whatever the severity, so a higher severity grows the same blot.

    Example:
        >>> x = np.full((3, 96, 96, 3), 210, np.uint8)
        >>> covered = (opaque_blots(x, 5, rng=0).mean(axis=-1) < 120).mean(axis=(1, 2))
        >>> bool(np.allclose(covered, 0.40 * np.pi / 16, atol=0.02))
        True
    """
    check_batch(images)
    s = check_severity(severity)
    gen = as_generator(rng)
    n, h, w, _ = images.shape
    side = float(min(h, w))
    noise = gen.standard_normal((n, h, w)).astype(np.float32)
    centre = np.array([w, h], np.float64) / 2 + gen.uniform(-side / 8, side / 8, (n, 2))
    colour = np.asarray(INK_PALETTE, np.float32)[gen.integers(0, len(INK_PALETTE), n)]
    colour *= gen.uniform(0.5, 1.0, (n, 1)).astype(np.float32)
    opacity = gen.uniform(0.92, 1.0, n).astype(np.float32)
    count = int(round(BLOT_COVERAGE[s - 1] * np.pi * (side / 4) ** 2))
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    out = images.astype(np.float32)
    for i in range(n):
        field = cv2.GaussianBlur(noise[i], (0, 0), side / 16, borderType=cv2.BORDER_REFLECT)
        field /= max(float(field.std()), 1e-6)
        dist2 = (xs - np.float32(centre[i, 0])) ** 2 + (ys - np.float32(centre[i, 1])) ** 2
        score = field - dist2 / np.float32(2 * (side / 8) ** 2)
        mask = np.zeros(h * w, np.float32)
        mask[np.argpartition(-score.ravel(), count - 1)[:count]] = 1.0
        alpha = cv2.GaussianBlur(mask.reshape(h, w), (0, 0), 0.6) * opacity[i]
        out[i] += alpha[..., None] * (colour[i] - out[i])
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
