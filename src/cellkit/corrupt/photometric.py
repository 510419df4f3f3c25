"""Photometric corruptions: illumination, contrast, colour and stain shifts.

Each function maps a ``uint8`` batch ``(n, h, w, 3)`` to a new one of the same shape;
the input is never modified. Severity ``s`` (1..5) picks the magnitude from the module's
table (``BRIGHTNESS_UP_GAINS[s - 1]`` ...); the random part (direction of a hue shift,
which stain gets stronger) is drawn from ``rng`` and does not depend on the severity, so
a higher severity with the same seed moves the same images further in the same direction.

* brightness: a multiplicative gain, like a brighter or dimmer lamp or a longer or shorter
  exposure (the bright background saturates first).
* contrast: ``mean + f * (image - mean)`` around each image's mean grey level.
* saturation: a blend with the image's luma (ITU-R 601 weights); ``f > 1`` over-saturates.
* hue: rotation of the hue in HSV by a fixed angle, random sign per image.
* colour cast: per-channel gains, like a coloured filter in the light path.
* stain jitter: in optical-density (Beer-Lambert) space, the concentration of each of
  haematoxylin, eosin and DAB is scaled by ``1 + sigma * u`` and shifted by
  ``bias * v`` (``u``, ``v`` random in +-[0.5, 1] per image and stain), after Tellez et
  al. (2018); the colour-deconvolution matrix is that of scikit-image's ``rgb2hed``. Blood
  smears are stained with May-Gruenwald-Giemsa rather than H&E, so the decomposition is
  an approximation of "more/less of each dye", not an exact unmixing.

Example:
    >>> import numpy as np
    >>> from cellkit.corrupt.photometric import contrast_down
    >>> x = np.array([[[[100, 100, 100]], [[200, 200, 200]]]], np.uint8)
    >>> contrast_down(x, severity=5)[0, :, 0, 0]
    array([140, 160], dtype=uint8)
"""

from __future__ import annotations

import cv2
import numpy as np

from cellkit._random import as_generator
from cellkit.corrupt._batch import check_batch, check_severity, map_chunks

__all__ = [
    "BRIGHTNESS_DOWN_GAINS",
    "BRIGHTNESS_UP_GAINS",
    "COLOR_CAST_STRENGTHS",
    "CONTRAST_DOWN_FACTORS",
    "CONTRAST_UP_FACTORS",
    "HED_FROM_RGB",
    "HUE_SHIFT_DEGREES",
    "RGB_FROM_HED",
    "SATURATION_DOWN_FACTORS",
    "SATURATION_UP_FACTORS",
    "STAIN_BIASES",
    "STAIN_SIGMAS",
    "brightness_down",
    "brightness_up",
    "color_cast",
    "contrast_down",
    "contrast_up",
    "hue_shift",
    "saturation_down",
    "saturation_up",
    "stain_jitter",
]

#: Multiplicative illumination gains, severities 1..5.
BRIGHTNESS_UP_GAINS: tuple[float, ...] = (1.1, 1.2, 1.35, 1.5, 1.7)
BRIGHTNESS_DOWN_GAINS: tuple[float, ...] = (0.85, 0.72, 0.6, 0.48, 0.36)
#: Contrast factors around the image mean.
CONTRAST_UP_FACTORS: tuple[float, ...] = (1.25, 1.5, 1.8, 2.2, 2.7)
CONTRAST_DOWN_FACTORS: tuple[float, ...] = (0.75, 0.6, 0.45, 0.3, 0.2)
#: Saturation factors (blend with luma).
SATURATION_UP_FACTORS: tuple[float, ...] = (1.3, 1.6, 2.0, 2.5, 3.0)
SATURATION_DOWN_FACTORS: tuple[float, ...] = (0.75, 0.55, 0.4, 0.25, 0.1)
#: Absolute hue rotation in degrees (sign random per image).
HUE_SHIFT_DEGREES: tuple[float, ...] = (8.0, 16.0, 25.0, 36.0, 50.0)
#: Colour cast: each channel gain is ``1 + strength * u``, ``u`` in +-[0.3, 1] per image and channel.
COLOR_CAST_STRENGTHS: tuple[float, ...] = (0.06, 0.12, 0.18, 0.25, 0.33)
#: Stain jitter: scale ``sigma`` and bias (optical-density units) per severity.
STAIN_SIGMAS: tuple[float, ...] = (0.15, 0.3, 0.45, 0.65, 0.9)
STAIN_BIASES: tuple[float, ...] = (0.02, 0.05, 0.08, 0.11, 0.15)

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)

