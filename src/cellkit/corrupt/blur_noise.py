"""Optics and sensor corruptions: blur, noise, JPEG compression, pixelation.

* Gaussian blur: a Gaussian point-spread function (slight focus drift, a softer lens).
* Defocus blur: the point-spread function of an out-of-focus lens is a disk (the image
  of the aperture); the disk is anti-aliased by supersampling.
* Motion blur: a line kernel (stage vibration during the exposure) of a given length at a
  random angle per image, one of 16 directions.
* Gaussian noise: additive, independent per pixel and channel (read noise, low light).
* JPEG compression: an encode/decode round trip at a low quality (OpenCV, 4:2:0).
* Pixelation: block averaging (a lower-resolution camera upsampled back).

Blurs use a reflected border. Severity tables are module constants; the random parts
(noise, motion direction) are drawn from ``rng`` the same way for every severity.

Example:
    >>> import numpy as np
    >>> from cellkit.corrupt.blur_noise import disk_kernel, pixelate
    >>> round(float(disk_kernel(2.0).sum()), 6)
    1.0
    >>> x = (2 * np.arange(16, dtype=np.uint8)).reshape(1, 4, 4, 1).repeat(3, axis=3)
    >>> pixelate(x, severity=1)[0, :, :, 0]  # 2x2 blocks: the top-left one is 0, 2, 8, 10
    array([[ 5,  5,  9,  9],
           [ 5,  5,  9,  9],
           [21, 21, 25, 25],
           [21, 21, 25, 25]], dtype=uint8)
"""

from __future__ import annotations

import numpy as np

from cellkit._random import as_generator
from cellkit.corrupt._batch import check_batch, check_severity, filter_batch, map_chunks
from cellkit.corrupt.superpose import jpeg_roundtrip
from cellkit.filters.kernels import gaussian_kernel

__all__ = [
    "DEFOCUS_RADII",
    "GAUSSIAN_BLUR_SIGMAS",
    "JPEG_QUALITIES",
    "MOTION_ANGLES",
    "MOTION_LENGTHS",
    "NOISE_SIGMAS",
    "PIXELATE_BLOCKS",
    "defocus_blur",
    "disk_kernel",
    "gaussian_blur",
    "gaussian_noise",
    "jpeg_compression",
    "motion_blur",
    "motion_kernel",
    "pixelate",
]

#: Standard deviation (pixels) of the Gaussian blur, severities 1..5.
GAUSSIAN_BLUR_SIGMAS: tuple[float, ...] = (0.6, 0.9, 1.2, 1.6, 2.1)
#: Radius (pixels) of the defocus disk.
DEFOCUS_RADII: tuple[float, ...] = (1.0, 1.5, 2.2, 3.0, 4.0)
#: Length (pixels) of the motion-blur line.
MOTION_LENGTHS: tuple[float, ...] = (3.0, 5.0, 7.0, 10.0, 14.0)
#: The directions a motion blur can take (degrees).
MOTION_ANGLES: tuple[float, ...] = tuple(float(a) for a in np.arange(16) * 180.0 / 16)
#: Standard deviation of the additive noise, in grey levels (0..255).
NOISE_SIGMAS: tuple[float, ...] = (5.0, 10.0, 16.0, 24.0, 34.0)
#: JPEG quality (1..100).
JPEG_QUALITIES: tuple[int, ...] = (40, 25, 15, 10, 6)
#: Side of the averaged blocks (pixels).
PIXELATE_BLOCKS: tuple[int, ...] = (2, 3, 4, 5, 6)

_SUPERSAMPLE = 8


def disk_kernel(radius: float) -> np.ndarray:
    """Normalised anti-aliased disk of ``radius`` pixels (area of the disk in each pixel)."""
    if not np.isfinite(radius) or radius <= 0:
        raise ValueError(f"`radius` must be > 0. Received: radius={radius!r}")
    half = int(np.ceil(radius - 0.5))
    size = 2 * half + 1
    ss = _SUPERSAMPLE
    coords = (np.arange(size * ss) + 0.5) / ss - size / 2.0
    inside = (coords[:, None] ** 2 + coords[None, :] ** 2) <= radius**2
    kernel = inside.reshape(size, ss, size, ss).mean(axis=(1, 3)).astype(np.float32)
    return kernel / kernel.sum()


