"""Macenko's stain estimate in ``keras.ops``: two stain vectors per image in optical density.

The maths of :class:`~cellkit.layers.stain_norm.MacenkoNormalization` (Macenko et al., ISBI
2009): optical densities, the plane of the two main eigenvectors of the stained pixels' OD
covariance, robust percentile angles in it, and least-squares stain concentrations. Public
as :func:`cellkit.layers.stain_norm.macenko_stains`.
"""

from __future__ import annotations

from typing import Any

from keras import ops

__all__ = ["concentrations", "macenko", "macenko_stains", "optical_density"]


def optical_density(rgb: Any) -> Any:
    """``-log((I + 1) / 256)``: 0 for white, additive in the stains (Beer-Lambert)."""
    return -ops.log((ops.clip(rgb, 0.0, 255.0) + 1.0) / 256.0)


def _masked_percentile(values: Any, mask: Any, count: Any, q: float) -> Any:
    """Per row of ``values`` ``(n, p)``: the ``q``-th percentile (lower) of the masked entries."""
    ordered = ops.sort(ops.where(mask, values, 1e9), axis=-1)  # masked-out entries sort last
    index = ops.cast(ops.floor(q / 100.0 * (ops.maximum(count, 1.0) - 1.0)), "int32")
    return ops.take_along_axis(ordered, index[:, None], axis=-1)[:, 0]


def macenko_stains(rgb: Any, beta: float = 0.15, alpha: float = 1.0) -> tuple[Any, Any, Any]:
    """Macenko's stain vectors and maximum concentrations of each image of a batch.

    Args:
        rgb: ``(n, h, w, 3)`` RGB values 0-255.
        beta: optical-density threshold: pixels with any channel's OD below it are
            background, left out of the estimate.
        alpha: percentile (and ``100 - alpha``) of the angles giving the two stain vectors.

    Returns:
        ``(stains, max_concentration, tissue)``: ``(n, 3, 2)`` unit optical-density vectors
        (columns: the stain with the larger red OD first), ``(n, 2)`` 99th percentiles of
        the concentrations over all pixels, and ``(n,)`` the number of tissue pixels used.

    Example:
        >>> import numpy as np
        >>> stains = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11]]).T
        >>> stains /= np.linalg.norm(stains, axis=0)
        >>> c = np.random.default_rng(0).uniform(0.2, 1.5, (1, 400, 2))
        >>> rgb = (256 * np.exp(-(c @ stains.T)) - 1).reshape(1, 20, 20, 3)
        >>> found = np.asarray(macenko_stains(rgb)[0])[0]
        >>> bool(np.abs(found.T @ stains).max(axis=1).min() > 0.99)
        True
    """
    shape = ops.shape(rgb)
    od = ops.reshape(optical_density(ops.cast(rgb, "float32")), (shape[0], -1, 3))
    stains, concentration, count = macenko(od, beta, alpha)
    return stains, ops.quantile(concentration, 0.99, axis=1), count


def macenko(od: Any, beta: float, alpha: float) -> tuple[Any, Any, Any]:
    """Stains ``(n, 3, 2)``, concentrations ``(n, p, 2)`` and tissue counts of ``od`` ``(n, p, 3)``."""
    mask = ops.all(od > beta, axis=-1)
    weight = ops.cast(mask, "float32")
    count = ops.sum(weight, axis=1)
    denominator = ops.maximum(count, 1.0)[:, None, None]
    mean = ops.sum(od * weight[..., None], axis=1, keepdims=True) / denominator
    centred = (od - mean) * weight[..., None]
    cov = ops.einsum("npi,npj->nij", centred, centred) / denominator + 1e-6 * ops.eye(3)
    _, vectors = ops.eigh(cov)  # ascending eigenvalues: the plane of the two largest
    plane = vectors[:, :, 1:3]
    plane = plane * ops.where(ops.sum(plane, axis=1, keepdims=True) < 0, -1.0, 1.0)  # point into OD > 0
    projected = ops.einsum("npi,nik->npk", od, plane)
    angle = ops.arctan2(projected[..., 1], projected[..., 0])
    low = _masked_percentile(angle, mask, count, alpha)
    high = _masked_percentile(angle, mask, count, 100.0 - alpha)
    v_low = ops.einsum("nik,nk->ni", plane, ops.stack([ops.cos(low), ops.sin(low)], axis=-1))
    v_high = ops.einsum("nik,nk->ni", plane, ops.stack([ops.cos(high), ops.sin(high)], axis=-1))
    low_first = (v_low[:, 0] > v_high[:, 0])[:, None]
    stains = ops.stack([ops.where(low_first, v_low, v_high), ops.where(low_first, v_high, v_low)], axis=-1)
    return stains, concentrations(od, stains), count


def concentrations(od: Any, stains: Any) -> Any:
    """Least-squares ``(n, p, 2)`` concentrations of ``od`` ``(n, p, 3)`` in ``stains`` ``(n, 3, 2)``."""
    gram = ops.einsum("nik,nil->nkl", stains, stains)
    a, b, d = gram[:, 0, 0], gram[:, 0, 1], gram[:, 1, 1]
    det = ops.maximum(a * d - b * b, 1e-6)
    inverse = ops.stack([ops.stack([d, -b], axis=-1), ops.stack([-b, a], axis=-1)], axis=-2) / det[:, None, None]
    return ops.einsum("npk,nkl->npl", ops.einsum("npi,nik->npk", od, stains), inverse)

