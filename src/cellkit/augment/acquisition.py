"""Augmentation layers for what a microscope's acquisition does to an image: noise, exposure, occlusion.

* :class:`RandomGaussianNoise`: additive noise of a per-image random standard deviation.
* :class:`RandomSensorNoise`: a camera's noise, signal-dependent (shot) and constant (read)
  in a random mix, with a log-uniform level up to low-light levels.
* :class:`RandomExposure`: a slide imaged too dark or too bright: a log-uniform gain with
  saturation at 255, then a gamma.
* :class:`RandomFading`: a washed-out or faded image: contrast pulled towards the image's
  mean colour by a log-uniform factor down to ``min_contrast``, then saturation pulled
  towards grey down to ``min_saturation`` (an over-bright lamp, a faded stain).
* :class:`RandomErasing`: one rectangle per image replaced by uniform noise (random erasing,
  the training-time form of the ``random_erasing`` corruption of ``cellkit.corrupt.occlusion``).
* :class:`RandomBlots`: one to three dark, opaque, hard-edged ellipses over the middle of
  the image, where the cell is (dirt, ink, debris). The held-out evaluation's deposits and
  blots (``cellkit.corrupt.artefacts``) have soft, irregular or noise-shaped outlines instead.

Random only with ``training=True``, the identity otherwise; channels-last floats in 0-255;
``keras.ops`` only, so TensorFlow, JAX and PyTorch; serializable under ``"cellkit"``.

Example:
    >>> import numpy as np
    >>> from cellkit.augment.acquisition import RandomExposure
    >>> x = np.full((2, 8, 8, 3), 120.0, "float32")
    >>> dark = np.asarray(RandomExposure(min_gain=0.3, max_gain=0.4, max_gamma=1.0, seed=0)(x, training=True))
    >>> bool((dark < 50).all())
    True
"""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

from cellkit.augment._base import _batch_size, _check_range, _RandomLayer

__all__ = ["RandomBlots", "RandomErasing", "RandomExposure", "RandomFading", "RandomGaussianNoise", "RandomSensorNoise"]


def _log_uniform(shape: tuple, low: float, high: float, seed_generator) -> Any:  # noqa: ANN001
    return ops.exp(keras.random.uniform(shape, math.log(low), math.log(high), seed=seed_generator))


@keras.saving.register_keras_serializable(package="cellkit")
class RandomGaussianNoise(_RandomLayer):
    """Add Gaussian noise of standard deviation ``U(0, max_stddev)`` (grey levels), drawn per image."""

    def __init__(self, max_stddev: float = 10.0, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(seed=seed, **kwargs)
        self.max_stddev = _check_range("max_stddev", max_stddev, 0.0, 255.0)

    def augment(self, images):  # noqa: ANN001, ANN201
        std = keras.random.uniform((_batch_size(images), 1, 1, 1), 0.0, self.max_stddev, seed=self.seed_generator)
        noise = keras.random.normal(ops.shape(images), seed=self.seed_generator)
        return images + ops.cast(noise * std, images.dtype)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "max_stddev": self.max_stddev}


@keras.saving.register_keras_serializable(package="cellkit")
class RandomErasing(_RandomLayer):
    """Replace one rectangle of each image by uniform noise in 0-255 (Zhong et al., *Random Erasing*, 2020).

    The rectangle covers ``U(min_area, max_area)`` of the image area, has an aspect ratio
    log-uniform in ``[1 / max_aspect, max_aspect]`` and a uniformly random centre (it is
    clipped at the border); the noise is independent per pixel and channel.
    """

    def __init__(
        self, min_area: float = 0.02, max_area: float = 0.25, max_aspect: float = 3.0, seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(seed=seed, **kwargs)
        self.max_area = _check_range("max_area", max_area, 0.0, 1.0)
        self.min_area = _check_range("min_area", min_area, 0.0, self.max_area)
        self.max_aspect = _check_range("max_aspect", max_aspect, 1.0, 100.0)

    def augment(self, images):  # noqa: ANN001, ANN201
        n = _batch_size(images)
        h, w = ops.shape(images)[1], ops.shape(images)[2]
        fh, fw = ops.cast(h, "float32"), ops.cast(w, "float32")
        area = keras.random.uniform((n, 1, 1), self.min_area, self.max_area, seed=self.seed_generator) * fh * fw
        log_aspect = math.log(self.max_aspect)
        aspect = ops.exp(keras.random.uniform((n, 1, 1), -log_aspect, log_aspect, seed=self.seed_generator))
        centre_x = keras.random.uniform((n, 1, 1), 0.0, 1.0, seed=self.seed_generator) * fw
        centre_y = keras.random.uniform((n, 1, 1), 0.0, 1.0, seed=self.seed_generator) * fh
        xs = ops.cast(ops.arange(w), "float32")[None, None, :] + 0.5
        ys = ops.cast(ops.arange(h), "float32")[None, :, None] + 0.5
        inside = ops.logical_and(
            ops.abs(xs - centre_x) <= 0.5 * ops.sqrt(area * aspect),
            ops.abs(ys - centre_y) <= 0.5 * ops.sqrt(area / aspect),
        )  # (n, h, w)
        noise = keras.random.uniform(ops.shape(images), 0.0, 255.0, seed=self.seed_generator)
        return ops.where(inside[..., None], ops.cast(noise, images.dtype), images)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "min_area": self.min_area, "max_area": self.max_area,
                "max_aspect": self.max_aspect}


