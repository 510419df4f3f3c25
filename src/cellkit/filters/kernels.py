"""Pure NumPy factories for the fixed high-pass kernels.

One source of truth: :mod:`cellkit.quality` applies these kernels with NumPy/OpenCV and
:mod:`cellkit.layers` with ``keras.ops``. Kernels are float64 ``(k, k)`` arrays in
correlation orientation (as ``cv2.filter2D`` and ``keras.ops.conv`` use them).

Example:
    >>> from cellkit.filters.kernels import laplacian_kernel
    >>> float(laplacian_kernel().sum())
    0.0
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "difference_of_gaussians_kernel",
    "gaussian_kernel",
    "laplacian_kernel",
    "sobel_kernels",
]


def laplacian_kernel(diagonal: bool = False) -> np.ndarray:
    """The 3x3 discrete Laplacian (4-neighbour, or 8-neighbour if ``diagonal``).

    The 4-neighbour kernel equals ``scipy.ndimage.laplace``'s and OpenCV's ``ksize=1``.
    """
    if diagonal:
        k = np.ones((3, 3))
        k[1, 1] = -8.0
        return k
    return np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def sobel_kernels() -> tuple[np.ndarray, np.ndarray]:
    """The 3x3 Sobel kernels ``(d/dx, d/dy)``, equal to ``cv2.Sobel``'s with ``ksize=3``."""
    smooth = np.array([1.0, 2.0, 1.0])
    deriv = np.array([-1.0, 0.0, 1.0])
    kx = np.outer(smooth, deriv)
    return kx, kx.T.copy()


def gaussian_kernel(sigma: float, size: int | None = None) -> np.ndarray:
    """A normalised 2-D Gaussian kernel; ``size`` defaults to ``2 * ceil(3 * sigma) + 1``."""
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0. Received: sigma={sigma!r}")
    if size is None:
        size = 2 * int(np.ceil(3.0 * sigma)) + 1
    if size < 1 or size % 2 == 0:
        raise ValueError(f"size must be a positive odd integer. Received: size={size!r}")
    r = np.arange(size) - size // 2
    g = np.exp(-(r**2) / (2.0 * sigma**2))
    g /= g.sum()
    return np.outer(g, g)


def difference_of_gaussians_kernel(
    sigma_low: float = 1.0, sigma_high: float = 2.0, size: int | None = None
) -> np.ndarray:
    """``G(sigma_low) - G(sigma_high)``, a zero-sum band-pass (difference of Gaussians).

    Both Gaussians share one support (that of ``sigma_high`` unless ``size`` is given) so
    the kernel sums to zero exactly and a constant image gives zero response.
    """
    if not 0 < sigma_low < sigma_high:
        raise ValueError(
            "expected 0 < sigma_low < sigma_high. "
            f"Received: sigma_low={sigma_low!r}, sigma_high={sigma_high!r}"
        )
    if size is None:
        size = 2 * int(np.ceil(3.0 * sigma_high)) + 1
    k = gaussian_kernel(sigma_low, size) - gaussian_kernel(sigma_high, size)
    return k - k.mean()
