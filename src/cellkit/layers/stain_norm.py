"""Stain and illumination normalisation as serializable Keras 3 layers (``keras.ops`` only).

Blood-smear images from another microscope, stain batch or camera differ mostly in colour
and brightness. These layers put every image into one reference colour distribution
*inside* the model, so the classifier sees the same normalised input in training and at
inference on any microscope:

* :class:`ReinhardNormalization` (Reinhard et al., *Color transfer between images*, 2001):
  each image is converted to CIE L*a*b*, each channel is standardised with the image's own
  mean and standard deviation (over all its pixels) and rescaled to ``target_mean`` /
  ``target_std``, then converted back to RGB 0-255 and clipped.
* :class:`GrayWorldNormalization` (illumination / white balance): each channel is divided by
  the image's mean of that channel and multiplied by ``target_rgb``, then clipped.
* :class:`MacenkoNormalization` (Macenko et al., *A method for normalizing histology
  slides for quantitative analysis*, ISBI 2009): two stain vectors are estimated per image
  in optical density (the plane of the two main eigenvectors of the stained pixels' OD
  covariance, ``keras.ops.eigh``, and robust percentile angles in it), each pixel is split
  into the two stain concentrations, and the image is recomposed with fixed target stains
  and concentration ranges. It was designed for H&E histology; blood smears are stained
  with May-Grünwald-Giemsa, whose two-stain fit is looser.

All three take raw RGB pixel values 0-255 (uint8 images cast to float, as a cellkit classifier
receives them), any batch size and image size; they compute in float32 whatever the dtype
policy (``mixed_float16``, ``mixed_bfloat16``) and return the layer's compute dtype. They
have no weights and no training-time behaviour: the output depends only on the image.

The RGB <-> Lab conversion (:func:`rgb_to_lab`, :func:`lab_to_rgb`) is sRGB with the IEC
61966-2-1 transfer curve, the D65 sRGB -> XYZ matrix and white point of
``skimage.color.rgb2lab`` (2-degree observer), and the CIE 1976 L*a*b* formulas.

Not included: Vahadane et al. (2016) structure-preserving normalisation. It factorises the
optical densities with sparse non-negative matrix factorisation (an iterative dictionary
learning per image), which has no batched, backend-agnostic ``keras.ops`` form short of
writing the solver's loop into the graph.

The colour maths are private modules: the Lab conversion in :mod:`cellkit.layers._lab`,
Macenko's stain estimate in :mod:`cellkit.layers._macenko`; this module holds the layers.

Example:
    >>> import numpy as np
    >>> from cellkit.layers import ReinhardNormalization
    >>> images = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3)).astype("float32")
    >>> y = np.asarray(ReinhardNormalization()(images))
    >>> y.shape, bool(y.min() >= 0 and y.max() <= 255)
    ((2, 16, 16, 3), True)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from numbers import Real
from types import MappingProxyType
from typing import Any

import keras
import numpy as np
from keras import ops

from cellkit.layers._checks import check_epsilon, check_triple
from cellkit.layers._lab import lab_to_rgb, rgb_to_lab
from cellkit.layers._macenko import macenko, macenko_stains, optical_density

__all__ = [
    "DEFAULT_TARGET_MAX_CONCENTRATION",
    "DEFAULT_TARGET_MEAN",
    "DEFAULT_TARGET_RGB",
    "DEFAULT_TARGET_STAINS",
    "DEFAULT_TARGET_STD",
    "NORMALIZATION_LAYERS",
    "GrayWorldNormalization",
    "MacenkoNormalization",
    "ReinhardNormalization",
    "lab_to_rgb",
    "macenko_stains",
    "normalization_layer",
    "rgb_to_lab",
]

# Defaults: the per-image Lab mean and standard deviation (over all pixels) of the bundled
# sample, ``cellkit.load("sample").images`` (480 PBC images, 60 per class), averaged over
# its images and rounded to 0.1, computed with this module's rgb_to_lab (float32):
#   lab = rgb_to_lab(images); mean = lab.mean(axis=(1, 2)).mean(0); std = lab.std(axis=(1, 2)).mean(0)
#: Default Reinhard target mean (L*, a*, b*): the PBC sample's typical image.
DEFAULT_TARGET_MEAN: tuple[float, float, float] = (79.4, 10.8, 7.0)
#: Default Reinhard target standard deviation (L*, a*, b*).
DEFAULT_TARGET_STD: tuple[float, float, float] = (15.3, 7.8, 12.8)
#: Default grey-world target (R, G, B) channel means: the sample's ``images.mean(axis=(0, 1, 2))``
#: rounded to 0.1.
DEFAULT_TARGET_RGB: tuple[float, float, float] = (222.0, 190.5, 184.2)
#: Default Macenko target stain vectors (unit optical-density vectors, the stain with the
#: larger red OD first): the per-image :func:`macenko_stains` of the sample, median over its
#: images, renormalised, rounded to 0.001.
DEFAULT_TARGET_STAINS: tuple[tuple[float, float, float], tuple[float, float, float]] = (
    (0.507, 0.82, 0.266),
    (0.356, 0.575, 0.737),
)
#: Default Macenko target 99th-percentile concentrations: the sample's median, rounded to 0.001.
DEFAULT_TARGET_MAX_CONCENTRATION: tuple[float, float] = (2.417, 0.64)

def _const(values: np.ndarray) -> Any:
    return ops.convert_to_tensor(np.asarray(values, dtype="float32"), dtype="float32")


class _ImageNormalization(keras.layers.Layer):
    """Shared input checks and dtype handling: RGB batch in, same shape out, float32 inside."""

    def _check_input_shape(self, input_shape: tuple[int | None, ...]) -> None:
        shape = tuple(input_shape)
        if len(shape) != 4 or shape[-1] != 3:
            raise ValueError(
                f"{type(self).__name__} expects a channels-last batch of RGB images (batch, height, width, 3). "
                f"Received: input_shape={shape}"
            )

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self._check_input_shape(input_shape)
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={-1: 3})
        super().build(input_shape)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        self._check_input_shape(input_shape)
        return tuple(input_shape)

    def normalize(self, rgb: Any) -> Any:
        """The normalised float32 RGB 0-255 batch of a float32 RGB 0-255 batch."""
        raise NotImplementedError

    def call(self, inputs: Any) -> Any:
        return ops.cast(self.normalize(ops.cast(inputs, "float32")), self.compute_dtype)


@keras.saving.register_keras_serializable(package="cellkit")
class ReinhardNormalization(_ImageNormalization):
    """Per-image Reinhard colour normalisation in CIE L*a*b*.

    For each image and each Lab channel: ``(lab - mean) / sqrt(var + epsilon) * target_std
    + target_mean``, with the image's mean and variance over all its pixels; then back to
    RGB 0-255, clipped to the sRGB gamut. ``epsilon`` (in squared Lab units) keeps a nearly
    uniform channel (a grey image's a* and b*) from having its noise blown up.

    Args:
        target_mean: (L*, a*, b*) means of the output; default :data:`DEFAULT_TARGET_MEAN`
            (the bundled PBC sample's typical image).
        target_std: (L*, a*, b*) standard deviations of the output (> 0); default
            :data:`DEFAULT_TARGET_STD`.
        epsilon: added to each channel's variance (> 0).
        **kwargs: ``keras.layers.Layer`` arguments (``name``, ``dtype``...).

    Example:
        >>> import numpy as np
        >>> from cellkit.layers.stain_norm import rgb_to_lab
        >>> images = np.random.default_rng(1).uniform(60, 200, (1, 32, 32, 3)).astype("float32")
        >>> out = ReinhardNormalization(target_mean=(60.0, 10.0, -5.0), target_std=(8.0, 4.0, 4.0))(images)
        >>> np.round(np.asarray(rgb_to_lab(out)).mean(axis=(0, 1, 2)))
        array([60., 10., -5.], dtype=float32)
    """

    def __init__(
        self,
        target_mean: tuple[float, float, float] = DEFAULT_TARGET_MEAN,
        target_std: tuple[float, float, float] = DEFAULT_TARGET_STD,
        epsilon: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.target_mean = check_triple("target_mean", target_mean)
        self.target_std = check_triple("target_std", target_std, positive=True)
        self.epsilon = check_epsilon(epsilon)

    def normalize(self, rgb: Any) -> Any:
        lab = rgb_to_lab(rgb)
        mean = ops.mean(lab, axis=(1, 2), keepdims=True)
        var = ops.mean(ops.square(lab - mean), axis=(1, 2), keepdims=True)
        standard = (lab - mean) / ops.sqrt(var + self.epsilon)
        return lab_to_rgb(standard * _const(self.target_std) + _const(self.target_mean))

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "target_mean": list(self.target_mean),
            "target_std": list(self.target_std),
            "epsilon": self.epsilon,
        }


@keras.saving.register_keras_serializable(package="cellkit")
class GrayWorldNormalization(_ImageNormalization):
    """Per-image grey-world illumination normalisation: channel means set to ``target_rgb``.

    Each channel is multiplied by ``target / (mean + epsilon)``, with the image's mean of
    that channel over all its pixels, then clipped to 0-255. It undoes a global colour cast
    or brightness change (a multiplicative one exactly, up to clipping); it does not change
    the contrast between the cells and the background.

    Args:
        target_rgb: (R, G, B) channel means of the output, 0-255 (> 0); default
            :data:`DEFAULT_TARGET_RGB` (the bundled PBC sample's mean colour).
        epsilon: added to each mean (> 0): a black image stays black.
        **kwargs: ``keras.layers.Layer`` arguments (``name``, ``dtype``...).

    Example:
        >>> import numpy as np
        >>> images = np.full((1, 4, 4, 3), [100.0, 50.0, 25.0], "float32")
        >>> np.asarray(GrayWorldNormalization(target_rgb=(200, 200, 200))(images))[0, 0, 0].round()
        array([200., 200., 200.], dtype=float32)
    """

    def __init__(
        self, target_rgb: tuple[float, float, float] = DEFAULT_TARGET_RGB, epsilon: float = 1e-3, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.target_rgb = check_triple("target_rgb", target_rgb, positive=True)
        if max(self.target_rgb) > 255:
            raise ValueError(f"target_rgb must be in (0, 255]. Received: target_rgb={target_rgb!r}")
        self.epsilon = check_epsilon(epsilon)

    def normalize(self, rgb: Any) -> Any:
        rgb = ops.clip(rgb, 0.0, 255.0)
        mean = ops.mean(rgb, axis=(1, 2), keepdims=True)
        return ops.clip(rgb * (_const(self.target_rgb) / (mean + self.epsilon)), 0.0, 255.0)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "target_rgb": list(self.target_rgb), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="cellkit")
class MacenkoNormalization(_ImageNormalization):
    """Per-image Macenko stain normalisation (Macenko et al., ISBI 2009).

    Each image's two stain vectors are estimated in optical density (:func:`macenko_stains`),
    its pixels are decomposed into the two stain concentrations, the concentrations are
    scaled so that their 99th percentiles match ``target_max_concentration``, and the image
    is recomposed with ``target_stains``, then clipped to 0-255. An image with fewer than
    ``min_tissue`` stained pixels (blank, or nearly all background), or whose two stain
    vectors coincide (a uniform image), is returned unchanged (clipped to 0-255).

    It normalises the *stains* (their hue and amount); a colour cast of the illumination
    (a tinted background) is an offset in optical density that it does not remove:
    :class:`ReinhardNormalization` or :class:`GrayWorldNormalization` do.

    Args:
        target_stains: two unit OD vectors ``((r, g, b), (r, g, b))``; default
            :data:`DEFAULT_TARGET_STAINS` (the bundled PBC sample's).
        target_max_concentration: the two target 99th-percentile concentrations (> 0).
        beta: background optical-density threshold (> 0).
        alpha: angle percentile, in (0, 50).
        min_tissue: stained pixels needed for an estimate (>= 2).
        **kwargs: ``keras.layers.Layer`` arguments (``name``, ``dtype``...).

    Example:
        >>> import numpy as np
        >>> images = np.random.default_rng(0).uniform(60, 240, (2, 16, 16, 3)).astype("float32")
        >>> y = np.asarray(MacenkoNormalization()(images))
        >>> y.shape, bool(np.isfinite(y).all())
        ((2, 16, 16, 3), True)
    """

    def __init__(
        self,
        target_stains: Sequence[Sequence[float]] | None = None,
        target_max_concentration: Sequence[float] | None = None,
        beta: float = 0.15,
        alpha: float = 1.0,
        min_tissue: int = 16,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        stains = DEFAULT_TARGET_STAINS if target_stains is None else target_stains
        try:
            rows = [check_triple("target_stains", s, positive=False) for s in stains]
        except TypeError:
            rows = []
        if len(rows) != 2 or any(np.linalg.norm(r) == 0 for r in rows):
            raise ValueError(f"target_stains must be two non-zero (r, g, b) vectors. Received: target_stains={stains!r}")
        self.target_stains = tuple(tuple(float(v) for v in np.asarray(r) / np.linalg.norm(r)) for r in rows)
        maximum = DEFAULT_TARGET_MAX_CONCENTRATION if target_max_concentration is None else target_max_concentration
        values = tuple(maximum) if isinstance(maximum, list | tuple) else ()
        if len(values) != 2 or not all(isinstance(v, Real) and math.isfinite(v) and v > 0 for v in values):
            raise ValueError("target_max_concentration must be two positive numbers. "
                             f"Received: target_max_concentration={maximum!r}")
        self.target_max_concentration = tuple(float(v) for v in values)
        self.beta = check_epsilon(beta, "beta")
        self.alpha = check_epsilon(alpha, "alpha")
        if self.alpha >= 50:
            raise ValueError(f"alpha must be in (0, 50). Received: alpha={alpha!r}")
        if isinstance(min_tissue, bool) or not isinstance(min_tissue, int | np.integer) or min_tissue < 2:
            raise ValueError(f"min_tissue must be an int >= 2. Received: min_tissue={min_tissue!r}")
        self.min_tissue = int(min_tissue)

    def normalize(self, rgb: Any) -> Any:
        shape = ops.shape(rgb)
        od = ops.reshape(optical_density(rgb), (shape[0], -1, 3))
        stains, concentration, tissue = macenko(od, self.beta, self.alpha)
        max_c = ops.quantile(concentration, 0.99, axis=1)
        concentration = concentration * (_const(self.target_max_concentration) / ops.maximum(max_c, 1e-6))[:, None, :]
        target = _const(np.array(self.target_stains).T)  # (3, 2)
        out = 256.0 * ops.exp(-ops.einsum("npk,ik->npi", concentration, target)) - 1.0
        out = ops.reshape(ops.clip(out, 0.0, 255.0), shape)
        distinct = ops.abs(ops.sum(stains[:, :, 0] * stains[:, :, 1], axis=-1)) < 0.9999  # not one colour
        valid = ops.logical_and(tissue >= self.min_tissue, distinct)
        return ops.where(valid[:, None, None, None], out, ops.clip(rgb, 0.0, 255.0))

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "target_stains": [list(s) for s in self.target_stains],
            "target_max_concentration": list(self.target_max_concentration),
            "beta": self.beta,
            "alpha": self.alpha,
            "min_tissue": self.min_tissue,
        }


#: The normalisation layers by name (``build_classifier(normalize=...)``).
NORMALIZATION_LAYERS: Mapping[str, type[keras.layers.Layer]] = MappingProxyType(
    {"reinhard": ReinhardNormalization, "grayworld": GrayWorldNormalization, "macenko": MacenkoNormalization}
)


def normalization_layer(name: str, /, **kwargs: Any) -> keras.layers.Layer:
    """A new normalisation layer: ``name`` is ``"reinhard"``, ``"grayworld"`` or ``"macenko"``.

    Example:
        >>> type(normalization_layer("reinhard")).__name__
        'ReinhardNormalization'
    """
    cls = NORMALIZATION_LAYERS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(
            f"Unknown normalisation layer. Available: {', '.join(map(repr, NORMALIZATION_LAYERS))}. "
            f"Received: normalize={name!r}"
        )
    return cls(**kwargs)