@keras.saving.register_keras_serializable(package="cellkit")
class RandomSensorNoise(_RandomLayer):
    """A camera's noise: standard deviation log-uniform in ``[min_stddev, max_stddev]`` grey levels at mid-grey.

    Each image draws a share ``s ~ U(0, 1)`` of signal-dependent (shot, Poisson-like) noise;
    a pixel of value ``x`` gets ``stddev * sqrt(s * x / 128 + (1 - s))``, so at mid-grey the
    level is ``stddev`` whatever the mix, dark pixels of a shot-noise-limited image are
    cleaner and bright ones noisier. Independent per pixel and channel. Log-uniform, so a
    faint noise is as likely as a strong one per octave: ``max_stddev=64`` reaches what a
    camera records at very low light.

    Example:
        >>> import numpy as np
        >>> x = np.full((1, 32, 32, 3), 128.0, "float32")
        >>> y = np.asarray(RandomSensorNoise(min_stddev=40.0, max_stddev=40.0, seed=0)(x, training=True))
        >>> bool(35 < (y - x).std() < 45)
        True
    """

    def __init__(self, min_stddev: float = 2.0, max_stddev: float = 64.0, seed: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(seed=seed, **kwargs)
        self.max_stddev = _check_range("max_stddev", max_stddev, 0.01, 255.0)
        self.min_stddev = _check_range("min_stddev", min_stddev, 0.01, self.max_stddev)

    def augment(self, images):  # noqa: ANN001, ANN201
        n = _batch_size(images)
        std = _log_uniform((n, 1, 1, 1), self.min_stddev, self.max_stddev, self.seed_generator)
        shot = keras.random.uniform((n, 1, 1, 1), 0.0, 1.0, seed=self.seed_generator)
        signal = ops.clip(ops.cast(images, "float32"), 0.0, 255.0) / 128.0
        level = std * ops.sqrt(shot * signal + (1.0 - shot))
        noise = keras.random.normal(ops.shape(images), seed=self.seed_generator)
        return images + ops.cast(noise * level, images.dtype)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "min_stddev": self.min_stddev, "max_stddev": self.max_stddev}


@keras.saving.register_keras_serializable(package="cellkit")
class RandomExposure(_RandomLayer):
    """Exposure: ``255 * min(x * gain / 255, 1) ** gamma``, gain and gamma log-uniform per image.

    ``gain`` in ``[min_gain, max_gain]`` (``0.3``: a slide scanned far too dark; above 1 the
    brightest pixels saturate and their detail is lost, as on a sensor), ``gamma`` in
    ``[1 / max_gamma, max_gamma]`` (a camera's or scanner's tone curve).
    """

    def __init__(self, min_gain: float = 0.3, max_gain: float = 1.6, max_gamma: float = 1.5,
                 seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(seed=seed, **kwargs)
        self.max_gain = _check_range("max_gain", max_gain, 0.01, 100.0)
        self.min_gain = _check_range("min_gain", min_gain, 0.01, self.max_gain)
        self.max_gamma = _check_range("max_gamma", max_gamma, 1.0, 10.0)

    def augment(self, images):  # noqa: ANN001, ANN201
        n = _batch_size(images)
        gain = _log_uniform((n, 1, 1, 1), self.min_gain, self.max_gain, self.seed_generator)
        gamma = _log_uniform((n, 1, 1, 1), 1.0 / self.max_gamma, self.max_gamma, self.seed_generator)
        scaled = ops.clip(ops.cast(images, "float32") * gain / 255.0, 1e-6, 1.0)
        return ops.cast(255.0 * ops.power(scaled, gamma), images.dtype)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "min_gain": self.min_gain, "max_gain": self.max_gain,
                "max_gamma": self.max_gamma}


