"""High-pass filters as ``keras.ops`` functions: the functional side of :mod:`cellkit.layers`.

Every function takes a channels-last float batch ``(n, h, w, c)`` in any range (``[0, 1]``,
``[0, 255]``, standardised...) and any float dtype, and returns a tensor of the same dtype
and spatial size. Kernels come from :mod:`cellkit.filters.kernels` (the single source of
truth, shared with the NumPy quality features) and are cast to the input's dtype.

Borders: the image is reflect-padded (``keras.ops.pad(mode="reflect")``: ``d c b | a b c d |
c b a``, the edge pixel not repeated) and then correlated "valid", so no edge is invented at
the border the way zero "same" padding does. This is ``scipy.ndimage``'s ``mode="mirror"``
(*not* its ``mode="reflect"``, which repeats the edge pixel), NumPy's ``np.pad(mode="reflect")``
and OpenCV's default ``cv2.BORDER_REFLECT_101``. Reflect padding needs every spatial side
to be longer than the padding: ``h, w > k // 2`` for a ``k x k`` kernel.

How a filter is computed depends on the backend (the numbers do not, up to float
rounding): under JAX, XLA fuses a sum of shifted slices (and separable kernels as two
small matrix products) into a few loops, several times faster on CPU than its grouped
convolution; TensorFlow and PyTorch run ``keras.ops.depthwise_conv``, their fast path.

Example:
    >>> import numpy as np
    >>> from cellkit.filters import ops as hp
    >>> x = np.zeros((1, 8, 8, 3), "float32")
    >>> x[0, 4, 4] = 1.0
    >>> y = np.asarray(hp.laplacian(x))
    >>> y.shape, float(y[0, 4, 4, 0]), float(y[0, 3, 4, 0])
    ((1, 8, 8, 3), -4.0, 1.0)
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from cellkit.filters.kernels import difference_of_gaussians_kernel, laplacian_kernel, sobel_kernels

__all__ = [
    "LUMINANCE_WEIGHTS",
    "correlate",
    "depthwise_filter2d",
    "difference_of_gaussians",
    "filter2d",
    "laplacian",
    "reflect_pad",
    "rgb_to_luminance",
    "separable_terms",
    "sobel_magnitude",
]

#: ITU-R BT.601 luma weights for R, G, B (``Y' = 0.299 R + 0.587 G + 0.114 B``).
LUMINANCE_WEIGHTS: tuple[float, float, float] = (0.299, 0.587, 0.114)

#: Offset inside the Sobel magnitude's square root (float32 and wider; 16-bit is upcast).
_TINY = 1e-30

#: Relative singular-value cut-off below which a kernel's rank-one term is dropped.
_RANK_RTOL = 1e-9

Tensor = Any  # a backend tensor (tf.Tensor, jax.Array, ...) or a NumPy array


def _fused_slices() -> bool:
    """True where shifted slices beat a depthwise convolution (XLA fuses them: JAX)."""
    return keras.backend.backend() == "jax"


def _float_input(x: Tensor) -> Tensor:
    x = ops.convert_to_tensor(x)
    if not keras.backend.is_float_dtype(x.dtype):
        x = ops.cast(x, keras.config.floatx())
    return x


def _check_rank(x: Tensor) -> None:
    if len(x.shape) != 4:
        raise ValueError(
            f"expected a channels-last batch of images (n, h, w, c). Received: x.shape={tuple(x.shape)}"
        )


def _check_border(x: Tensor, pad_h: int, pad_w: int) -> None:
    h, w = x.shape[1], x.shape[2]
    if (h is not None and h <= pad_h) or (w is not None and w <= pad_w):
        raise ValueError(
            f"reflect padding of ({pad_h}, {pad_w}) pixels needs an image larger than the padding on "
            f"each side: height > {pad_h} and width > {pad_w}. Received: x.shape={tuple(x.shape)}"
        )


def reflect_pad(x: Tensor, pad_h: int, pad_w: int | None = None) -> Tensor:
    """Reflect-pad the two spatial axes of ``(n, h, w, c)`` (``np.pad(mode="reflect")``)."""
    pad_w = pad_h if pad_w is None else pad_w
    x = ops.convert_to_tensor(x)
    _check_rank(x)
    _check_border(x, pad_h, pad_w)
    if pad_h == 0 and pad_w == 0:
        return x
    return ops.pad(x, [[0, 0], [pad_h, pad_h], [pad_w, pad_w], [0, 0]], mode="reflect")


def rgb_to_luminance(x: Tensor) -> Tensor:
    """BT.601 luminance ``(n, h, w, 1)`` of an RGB batch; a 1-channel batch is returned as is."""
    x = _float_input(x)
    _check_rank(x)
    channels = x.shape[-1]
    if channels == 1:
        return x
    if channels != 3:
        raise ValueError(f"luminance needs 1 or 3 (RGB) channels. Received: channels={channels}")
    weights = ops.convert_to_tensor(np.asarray(LUMINANCE_WEIGHTS), dtype=x.dtype)
    return ops.sum(x * weights, axis=-1, keepdims=True)


def correlate(x: Tensor, kernel: np.ndarray | Tensor) -> Tensor:
    """Correlate every channel of ``x`` with ``kernel``, "valid" (no padding: see :func:`filter2d`).

    Args:
        x: float ``(n, h, w, c)``.
        kernel: a NumPy ``(kh, kw)`` kernel applied to every channel (output ``c`` channels),
            or a ``(kh, kw, c, m)`` depthwise kernel (NumPy or tensor; output ``c * m``
            channels ordered ``channel * m + filter`` as ``keras.ops.depthwise_conv``).

    Returns:
        ``(n, h - kh + 1, w - kw + 1, c * m)`` in ``x``'s dtype.
    """
    channels = x.shape[-1]
    if isinstance(kernel, np.ndarray) and kernel.ndim == 2:
        if _fused_slices():
            return _shifted_sum(x, kernel)
        kernel = np.broadcast_to(kernel[:, :, None, None], kernel.shape + (channels, 1))
    if len(kernel.shape) != 4 or kernel.shape[2] != channels:
        raise ValueError(
            f"expected a (kh, kw) kernel or a (kh, kw, {channels}, m) depthwise kernel for {channels} "
            f"channels. Received: kernel.shape={tuple(kernel.shape)}"
        )
    kernel = ops.cast(ops.convert_to_tensor(kernel), x.dtype)
    if _fused_slices():
        return _shifted_sum_depthwise(x, kernel)
    return ops.depthwise_conv(x, kernel, strides=1, padding="valid", data_format="channels_last")


def _shifted_sum(x: Tensor, kernel: np.ndarray) -> Tensor:
    """Correlate with a fixed ``(kh, kw)`` kernel as a sum of shifted slices (zero taps skipped)."""
    kh, kw = kernel.shape
    h, w = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    out = None
    for i, j in zip(*(idx.tolist() for idx in np.nonzero(kernel)), strict=True):
        term = x[:, i : i + h, j : j + w, :] * float(kernel[i, j])
        out = term if out is None else out + term
    if out is None:  # an all-zero kernel
        out = ops.zeros_like(x[:, :h, :w, :])
    return out


def _shifted_sum_depthwise(x: Tensor, kernel: Tensor) -> Tensor:
    """Correlate with a ``(kh, kw, c, m)`` tensor kernel as a sum of shifted slices."""
    kh, kw, channels, multiplier = (int(d) for d in kernel.shape)
    h, w = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    out = None
    for i in range(kh):
        for j in range(kw):
            window = x[:, i : i + h, j : j + w, :]
            term = window * kernel[i, j, :, 0] if multiplier == 1 else window[..., None] * kernel[i, j]
            out = term if out is None else out + term
    if multiplier == 1:
        return out
    return ops.reshape(out, (-1, h, w, channels * multiplier))


def filter2d(x: Tensor, kernel: np.ndarray) -> Tensor:
    """Filter every channel of ``(n, h, w, c)`` with a fixed ``(kh, kw)`` kernel, reflect border.

    Large kernels of low rank (a difference of Gaussians is rank 2) run as separable passes.
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    if kernel.ndim != 2 or kernel.shape[0] % 2 == 0 or kernel.shape[1] % 2 == 0:
        raise ValueError(f"expected a 2-D kernel of odd sides. Received: kernel.shape={kernel.shape}")
    x = _float_input(x)
    _check_rank(x)
    kh, kw = kernel.shape
    _check_border(x, kh // 2, kw // 2)
    terms = separable_terms(kernel)
    if kh * kw > 9 and len(terms) * (kh + kw) < kh * kw:
        return _separable(x, terms)
    return correlate(reflect_pad(x, kh // 2, kw // 2), kernel)


def depthwise_filter2d(x: Tensor, kernel: Tensor) -> Tensor:
    """Filter ``(n, h, w, c)`` with a ``(kh, kw, c, m)`` depthwise kernel (e.g. a trainable one), reflect border.

    Returns ``(n, h, w, c * m)``, channels ordered ``channel * m + filter``.
    """
    x = _float_input(x)
    _check_rank(x)
    kh, kw = int(kernel.shape[0]), int(kernel.shape[1])
    return correlate(reflect_pad(x, kh // 2, kw // 2), kernel)


def separable_terms(kernel: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Rank-one terms ``[(column, row), ...]`` whose outer products sum to ``kernel`` (by SVD).

    Terms with a singular value below ``1e-9`` of the largest are dropped (rounding noise,
    e.g. the ``1e-18`` mean that re-centres a difference of Gaussians).
    """
    u, s, vt = np.linalg.svd(np.asarray(kernel, dtype=np.float64))
    if s.size == 0 or s[0] == 0:
        return []
    keep = s > _RANK_RTOL * s[0]
    return [(u[:, r] * np.sqrt(s[r]), vt[r] * np.sqrt(s[r])) for r in np.flatnonzero(keep)]


def _reflect_matrix(taps: np.ndarray, n: int) -> np.ndarray:
    """``M`` (n, n) with ``M @ v == correlate1d(v, taps, mode="mirror")`` (reflect border built in)."""
    half = len(taps) // 2
    source = np.pad(np.arange(n), half, mode="reflect")
    matrix = np.zeros((n, n))
    rows = np.repeat(np.arange(n), len(taps))
    cols = source[np.arange(n)[:, None] + np.arange(len(taps))[None, :]].ravel()
    np.add.at(matrix, (rows, cols), np.tile(taps, n))
    return matrix


def _separable(x: Tensor, terms: list[tuple[np.ndarray, np.ndarray]]) -> Tensor:
    """Sum over ``terms`` of a vertical then a horizontal 1-D pass, reflect border."""
    kh, kw = len(terms[0][0]), len(terms[0][1])
    if _fused_slices():  # XLA: two batched matrix products with the border inside the matrices
        h, w = int(x.shape[1]), int(x.shape[2])
        rows = np.concatenate([_reflect_matrix(col, h) for col, _ in terms])  # (r*h, h)
        cols = np.stack([_reflect_matrix(row, w) for _, row in terms])  # (r, w, w)
        v = ops.einsum("ih,nhwc->niwc", ops.convert_to_tensor(rows, dtype=x.dtype), x)
        v = ops.reshape(v, (-1, len(terms), h, w, int(x.shape[3])))
        return ops.einsum("rjw,nriwc->nijc", ops.convert_to_tensor(cols, dtype=x.dtype), v)
    padded = reflect_pad(x, kh // 2, kw // 2)
    out = None
    for col, row in terms:
        term = correlate(correlate(padded, col[:, None]), row[None, :])
        out = term if out is None else out + term
    return out


def laplacian(x: Tensor, diagonal: bool = False) -> Tensor:
    """Discrete Laplacian of every channel (``scipy.ndimage.laplace(mode="mirror")``)."""
    return filter2d(x, laplacian_kernel(diagonal))


def difference_of_gaussians(
    x: Tensor, sigma_low: float = 1.0, sigma_high: float = 2.0, size: int | None = None
) -> Tensor:
    """``G(sigma_low) - G(sigma_high)`` of every channel: a zero-sum band-pass."""
    return filter2d(x, difference_of_gaussians_kernel(sigma_low, sigma_high, size))


def sobel_magnitude(x: Tensor) -> Tensor:
    """Sobel gradient magnitude ``sqrt(gx**2 + gy**2)`` of every channel.

    Computed in float32 when ``x`` is float16/bfloat16 (the squares of a [0, 255] image
    overflow float16). The gradient is 0 (not NaN) where the magnitude is 0.
    """
    x = _float_input(x)
    _check_rank(x)
    _check_border(x, 1, 1)
    kx, ky = sobel_kernels()
    padded = reflect_pad(x, 1)
    gx, gy = correlate(padded, kx), correlate(padded, ky)
    if keras.backend.standardize_dtype(x.dtype) in ("float16", "bfloat16"):
        return ops.cast(_magnitude(ops.cast(gx, "float32"), ops.cast(gy, "float32")), x.dtype)
    return _magnitude(gx, gy)


def _magnitude(gx: Tensor, gy: Tensor) -> Tensor:
    """``sqrt(gx**2 + gy**2)`` with a finite gradient where both are 0.

    ``sqrt(s + t) - sqrt(t)`` with ``t = 1e-30``: exactly 0 where ``s`` is 0, off by at most
    ``1e-15`` elsewhere, and its gradient ``g / sqrt(s + t)`` is finite (0 at 0), where a
    plain ``sqrt`` gives NaN. A ``custom_gradient`` would do too but stops XLA fusing it.
    """
    tiny = ops.cast(_TINY, gx.dtype)
    return ops.sqrt(ops.square(gx) + ops.square(gy) + tiny) - ops.sqrt(tiny)