#: Optical densities (rows: haematoxylin, eosin, DAB; columns: R, G, B) of Ruifrok &
#: Johnston (2001), the matrix of ``skimage.color.rgb_from_hed``; its inverse unmixes.
RGB_FROM_HED = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])
HED_FROM_RGB = np.linalg.inv(RGB_FROM_HED)


def _gain(images: np.ndarray, gain: float) -> np.ndarray:
    return map_chunks(lambda x: x * np.float32(gain), images)


def brightness_up(images: np.ndarray, severity: int = 3, rng: int | np.random.Generator | None = None) -> np.ndarray:
    """Brighter illumination: multiply by :data:`BRIGHTNESS_UP_GAINS` (deterministic)."""
    check_batch(images)
    return _gain(images, BRIGHTNESS_UP_GAINS[check_severity(severity) - 1])


def brightness_down(
    images: np.ndarray, severity: int = 3, rng: int | np.random.Generator | None = None
) -> np.ndarray:
    """Dimmer illumination: multiply by :data:`BRIGHTNESS_DOWN_GAINS` (deterministic)."""
    check_batch(images)
    return _gain(images, BRIGHTNESS_DOWN_GAINS[check_severity(severity) - 1])


def _contrast(images: np.ndarray, factor: float) -> np.ndarray:
    def fn(x: np.ndarray) -> np.ndarray:
        mean = x.mean(axis=(1, 2, 3), keepdims=True)
        x -= mean
        x *= np.float32(factor)
        x += mean
        return x

    return map_chunks(fn, images)


def contrast_up(images: np.ndarray, severity: int = 3, rng: int | np.random.Generator | None = None) -> np.ndarray:
    """Stretch around each image's mean by :data:`CONTRAST_UP_FACTORS` (deterministic)."""
    check_batch(images)
    return _contrast(images, CONTRAST_UP_FACTORS[check_severity(severity) - 1])


def contrast_down(images: np.ndarray, severity: int = 3, rng: int | np.random.Generator | None = None) -> np.ndarray:
    """Compress towards each image's mean by :data:`CONTRAST_DOWN_FACTORS` (deterministic)."""
    check_batch(images)
    return _contrast(images, CONTRAST_DOWN_FACTORS[check_severity(severity) - 1])


def _saturation(images: np.ndarray, factor: float) -> np.ndarray:
    def fn(x: np.ndarray) -> np.ndarray:
        grey = x @ _LUMA[:, None]  # (..., 1); NumPy's batched small-matrix product is fast here
        x -= grey
        x *= np.float32(factor)
        x += grey
        return x

    return map_chunks(fn, images)


def saturation_up(images: np.ndarray, severity: int = 3, rng: int | np.random.Generator | None = None) -> np.ndarray:
    """Over-saturated colours (a stronger stain, a vivid camera profile); deterministic."""
    check_batch(images)
    return _saturation(images, SATURATION_UP_FACTORS[check_severity(severity) - 1])


def saturation_down(
    images: np.ndarray, severity: int = 3, rng: int | np.random.Generator | None = None
) -> np.ndarray:
    """Washed-out colours (faded stain); deterministic."""
    check_batch(images)
    return _saturation(images, SATURATION_DOWN_FACTORS[check_severity(severity) - 1])


