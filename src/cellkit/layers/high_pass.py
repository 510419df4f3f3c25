"""Serializable Keras 3 high-pass filter layers (fixed and learnable), ``keras.ops`` only.

Each layer takes a channels-last float batch ``(n, h, w, c)`` in any range (``[0, 1]``,
``[0, 255]``, standardised: the filters are linear, the Sobel magnitude is positively
homogeneous, so the output scales with the input) and any float dtype, including a
``mixed_float16`` policy (the layer computes in its compute dtype). Integer inputs are cast
to the compute dtype.

Common options:

* ``mode="per_channel"`` filters each channel; ``mode="luminance"`` filters the ITU-R BT.601
  luminance ``0.299 R + 0.587 G + 0.114 B`` of an RGB input (one map; a 1-channel input is
  its own luminance).
* ``keep_input=None`` returns the filtered maps; ``"concat"`` returns ``[input, filtered]``
  along the channels (so a backbone still sees colour); ``"add"`` returns
  ``input + filtered`` (sharpening; the filtered maps must have the input's channels, or be
  one luminance map, which is added to every channel).
* ``scale`` multiplies the filtered maps (before concatenation or addition).

Borders are reflect-padded then convolved "valid" (see :mod:`cellkit.filters.ops`): no
edge is invented at the image border, and the result equals ``scipy.ndimage``'s
``mode="mirror"`` / OpenCV's ``BORDER_REFLECT_101``. The output has the input's height and
width; each side must be longer than the kernel's half-size (``k // 2``).

Example:
    >>> import numpy as np
    >>> from cellkit.layers import LaplacianFilter
    >>> layer = LaplacianFilter(keep_input="concat")
    >>> y = layer(np.ones((2, 16, 16, 3), "float32"))
    >>> tuple(y.shape), float(np.abs(np.asarray(y)[..., 3:]).max())
    ((2, 16, 16, 6), 0.0)
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from cellkit.filters import ops as hp
from cellkit.filters.kernels import difference_of_gaussians_kernel, laplacian_kernel
from cellkit.layers._checks import check_choice, check_int, check_real

__all__ = [
    "KEEP_INPUT",
    "MODES",
    "DifferenceOfGaussians",
    "HighPassFilter",
    "LaplacianFilter",
    "LearnableHighPass",
    "SobelMagnitude",
]

#: Accepted values of ``mode``.
MODES: tuple[str, ...] = ("per_channel", "luminance")
#: Accepted values of ``keep_input``.
KEEP_INPUT: tuple[str | None, ...] = (None, "concat", "add")

Shape = tuple[int | None, ...]


class HighPassFilter(keras.layers.Layer):
    """Base of the high-pass layers: input checks, luminance, ``scale`` and ``keep_input``.

    Subclasses set :attr:`kernel_size` and implement :meth:`filter` (and :meth:`filter_channels`
    when a pixel gives more than one map per channel).

    Args:
        mode: ``"per_channel"`` or ``"luminance"`` (BT.601; RGB or 1-channel inputs).
        keep_input: ``None``, ``"concat"`` or ``"add"`` (see the module docstring).
        scale: factor applied to the filtered maps.
        **kwargs: ``keras.layers.Layer`` arguments (``name``, ``dtype``, ``trainable``...).
    """

    #: Side of the (square) kernel; the reflect padding is ``kernel_size // 2``.
    kernel_size: int = 3

    def __init__(
        self,
        mode: str = "per_channel",
        keep_input: str | None = None,
        scale: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.mode = check_choice("mode", mode, MODES)
        self.keep_input = check_choice("keep_input", keep_input, KEEP_INPUT)
        self.scale = check_real("scale", scale)

    # -- to override -------------------------------------------------------------------
    def filter(self, x: Any) -> Any:
        """The filtered maps of a prepared ``(n, h, w, c)`` batch (``c`` = 1 in luminance mode)."""
        raise NotImplementedError

    def filter_channels(self, channels: int) -> int:
        """Number of filtered maps for ``channels`` prepared channels."""
        return channels

    # -- shapes ------------------------------------------------------------------------
    def _check_input_shape(self, input_shape: Shape) -> int:
        """Validate ``input_shape``; return the number of channels the filter sees."""
        shape = tuple(input_shape)
        if len(shape) != 4:
            raise ValueError(
                f"{type(self).__name__} expects a channels-last batch of images (batch, height, width, "
                f"channels). Received: input_shape={shape}"
            )
        channels = shape[-1]
        if channels is None:
            raise ValueError(f"the number of channels must be known. Received: input_shape={shape}")
        half = self.kernel_size // 2
        if any(side is not None and side <= half for side in shape[1:3]):
            raise ValueError(
                f"{type(self).__name__} with a {self.kernel_size}x{self.kernel_size} kernel reflect-pads "
                f"{half} pixels, so height and width must be > {half}. Received: input_shape={shape}"
            )
        if self.mode == "luminance":
            if channels not in (1, 3):
                raise ValueError(
                    f"mode='luminance' needs 1 or 3 (RGB) input channels. Received: input_shape={shape}"
                )
            channels = 1
        filtered = self.filter_channels(channels)
        if self.keep_input == "add" and filtered not in (1, shape[-1]):
            raise ValueError(
                f"keep_input='add' needs as many filtered maps as input channels (or one luminance map); "
                f"this layer gives {filtered} for {shape[-1]} channels. Received: input_shape={shape}"
            )
        return channels

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        shape = tuple(input_shape)
        filtered = self.filter_channels(self._check_input_shape(shape))
        channels = filtered
        if self.keep_input == "concat":
            channels = shape[-1] + filtered
        elif self.keep_input == "add":
            channels = shape[-1]
        return (*shape[:3], channels)

    def build(self, input_shape: Shape) -> None:
        self._check_input_shape(input_shape)  # the first call gets these messages,
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={-1: input_shape[-1]})  # later ones Keras's
        super().build(input_shape)

    # -- forward -----------------------------------------------------------------------
    def call(self, inputs: Any) -> Any:
        x = ops.cast(inputs, self.compute_dtype)
        prepared = hp.rgb_to_luminance(x) if self.mode == "luminance" else x
        filtered = self.filter(prepared)
        if self.scale != 1.0:
            filtered = filtered * ops.cast(self.scale, filtered.dtype)
        if self.keep_input == "concat":
            return ops.concatenate([x, filtered], axis=-1)
        if self.keep_input == "add":
            return x + filtered
        return filtered

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(mode=self.mode, keep_input=self.keep_input, scale=self.scale)
        return config


@keras.saving.register_keras_serializable(package="cellkit")
class LaplacianFilter(HighPassFilter):
    """Fixed 3x3 discrete Laplacian (``scipy.ndimage.laplace`` with ``mode="mirror"``).

    Args:
        diagonal: use the 8-neighbour kernel instead of the 4-neighbour one.
        mode, keep_input, scale, **kwargs: see :class:`HighPassFilter`.

    Example:
        >>> import numpy as np
        >>> tuple(LaplacianFilter(mode="luminance")(np.zeros((1, 8, 8, 3), "float32")).shape)
        (1, 8, 8, 1)
    """

    def __init__(self, diagonal: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(diagonal, bool | np.bool_):
            raise ValueError(f"diagonal must be a bool. Received: diagonal={diagonal!r}")
        self.diagonal = bool(diagonal)
        self._kernel = laplacian_kernel(self.diagonal)

    def filter(self, x: Any) -> Any:
        return hp.filter2d(x, self._kernel)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "diagonal": self.diagonal}


@keras.saving.register_keras_serializable(package="cellkit")
class SobelMagnitude(HighPassFilter):
    """Fixed Sobel gradient magnitude ``hypot(sobel_x, sobel_y)`` (``cv2.Sobel`` kernels, ``ksize=3``).

    Non-negative and zero on flat regions; its gradient is defined as 0 where the magnitude is 0.

    Example:
        >>> import numpy as np
        >>> tuple(SobelMagnitude()(np.zeros((1, 8, 8, 3), "float32")).shape)
        (1, 8, 8, 3)
    """

    def filter(self, x: Any) -> Any:
        return hp.sobel_magnitude(x)


@keras.saving.register_keras_serializable(package="cellkit")
class DifferenceOfGaussians(HighPassFilter):
    """Fixed difference of Gaussians ``G(sigma_low) - G(sigma_high)``, a zero-sum band-pass.

    The kernel is :func:`cellkit.filters.kernels.difference_of_gaussians_kernel`; its side
    ``size`` defaults to ``2 * ceil(3 * sigma_high) + 1`` (13 for the default sigmas), so
    images must be larger than ``size // 2`` on each side. It runs as separable passes.

    Args:
        sigma_low: the narrower Gaussian (> 0).
        sigma_high: the wider Gaussian (> ``sigma_low``).
        size: odd kernel side, or ``None`` for the default.
        mode, keep_input, scale, **kwargs: see :class:`HighPassFilter`.

    Example:
        >>> import numpy as np
        >>> tuple(DifferenceOfGaussians(0.5, 1.5)(np.zeros((1, 16, 16, 1), "float32")).shape)
        (1, 16, 16, 1)
    """

    def __init__(
        self, sigma_low: float = 1.0, sigma_high: float = 2.0, size: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.sigma_low = check_real("sigma_low", sigma_low, positive=True)
        self.sigma_high = check_real("sigma_high", sigma_high, positive=True)
        self.size = check_int("size", size, minimum=1, odd=True, optional=True)
        self._kernel = difference_of_gaussians_kernel(self.sigma_low, self.sigma_high, self.size)
        self.kernel_size = int(self._kernel.shape[0])

    def filter(self, x: Any) -> Any:
        return hp.filter2d(x, self._kernel)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "sigma_low": self.sigma_low,
            "sigma_high": self.sigma_high,
            "size": self.size,
        }


@keras.saving.register_keras_serializable(package="cellkit")
class LearnableHighPass(HighPassFilter):
    """Trainable high-pass: ``filters`` kernels per channel, each kept zero-sum.

    The layer trains a raw kernel ``w`` of shape ``(kernel_size, kernel_size, c, filters)``
    (``c`` = 1 in luminance mode) and filters with :attr:`effective_kernel`
    ``w - mean(w over the kernel window)``, which sums to zero exactly by construction, so a
    constant image always gives zero response whatever training does. Every kernel starts as
    the 4-neighbour Laplacian (centred in the window); kernels after the first get a small
    seeded perturbation so that they can learn different filters. Output maps are ordered
    ``channel * filters + filter``.

    Args:
        filters: kernels per channel (``keep_input="add"`` needs 1).
        kernel_size: odd window side >= 3.
        seed: seed of the perturbation of the extra kernels.
        mode, keep_input, scale, **kwargs: see :class:`HighPassFilter`.

    Example:
        >>> import numpy as np
        >>> layer = LearnableHighPass(filters=2)
        >>> tuple(layer(np.zeros((1, 8, 8, 3), "float32")).shape)
        (1, 8, 8, 6)
        >>> float(np.abs(np.asarray(layer.effective_kernel).sum(axis=(0, 1))).max()) < 1e-6
        True
    """

    def __init__(
        self, filters: int = 1, kernel_size: int = 3, seed: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.filters = check_int("filters", filters, minimum=1)
        self.kernel_size = check_int("kernel_size", kernel_size, minimum=3, odd=True)
        self.seed = check_int("seed", seed, minimum=0, optional=True)
        if self.keep_input == "add" and self.filters != 1:
            raise ValueError(
                "keep_input='add' adds one filtered map per input channel, so it needs filters=1. "
                f"Received: filters={filters!r}"
            )
        self.kernel = None

    def filter_channels(self, channels: int) -> int:
        return channels * self.filters

    def build(self, input_shape: Shape) -> None:
        channels = self._check_input_shape(input_shape)
        initial = self._initial_kernel(channels)
        self.kernel = self.add_weight(
            name="kernel",
            shape=initial.shape,
            initializer=lambda shape, dtype=None: ops.convert_to_tensor(initial, dtype=dtype),
            trainable=True,
        )
        super().build(input_shape)

    def _initial_kernel(self, channels: int) -> np.ndarray:
        k, half = self.kernel_size, self.kernel_size // 2
        initial = np.zeros((k, k, channels, self.filters))
        initial[half - 1 : half + 2, half - 1 : half + 2] = laplacian_kernel()[:, :, None, None]
        if self.filters > 1:
            noise = np.random.default_rng(self.seed).normal(0.0, 0.1, (k, k, channels, self.filters - 1))
            initial[..., 1:] += noise
        return initial

    @property
    def effective_kernel(self) -> Any:
        """The zero-sum kernel used by the layer, ``(k, k, c, filters)`` (variable dtype)."""
        if self.kernel is None:
            raise ValueError(
                f"layer {self.name!r} is not built yet; call it on a batch first. Received: kernel=None"
            )
        w = ops.convert_to_tensor(self.kernel)
        return w - ops.mean(w, axis=(0, 1), keepdims=True)

    def filter(self, x: Any) -> Any:
        return hp.depthwise_filter2d(x, ops.cast(self.effective_kernel, x.dtype))

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "seed": self.seed,
        }
