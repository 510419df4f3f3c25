"""Random augmentation layers Keras does not ship, in ``keras.ops`` only (TensorFlow, JAX, PyTorch).

Every layer here is random only with ``training=True`` and the identity otherwise (the
input is returned as it is), draws from a ``keras.random.SeedGenerator``, works on
channels-last float images in the 0-255 range and is serializable
(``register_keras_serializable(package="cellkit")``).

* :class:`RandomRot90`: rotation by 0, 90, 180 or 270 degrees, drawn per image (square images).
* :class:`RandomAffine`: rotation, translation and zoom, each with its own probability, in one warp.
* :class:`RandomChannelGain`: per-image, per-channel gains ``1 + U(-delta, delta)`` (colour cast).
* :class:`RandomHueSaturation`: hue shift and saturation gain, each with its own probability,
  in one HSV round trip.
* :class:`RandomBlur`: Gaussian blur of a per-image random sigma, reflected border
  (``keras.layers.RandomGaussianBlur`` pads with zeros, which darkens the border).
* :class:`RandomChromaBlur`: the same blur of the colour (Cb, Cr) alone; the luma is kept.
* Noise, exposure and occlusion (``RandomGaussianNoise``, ``RandomErasing``...) live in
  :mod:`cellkit.augment.acquisition`.
* :class:`RandomApply`: applies a wrapped layer to a random subset of the batch (each image
  with probability ``rate``), the RandAugment-style "maybe apply this op".

Example:
    >>> import numpy as np
    >>> from cellkit.augment.layers import RandomRot90
    >>> x = np.arange(2 * 4 * 4 * 3, dtype="float32").reshape(2, 4, 4, 3)
    >>> bool((np.asarray(RandomRot90(seed=1)(x, training=False)) == x).all())
    True
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
from keras import ops

from cellkit.augment._base import _batch_size, _check_range, _RandomLayer
from cellkit.augment.acquisition import RandomErasing, RandomGaussianNoise  # noqa: F401  (their old home)

__all__ = [
    "RandomAffine", "RandomApply", "RandomBlur", "RandomChannelGain", "RandomChromaBlur",
    "RandomHueSaturation", "RandomRot90", "affine_matrix", "hue_saturation",
]


@keras.saving.register_keras_serializable(package="cellkit")
class RandomRot90(_RandomLayer):
    """Rotate each image by a random multiple of 90 degrees (square images only)."""

    def build(self, input_shape: tuple) -> None:
        h, w = input_shape[-3], input_shape[-2]
        if h is not None and w is not None and h != w:
            raise ValueError(f"RandomRot90 needs square images. Received: input_shape={tuple(input_shape)}")
        self.built = True

    def augment(self, images):  # noqa: ANN001, ANN201
        k = keras.random.randint((_batch_size(images), 1, 1, 1), 0, 4, seed=self.seed_generator)
        transposed = ops.transpose(images, (0, 2, 1, 3))
        r90 = ops.flip(transposed, axis=1)
        r180 = ops.flip(ops.flip(images, axis=1), axis=2)
        r270 = ops.flip(transposed, axis=2)
        return ops.where(k == 0, images, ops.where(k == 1, r90, ops.where(k == 2, r180, r270)))


@keras.saving.register_keras_serializable(package="cellkit")
class RandomChannelGain(_RandomLayer):
    """Multiply each channel by ``1 + U(-max_delta, max_delta)``, drawn per image and channel."""

    def __init__(self, max_delta: float = 0.1, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(seed=seed, **kwargs)
        self.max_delta = _check_range("max_delta", max_delta, 0.0, 1.0)

    def augment(self, images):  # noqa: ANN001, ANN201
        shape = (_batch_size(images), 1, 1, ops.shape(images)[-1])
        gains = 1.0 + keras.random.uniform(shape, -self.max_delta, self.max_delta, seed=self.seed_generator)
        return images * ops.cast(gains, images.dtype)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "max_delta": self.max_delta}


@keras.saving.register_keras_serializable(package="cellkit")
class RandomBlur(_RandomLayer):
    """Separable Gaussian blur, sigma ``U(min_sigma, max_sigma)`` per image, reflected border.

    The kernel has ``2 * radius + 1`` taps, ``radius = ceil(2 * max_sigma)``.
    """

    def __init__(self, min_sigma: float = 0.2, max_sigma: float = 1.5, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(seed=seed, **kwargs)
        self.max_sigma = _check_range("max_sigma", max_sigma, 0.05, 10.0)
        self.min_sigma = _check_range("min_sigma", min_sigma, 0.05, self.max_sigma)
        self.radius = max(1, math.ceil(2 * self.max_sigma))

    def augment(self, images):  # noqa: ANN001, ANN201
        return _gaussian_blur(images, self._draw_sigma(images), self.radius)

    def _draw_sigma(self, images):  # noqa: ANN001, ANN202
        return keras.random.uniform((_batch_size(images), 1), self.min_sigma, self.max_sigma, seed=self.seed_generator)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "min_sigma": self.min_sigma, "max_sigma": self.max_sigma}


def _gaussian_blur(images, sigma, radius: int, method: str = "auto"):  # noqa: ANN001, ANN202
    """Separable Gaussian blur of ``(n, h, w, c)`` images, one ``sigma`` ``(n, 1)`` per image, reflected border.

    ``method="matmul"``: each image's blur is two matrix products, ``B_h @ x @ B_w^T``, with the
    reflected border folded into the ``(size, size)`` blur matrices: one batched matmul per
    axis, whatever the radius (the image size must be known when the graph is built, as it
    always is inside a Keras model). ``method="shifted"``: the sum of ``2 * radius + 1``
    shifted copies per axis of a reflect-padded copy (radius < image size). ``"auto"`` takes
    the matrix products on TensorFlow where the size is known (0.19x the time of shifted sums
    for 25 taps) and shifted sums elsewhere, which XLA (JAX) fuses well: there the matrix
    products were slower on a CPU (``benchmarks/test_bench_augment.py``).
    """
    if method not in ("auto", "matmul", "shifted"):
        raise ValueError(f"_gaussian_blur: method must be 'auto', 'matmul' or 'shifted'. Received: method={method!r}")
    taps = ops.cast(ops.arange(-radius, radius + 1), sigma.dtype)[None, :]
    weights = ops.exp(-0.5 * ops.square(taps / sigma))
    weights = ops.cast(weights / ops.sum(weights, axis=1, keepdims=True), images.dtype)  # (n, 2r + 1)
    h, w = images.shape[1], images.shape[2]
    static = isinstance(h, int) and isinstance(w, int) and min(h, w) > 1
    if method == "matmul" and not static:
        raise ValueError(f"_gaussian_blur: method='matmul' needs a known image size. Received: shape={images.shape}")
    if method == "matmul" or (method == "auto" and static and keras.backend.backend() == "tensorflow"):
        rows = _blur_matrices(weights, h, radius)
        cols = rows if w == h else _blur_matrices(weights, w, radius)
        blurred = ops.einsum("nij,njwc->niwc", rows, images)
        return ops.einsum("nvw,nhwc->nhvc", cols, blurred)
    h, w = ops.shape(images)[1], ops.shape(images)[2]
    padded = ops.pad(images, ((0, 0), (radius, radius), (radius, radius), (0, 0)), mode="reflect")
    rows = sum(weights[:, j, None, None, None] * padded[:, j : j + h] for j in range(2 * radius + 1))
    return sum(weights[:, j, None, None, None] * rows[:, :, j : j + w] for j in range(2 * radius + 1))


def _blur_matrices(weights, size: int, radius: int):  # noqa: ANN001, ANN202
    """``(n, size, size)`` matrices ``B[i, j]``: the weight pixel ``j`` gets in output pixel ``i`` (reflected border)."""
    period = 2 * (size - 1)
    where = np.zeros((size, 2 * radius + 1, size), "float32")  # output pixel, tap -> source pixel (one-hot)
    for i in range(size):
        for k in range(2 * radius + 1):
            j = abs(i + k - radius) % period
            where[i, k, period - j if j >= size else j] += 1.0
    return ops.einsum("nk,ikj->nij", weights, ops.cast(ops.convert_to_tensor(where), weights.dtype))


#: RGB -> (Cb, Cr) of ITU-R BT.601 (the JPEG colour transform, without its +128 offset).
_RGB_TO_CHROMA = ((-0.168736, 0.5), (-0.331264, -0.418688), (0.5, -0.081312))
#: (Cb, Cr) -> their contribution to RGB; the luma Y adds to every channel.
_CHROMA_TO_RGB = ((0.0, -0.344136, 1.772), (1.402, -0.714136, 0.0))


@keras.saving.register_keras_serializable(package="cellkit")
class RandomChromaBlur(RandomBlur):
    """Blur the colour (Cb, Cr of BT.601 YCbCr) of RGB images, not their luma; sigma ``U(min_sigma, max_sigma)``.

    Cameras record colour at a lower resolution than brightness (a Bayer sensor samples each
    colour on a quarter to a half of its pixels; video and JPEG codecs subsample chroma), so
    fine colour detail -- granule colour, a thin pink rim -- is the least reliable part of an
    image. This op smooths it away and leaves the luma exactly as it was (the RGB image
    changes only along the two chroma directions). Grey images are unchanged.

    Example:
        >>> import numpy as np
        >>> grey = np.full((1, 16, 16, 3), 90.0, "float32")
        >>> bool(np.allclose(RandomChromaBlur(seed=0)(grey, training=True), grey))
        True
    """

    def __init__(self, min_sigma: float = 0.5, max_sigma: float = 3.0, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(min_sigma, max_sigma, seed=seed, **kwargs)

    def augment(self, images):  # noqa: ANN001, ANN201
        if images.shape[-1] != 3:
            raise ValueError(f"RandomChromaBlur needs RGB images (3 channels). Received: shape={tuple(images.shape)}")
        to_chroma = ops.cast(ops.convert_to_tensor(_RGB_TO_CHROMA), images.dtype)
        to_rgb = ops.cast(ops.convert_to_tensor(_CHROMA_TO_RGB), images.dtype)
        chroma = ops.matmul(images, to_chroma)  # (n, h, w, 2)
        blurred = _gaussian_blur(chroma, self._draw_sigma(images), self.radius)
        return images + ops.matmul(blurred - chroma, to_rgb)


class _PerImageRateLayer(_RandomLayer):
    """Base of the fused ops: each of their transforms is applied to an image with probability ``rate``."""

    def __init__(self, rate: float = 0.5, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(seed=seed, **kwargs)
        self.rate = _check_range("rate", rate, 0.0, 1.0)

    def _applied(self, images, count: int):  # noqa: ANN001, ANN202
        """``(n, count)``: 1.0 where an image gets transform ``i`` (probability ``rate`` each), else 0.0."""
        draws = keras.random.uniform((_batch_size(images), count), seed=self.seed_generator)
        return ops.cast(draws < self.rate, "float32")

    def _uniform(self, images, limit: float):  # noqa: ANN001, ANN202
        """``(n,)`` draws of ``U(-limit, limit)``."""
        return keras.random.uniform((_batch_size(images),), -limit, limit, seed=self.seed_generator)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rate": self.rate}


@keras.saving.register_keras_serializable(package="cellkit")
class RandomAffine(_PerImageRateLayer):
    """Rotation, translation and zoom of each image, composed into one bilinear warp (reflected border).

    Each of the three is applied to an image with probability ``rate`` (drawn per image and
    transform, as three ``RandomApply``-wrapped Keras layers would) with a magnitude drawn
    uniformly: an angle in ``[-rotation, rotation]`` degrees, a shift of up to ``shift`` times
    the height and the width, a scale of ``1 + U(-zoom, zoom)`` (above 1 zooms out). One warp
    instead of three: the image is resampled (and smoothed by bilinear interpolation) once.

    Example:
        >>> import numpy as np
        >>> x = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
        >>> bool(np.allclose(RandomAffine(rate=0.0, seed=0)(x, training=True), x))
        True
    """

    def __init__(
        self, rotation: float = 20.0, shift: float = 0.1, zoom: float = 0.2, rate: float = 0.5,
        seed: int | None = None, **kwargs: Any,
    ) -> None:
        super().__init__(rate=rate, seed=seed, **kwargs)
        self.rotation = _check_range("rotation", rotation, 0.0, 180.0)
        self.shift = _check_range("shift", shift, 0.0, 1.0)
        self.zoom = _check_range("zoom", zoom, 0.0, 0.9)

    def augment(self, images):  # noqa: ANN001, ANN201
        applied = self._applied(images, 3)  # rotation, shift (x and y together), zoom
        h, w = ops.shape(images)[1], ops.shape(images)[2]
        matrix = affine_matrix(
            applied[:, 0] * self._uniform(images, math.radians(self.rotation)),
            applied[:, 1] * self._uniform(images, self.shift) * ops.cast(w, "float32"),
            applied[:, 1] * self._uniform(images, self.shift) * ops.cast(h, "float32"),
            1.0 + applied[:, 2] * self._uniform(images, self.zoom),
            h, w,
        )
        warped = ops.image.affine_transform(
            ops.cast(images, "float32"), matrix, interpolation="bilinear", fill_mode="reflect"
        )
        return ops.cast(warped, images.dtype)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rotation": self.rotation, "shift": self.shift, "zoom": self.zoom}


def affine_matrix(angle, shift_x, shift_y, scale, height, width):  # noqa: ANN001, ANN201
    """``(n, 8)`` transforms for ``keras.ops.image.affine_transform``, one per image.

    Rotates by ``angle`` (radians; positive turns the image clockwise as displayed, rows
    down), scales by ``1 / scale`` about the centre (``scale`` above 1 zooms out), then moves
    the content by ``(shift_x, shift_y)`` pixels (right, down). A transform maps each output
    pixel ``(x, y)`` to the input point it samples.
    """
    cx = (ops.cast(width, "float32") - 1.0) / 2.0
    cy = (ops.cast(height, "float32") - 1.0) / 2.0
    cos, sin = ops.cos(angle) * scale, ops.sin(angle) * scale
    x0, y0 = cx + shift_x, cy + shift_y  # the output point that samples the input's centre
    zeros = ops.zeros_like(angle)
    return ops.stack(
        [cos, sin, cx - cos * x0 - sin * y0, -sin, cos, cy + sin * x0 - cos * y0, zeros, zeros], axis=1
    )


@keras.saving.register_keras_serializable(package="cellkit")
class RandomHueSaturation(_PerImageRateLayer):
    """Hue shift and saturation gain of each image in one HSV round trip.

    The hue turns by ``U(-max_hue_shift, max_hue_shift)`` of a full circle and the saturation is
    multiplied by a gain log-uniform in ``[1 / max_saturation_gain, max_saturation_gain]``
    (clipped to 1); each is applied to an image with probability ``rate``. Value (the
    brightest channel) is kept. Grey pixels stay grey. One round trip instead of two (as
    ``RandomHue`` then ``RandomSaturation`` would do), in float32.

    Example:
        >>> import numpy as np
        >>> grey = np.full((1, 4, 4, 3), 77.0, "float32")
        >>> bool(np.allclose(RandomHueSaturation(rate=1.0, seed=0)(grey, training=True), grey, atol=1e-3))
        True
    """

    def __init__(
        self, max_hue_shift: float = 0.06, max_saturation_gain: float = 2.3, rate: float = 0.5,
        seed: int | None = None, **kwargs: Any,
    ) -> None:
        super().__init__(rate=rate, seed=seed, **kwargs)
        self.max_hue_shift = _check_range("max_hue_shift", max_hue_shift, 0.0, 0.5)
        self.max_saturation_gain = _check_range("max_saturation_gain", max_saturation_gain, 1.0, 100.0)

    def augment(self, images):  # noqa: ANN001, ANN201
        applied = self._applied(images, 2)  # hue, saturation
        shift = applied[:, 0] * self._uniform(images, self.max_hue_shift)
        gain = ops.exp(applied[:, 1] * self._uniform(images, math.log(self.max_saturation_gain)))
        return ops.cast(hue_saturation(ops.cast(images, "float32"), shift, gain), images.dtype)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "max_hue_shift": self.max_hue_shift,
                "max_saturation_gain": self.max_saturation_gain}


def hue_saturation(images, shift, gain):  # noqa: ANN001, ANN201
    """Turn the hue of RGB ``images`` (0-255) by ``shift`` ``(n,)`` of a circle and multiply the saturation by ``gain``."""
    hsv = ops.image.rgb_to_hsv(images / 255.0)
    hue = hsv[..., 0] + shift[:, None, None]
    hue = hue - ops.floor(hue)
    saturation = ops.clip(hsv[..., 1] * gain[:, None, None], 0.0, 1.0)
    return ops.image.hsv_to_rgb(ops.stack([hue, saturation, hsv[..., 2]], axis=-1)) * 255.0


@keras.saving.register_keras_serializable(package="cellkit")
class RandomApply(_RandomLayer):
    """Apply ``layer`` (in training mode) to each image with probability ``rate``; others pass unchanged."""

    def __init__(self, layer: keras.layers.Layer, rate: float = 0.5, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(seed=seed, **kwargs)
        if not isinstance(layer, keras.layers.Layer):
            raise ValueError(f"`layer` must be a keras Layer. Received: layer={layer!r}")
        self.layer = layer
        self.rate = _check_range("rate", rate, 0.0, 1.0)

    def build(self, input_shape: tuple) -> None:
        if not self.layer.built:
            self.layer.build(input_shape)
        self.built = True

    def augment(self, images):  # noqa: ANN001, ANN201
        applied = ops.cast(self.layer(images, training=True), images.dtype)
        pick = keras.random.uniform((_batch_size(images), 1, 1, 1), seed=self.seed_generator) < self.rate
        return ops.where(pick, applied, images)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "layer": keras.saving.serialize_keras_object(self.layer),
            "rate": self.rate,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> RandomApply:
        config = dict(config)
        config["layer"] = keras.saving.deserialize_keras_object(config["layer"])
        return cls(**config)