def motion_kernel(length: float, angle_degrees: float) -> np.ndarray:
    """Normalised anti-aliased line of ``length`` pixels through the centre at ``angle_degrees``.

    The area of a 1-pixel-wide segment in each pixel, measured on an 8x supersampled grid:
    symmetric about the centre by construction, so the blur does not shift the image.
    """
    if not np.isfinite(length) or length < 1:
        raise ValueError(f"`length` must be >= 1. Received: length={length!r}")
    half = int(np.ceil(length / 2.0))
    size = 2 * half + 1
    ss = _SUPERSAMPLE
    coords = (np.arange(size * ss) + 0.5) / ss - size / 2.0
    py, px = np.meshgrid(coords, coords, indexing="ij")
    t = np.deg2rad(angle_degrees)
    dx, dy = np.cos(t), -np.sin(t)  # image rows grow downwards
    along = np.clip(px * dx + py * dy, -length / 2.0, length / 2.0)
    inside = (px - along * dx) ** 2 + (py - along * dy) ** 2 <= 0.25
    kernel = inside.reshape(size, ss, size, ss).mean(axis=(1, 3))
    return (kernel / kernel.sum()).astype(np.float32)


def gaussian_blur(images: np.ndarray, severity: int = 3, rng: int | np.random.Generator | None = None) -> np.ndarray:
    """Gaussian blur of :data:`GAUSSIAN_BLUR_SIGMAS` pixels (deterministic)."""
    check_batch(images)
    sigma = GAUSSIAN_BLUR_SIGMAS[check_severity(severity) - 1]
    g = gaussian_kernel(sigma).sum(axis=1).astype(np.float32)  # the 2-D kernel is outer(g, g)
    return map_chunks(lambda x: filter_batch(x, (g, g)), images)


def defocus_blur(images: np.ndarray, severity: int = 3, rng: int | np.random.Generator | None = None) -> np.ndarray:
    """Out-of-focus blur: a disk of :data:`DEFOCUS_RADII` pixels (deterministic)."""
    check_batch(images)
    kernel = disk_kernel(DEFOCUS_RADII[check_severity(severity) - 1])
    return map_chunks(lambda x: filter_batch(x, kernel), images)


def motion_blur(images: np.ndarray, severity: int = 3, rng: int | np.random.Generator | None = None) -> np.ndarray:
    """Linear motion of :data:`MOTION_LENGTHS` pixels, one of :data:`MOTION_ANGLES` per image."""
    check_batch(images)
    length = MOTION_LENGTHS[check_severity(severity) - 1]
    angle_idx = as_generator(rng).integers(0, len(MOTION_ANGLES), size=images.shape[0])
    out = np.empty(images.shape, np.uint8)
    for k in np.unique(angle_idx):  # one batched filter call per direction (16 at most)
        sel = np.flatnonzero(angle_idx == k)
        kernel = motion_kernel(length, MOTION_ANGLES[k])
        out[sel] = map_chunks(lambda x, kernel=kernel: filter_batch(x, kernel), images[sel])
    return out


def gaussian_noise(
    images: np.ndarray, severity: int = 3, rng: int | np.random.Generator | None = None
) -> np.ndarray:
    """Add zero-mean Gaussian noise of :data:`NOISE_SIGMAS` grey levels, clipped to 0..255."""
    check_batch(images)
    sigma = np.float32(NOISE_SIGMAS[check_severity(severity) - 1])
    gen = as_generator(rng)

    def fn(x: np.ndarray) -> np.ndarray:  # chunks are drawn in order: one stream, whatever the chunk size
        noise = gen.standard_normal(x.shape, dtype=np.float32)
        noise *= sigma
        noise += x
        return noise

    return map_chunks(fn, images)


def jpeg_compression(
    images: np.ndarray, severity: int = 3, rng: int | np.random.Generator | None = None
) -> np.ndarray:
    """JPEG round trip at quality :data:`JPEG_QUALITIES` (deterministic)."""
    check_batch(images)
    return jpeg_roundtrip(images, JPEG_QUALITIES[check_severity(severity) - 1])


def pixelate(images: np.ndarray, severity: int = 3, rng: int | np.random.Generator | None = None) -> np.ndarray:
    """Replace each block of :data:`PIXELATE_BLOCKS` pixels by its mean (deterministic).

    Blocks start at the top-left corner; a partial block at the right or bottom edge is
    averaged over the pixels it holds.
    """
    check_batch(images)
    b = PIXELATE_BLOCKS[check_severity(severity) - 1]
    _, h, w, _ = images.shape
    hb, wb = -(-h // b), -(-w // b)
    rows = np.minimum(np.arange(1, hb + 1) * b, h) - np.arange(hb) * b
    cols = np.minimum(np.arange(1, wb + 1) * b, w) - np.arange(wb) * b
    area = (rows[:, None] * cols[None, :]).astype(np.float32)[None, :, :, None]

    def fn(x: np.ndarray) -> np.ndarray:
        sums = np.add.reduceat(np.add.reduceat(x, np.arange(0, h, b), axis=1), np.arange(0, w, b), axis=2)
        return np.repeat(np.repeat(sums / area, b, axis=1)[:, :h], b, axis=2)[:, :, :w]

    return map_chunks(fn, images)
