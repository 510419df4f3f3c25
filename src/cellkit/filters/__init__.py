"""High-pass filter kernels (NumPy), shared by the quality features and the Keras layers."""

from cellkit.filters.kernels import (
    difference_of_gaussians_kernel,
    gaussian_kernel,
    laplacian_kernel,
    sobel_kernels,
)

__all__ = [
    "difference_of_gaussians_kernel",
    "gaussian_kernel",
    "laplacian_kernel",
    "sobel_kernels",
]