@keras.saving.register_keras_serializable(package="cellkit")
class RandomFading(_RandomLayer):
    """A washed-out or faded image: lower contrast, then lower saturation, per image.

    ``x = m + c * (x - m)`` with ``m`` the image's mean colour and ``c`` log-uniform in
    ``[min_contrast, 1]`` (0.05: a field washed out by a lamp far too bright, the cell a
    faint shadow); then ``x = g + s * (x - g)`` with ``g`` each pixel's grey level (the
    mean of its channels) and ``s`` uniform in ``[min_saturation, 1]`` (0: a stain faded to
    grey). Both only ever take contrast and colour away.

    Example:
        >>> import numpy as np
        >>> x = np.random.default_rng(0).uniform(0, 255, (4, 16, 16, 3)).astype("float32")
        >>> y = np.asarray(RandomFading(min_contrast=0.1, seed=0)(x, training=True))
        >>> bool((y.std(axis=(1, 2, 3)) <= x.std(axis=(1, 2, 3)) + 1e-3).all())
        True
    """

    def __init__(self, min_contrast: float = 0.05, min_saturation: float = 0.0,
                 seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(seed=seed, **kwargs)
        self.min_contrast = _check_range("min_contrast", min_contrast, 0.001, 1.0)
        self.min_saturation = _check_range("min_saturation", min_saturation, 0.0, 1.0)

    def augment(self, images):  # noqa: ANN001, ANN201
        n = _batch_size(images)
        x = ops.cast(images, "float32")
        contrast = _log_uniform((n, 1, 1, 1), self.min_contrast, 1.0, self.seed_generator)
        saturation = keras.random.uniform((n, 1, 1, 1), self.min_saturation, 1.0, seed=self.seed_generator)
        mean = ops.mean(x, axis=(1, 2), keepdims=True)
        x = mean + contrast * (x - mean)
        grey = ops.mean(x, axis=-1, keepdims=True)
        return ops.cast(grey + saturation * (x - grey), images.dtype)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "min_contrast": self.min_contrast, "min_saturation": self.min_saturation}


@keras.saving.register_keras_serializable(package="cellkit")
class RandomBlots(_RandomLayer):
    """Dark, opaque ellipses over the middle of each image: ``U(min_area, max_area)`` of it in all.

    One to ``max_blots`` ellipses per image (the first always, each other with probability
    one half) share the area; each has an aspect ratio log-uniform in ``[1/2.5, 2.5]``, a
    random orientation and a centre uniform in the middle 60% of the image (where a
    centred cell is). The colour is dark (value ``U(0, 60)``, each channel scaled by
    ``U(0.6, 1.4)``), the opacity ``U(0.85, 1)``, the edge one pixel wide.

    Example:
        >>> import numpy as np
        >>> x = np.full((4, 48, 48, 3), 200.0, "float32")
        >>> y = np.asarray(RandomBlots(min_area=0.2, max_area=0.2, seed=0)(x, training=True))
        >>> covered = (y.mean(axis=-1) < 100).mean(axis=(1, 2))
        >>> bool(((covered > 0.12) & (covered < 0.24)).all())
        True
    """

    def __init__(self, min_area: float = 0.05, max_area: float = 0.35, max_blots: int = 3,
                 seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(seed=seed, **kwargs)
        self.max_area = _check_range("max_area", max_area, 0.0, 1.0)
        self.min_area = _check_range("min_area", min_area, 0.0, self.max_area)
        self.max_blots = int(_check_range("max_blots", max_blots, 1, 16))

    def augment(self, images):  # noqa: ANN001, ANN201
        n, k = _batch_size(images), self.max_blots
        h, w = ops.shape(images)[1], ops.shape(images)[2]
        fh, fw = ops.cast(h, "float32"), ops.cast(w, "float32")

        def draw(low: float, high: float):  # noqa: ANN202
            return keras.random.uniform((n, k, 1, 1), low, high, seed=self.seed_generator)

        active = ops.cast(ops.logical_or(draw(0.0, 1.0) < 0.5, ops.arange(k)[None, :, None, None] == 0), "float32")
        total = keras.random.uniform((n, 1, 1, 1), self.min_area, self.max_area, seed=self.seed_generator)
        area = total / ops.sum(active, axis=1, keepdims=True) * fh * fw
        aspect = ops.exp(draw(-math.log(2.5), math.log(2.5)))
        half_a, half_b = ops.sqrt(area * aspect / math.pi), ops.sqrt(area / (aspect * math.pi))
        angle = draw(0.0, math.pi)
        dx = ops.cast(ops.arange(w), "float32")[None, None, None, :] + 0.5 - draw(0.2, 0.8) * fw
        dy = ops.cast(ops.arange(h), "float32")[None, None, :, None] + 0.5 - draw(0.2, 0.8) * fh
        u = dx * ops.cos(angle) + dy * ops.sin(angle)
        v = dy * ops.cos(angle) - dx * ops.sin(angle)
        radius = ops.sqrt(ops.square(u / half_a) + ops.square(v / half_b))
        inside = ops.clip((1.0 - radius) * ops.minimum(half_a, half_b) + 0.5, 0.0, 1.0) * active
        opacity = keras.random.uniform((n, 1, 1, 1), 0.85, 1.0, seed=self.seed_generator)
        alpha = ops.max(inside, axis=1)[..., None] * opacity  # (n, h, w, 1)
        value = keras.random.uniform((n, 1, 1, 1), 0.0, 60.0, seed=self.seed_generator)
        colour = value * keras.random.uniform((n, 1, 1, 3), 0.6, 1.4, seed=self.seed_generator)
        x = ops.cast(images, "float32")
        return ops.cast(x + alpha * (colour - x), images.dtype)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "min_area": self.min_area, "max_area": self.max_area,
                "max_blots": self.max_blots}