def hue_shift(images: np.ndarray, severity: int = 3, rng: int | np.random.Generator | None = None) -> np.ndarray:
    """Rotate the hue by :data:`HUE_SHIFT_DEGREES` degrees, clockwise or not at random per image."""
    check_batch(images)
    degrees = HUE_SHIFT_DEGREES[check_severity(severity) - 1]
    shift = np.where(as_generator(rng).random(images.shape[0]) < 0.5, -degrees, degrees).astype(np.float32)

    def fn(x: np.ndarray, shift: np.ndarray) -> np.ndarray:
        m, h, w, _ = x.shape
        x *= np.float32(1 / 255)
        hsv = cv2.cvtColor(x.reshape(m * h, w, 3), cv2.COLOR_RGB2HSV).reshape(m, h, w, 3)
        hsv[..., 0] = np.mod(hsv[..., 0] + shift[:, None, None], np.float32(360.0))
        rgb = cv2.cvtColor(hsv.reshape(m * h, w, 3), cv2.COLOR_HSV2RGB).reshape(m, h, w, 3)
        rgb *= np.float32(255.0)
        return rgb

    return map_chunks(fn, images, shift)


def _signed_uniform(gen: np.random.Generator, shape: tuple[int, ...], low: float) -> np.ndarray:
    """Values in +-[low, 1], random sign: the direction is random, the size bounded away from 0."""
    mag = gen.uniform(low, 1.0, size=shape)
    sign = np.where(gen.random(shape) < 0.5, -1.0, 1.0)
    return (mag * sign).astype(np.float32)


def color_cast(images: np.ndarray, severity: int = 3, rng: int | np.random.Generator | None = None) -> np.ndarray:
    """Per-channel gains ``1 + strength * u`` (a coloured filter or a white-balance error)."""
    check_batch(images)
    strength = COLOR_CAST_STRENGTHS[check_severity(severity) - 1]
    gains = 1.0 + np.float32(strength) * _signed_uniform(as_generator(rng), (images.shape[0], 3), 0.3)
    return map_chunks(lambda x, g: x * g[:, None, None, :], images, gains)


def stain_jitter(images: np.ndarray, severity: int = 3, rng: int | np.random.Generator | None = None) -> np.ndarray:
    """Random stain concentrations in HED optical-density space (Tellez et al. 2018).

    ``C = OD @ HED_FROM_RGB``; ``C' = C * (1 + sigma * u) + bias * v``;
    ``OD' = C' @ RGB_FROM_HED``; back to intensities. With ``sigma = bias = 0`` this is
    the identity up to rounding.
    """
    check_batch(images)
    s = check_severity(severity)
    gen = as_generator(rng)
    n = images.shape[0]
    u = _signed_uniform(gen, (n, 3), 0.5)
    v = _signed_uniform(gen, (n, 3), 0.5)
    scale = 1.0 + np.float32(STAIN_SIGMAS[s - 1]) * u
    bias = np.float32(STAIN_BIASES[s - 1]) * v
    # both 3x3 matrices are folded with the log/exp constants: OD = log(256) - log(I + 1)
    to_conc = -HED_FROM_RGB.astype(np.float32)
    offset = np.float32(np.log(256.0)) * HED_FROM_RGB.sum(axis=0).astype(np.float32)
    to_od = RGB_FROM_HED.astype(np.float32)

    def fn(x: np.ndarray, scale: np.ndarray, bias: np.ndarray) -> np.ndarray:
        x += 1.0
        np.log(x, out=x)
        conc = x @ to_conc
        conc += offset
        conc *= scale[:, None, None, :]
        conc += bias[:, None, None, :]
        od = conc @ to_od
        np.negative(od, out=od)
        np.exp(od, out=od)
        od *= np.float32(256.0)
        od -= np.float32(1.0)
        return od

    return map_chunks(fn, images, scale, bias)
