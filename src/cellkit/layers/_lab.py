"""sRGB <-> CIE L*a*b* (D65) in ``keras.ops``, float32: the colour space of Reinhard normalisation.

sRGB with the IEC 61966-2-1 transfer curve, the D65 sRGB -> XYZ matrix and white point of
``skimage.color.rgb2lab`` (2-degree observer), and the CIE 1976 L*a*b* formulas. Public as
:func:`cellkit.layers.stain_norm.rgb_to_lab` and :func:`~cellkit.layers.stain_norm.lab_to_rgb`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from keras import ops

__all__ = ["lab_to_rgb", "rgb_to_lab"]

# sRGB (linear) -> XYZ, D65, and the D65 white point: skimage.color's values.
_XYZ_FROM_RGB = np.array(
    [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]]
)
_RGB_FROM_XYZ = np.linalg.inv(_XYZ_FROM_RGB)
_WHITE_D65 = np.array([0.95047, 1.0, 1.08883])
_DELTA = 6.0 / 29.0  # CIE: f(t) is linear below t = delta**3


def _mix(v: Any, matrix: np.ndarray) -> Any:
    """``matrix @ v`` for the last axis of ``v`` (3 channels), any leading shape."""
    channels = [v[..., 0], v[..., 1], v[..., 2]]
    rows = [sum(float(m) * c for m, c in zip(row, channels, strict=True)) for row in matrix]
    return ops.stack(rows, axis=-1)


def _srgb_to_linear(c: Any) -> Any:
    c = ops.clip(c, 0.0, 1.0)
    curve = ops.power((ops.maximum(c, 0.04045) + 0.055) / 1.055, 2.4)
    return ops.where(c <= 0.04045, c / 12.92, curve)


def _linear_to_srgb(c: Any) -> Any:
    c = ops.clip(c, 0.0, 1.0)
    curve = 1.055 * ops.power(ops.maximum(c, 0.0031308), 1.0 / 2.4) - 0.055
    return ops.where(c <= 0.0031308, 12.92 * c, curve)


def _lab_f(t: Any) -> Any:
    cube_root = ops.power(ops.maximum(t, _DELTA**3), 1.0 / 3.0)  # maximum: no NaN gradient at 0
    return ops.where(t > _DELTA**3, cube_root, t / (3.0 * _DELTA**2) + 4.0 / 29.0)


def _lab_f_inverse(f: Any) -> Any:
    return ops.where(f > _DELTA, f * f * f, 3.0 * _DELTA**2 * (f - 4.0 / 29.0))


def rgb_to_lab(rgb: Any) -> Any:
    """CIE L*a*b* (D65) of RGB values 0-255, channels last, computed in float32.

    Values outside 0-255 are clipped first. ``L*`` is in [0, 100]; ``a*``, ``b*`` about
    [-128, 127]. Matches ``skimage.color.rgb2lab(rgb / 255)``.

    Example:
        >>> import numpy as np
        >>> np.round(np.asarray(rgb_to_lab(np.array([[255.0, 255.0, 255.0], [0.0, 0.0, 0.0]]))), 1) + 0.0
        array([[100.,   0.,   0.],
               [  0.,   0.,   0.]], dtype=float32)
    """
    linear = _srgb_to_linear(ops.cast(rgb, "float32") / 255.0)
    xyz = _mix(linear, _XYZ_FROM_RGB / _WHITE_D65[:, None])
    f = _lab_f(xyz)
    fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
    return ops.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def lab_to_rgb(lab: Any) -> Any:
    """RGB values 0-255 (float32, clipped to the sRGB gamut) of CIE L*a*b* (D65) values.

    The inverse of :func:`rgb_to_lab` inside the gamut.

    Example:
        >>> import numpy as np
        >>> rgb = np.array([[12.0, 200.0, 97.0]])
        >>> bool(np.abs(np.asarray(lab_to_rgb(rgb_to_lab(rgb))) - rgb).max() < 0.01)
        True
    """
    lab = ops.cast(lab, "float32")
    fy = (lab[..., 0] + 16.0) / 116.0
    f = ops.stack([fy + lab[..., 1] / 500.0, fy, fy - lab[..., 2] / 200.0], axis=-1)
    linear = _mix(_lab_f_inverse(f), _RGB_FROM_XYZ * _WHITE_D65[None, :])  # (XYZ / white) -> linear RGB
    return ops.clip(_linear_to_srgb(linear) * 255.0, 0.0, 255.0)

