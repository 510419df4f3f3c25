"""Saliency maps of a trained classifier: where in an image its prediction comes from.

:func:`explain` (``cellkit.explain``) returns one map per image, ``(n, h, w)`` float32 in
``[0, 1]`` at the images' own size (1 marks the most important pixel of that image; an
all-zero map says that nothing raised the class), by one of :data:`METHODS`:

- ``"gradcam"`` (:func:`grad_cam`; Selvaraju et al., 2017): the model's last feature map
  ``F`` (the input of its global pooling: for :func:`cellkit.build_classifier`'s models the
  backbone's output), each channel weighted by the mean gradient of the class logit with
  respect to it, summed, ReLU, upsampled bilinearly. The gradient is the one part that
  depends on the Keras backend: one small function per backend (TensorFlow's
  ``GradientTape``, JAX's ``jax.grad`` of ``stateless_call``, PyTorch's autograd);
- ``"occlusion"`` (:func:`occlusion_sensitivity`; Zeiler and Fergus, 2014): a square patch
  of the image's mean colour slides over it, and each pixel gets the mean drop of the class
  probability over the patches that cover it (no gradients: any backend, any model).

The class explained is the model's prediction (its arg-max, wrappers included) unless
``classes`` names one per image. What a saved model wraps around its classifier is taken
apart (:func:`single_view_members`): a temperature (:mod:`cellkit.inference.temperature`) and
test-time views (:mod:`cellkit.inference.tta`) are left out -- the single-view classifier is
explained -- and the members of an ensemble (:mod:`cellkit.inference.ensemble`) are
explained one by one: their Grad-CAM maps are averaged with the ensemble's member weights,
and occlusion measures the drop of their averaged probability.

Example:
    >>> import numpy as np
    >>> from cellkit.zoo import build_classifier
    >>> model = build_classifier("baseline", num_classes=3, input_shape=(16, 16, 3))
    >>> images = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    >>> maps = explain(model, images)
    >>> maps.shape, maps.dtype, bool(0 <= maps.min() and maps.max() <= 1)
    ((2, 16, 16), dtype('float32'), True)
    >>> explain(model, images, method="occlusion", patch=4).shape
    (2, 16, 16)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import cv2
import keras
import numpy as np

from cellkit._progress import progress
from cellkit.data.dataset import image_batch
from cellkit.errors import DataError
from cellkit.inference._class_gradients import class_score_gradients, gradient_function
from cellkit.inference.predict import check_input_size, predict_proba

__all__ = ["METHODS", "explain", "feature_split", "grad_cam", "occlusion_sensitivity", "single_view_members"]

#: The saliency methods, in the order ``cellkit explain`` runs them.
METHODS: tuple[str, ...] = ("gradcam", "occlusion")

#: Layers whose 4-D input is the feature map Grad-CAM explains (the head's pooling).
_POOLING = (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D, keras.layers.Flatten)
#: Probabilities are floored here before their log (models without a separate softmax layer).
_FLOOR = 1e-30


def explain(
    model: keras.Model | str | os.PathLike[str],
    images: Any,
    *,
    method: str = "gradcam",
    classes: Sequence[int] | np.ndarray | None = None,
    batch_size: int = 32,
    patch: int | None = None,
    stride: int | None = None,
    quiet: bool = True,
) -> np.ndarray:
    """Saliency maps ``(n, h, w)`` float32 in ``[0, 1]`` of ``model`` on ``images`` (module docstring).

    Args:
        model: a ``keras.Model`` taking 0-255 images and returning class probabilities (a
            classifier, a TTA or calibrated model, an ensemble), or the path of a ``.keras``
            file or of a run folder.
        images: a ``uint8 (n, h, w, 3)`` array or a :class:`~cellkit.data.Dataset`.
        method: one of :data:`METHODS`.
        classes: the class to explain for each image (default: the model's prediction).
        batch_size: images per batch (Grad-CAM) or occluded copies per batch (occlusion).
        patch, stride: occlusion only: side of the square patch in pixels (default
            ``round(min(h, w) / 6)``) and its step (default half the patch).
        quiet: no progress bar.

    Raises:
        DataError: the images are not of the model's input size, or (Grad-CAM) the model has
            no 4-D feature map or the Keras backend gives no gradients.
        ValueError: a bad argument.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}. Received: method={method!r}")
    if method == "gradcam":
        return grad_cam(model, images, classes, batch_size=batch_size, quiet=quiet)
    return occlusion_sensitivity(model, images, classes, patch=patch, stride=stride, batch_size=batch_size,
                                 quiet=quiet)


def grad_cam(
    model: keras.Model | str | os.PathLike[str],
    images: Any,
    classes: Sequence[int] | np.ndarray | None = None,
    *,
    batch_size: int = 32,
    quiet: bool = True,
) -> np.ndarray:
    """Grad-CAM maps ``(n, h, w)`` in ``[0, 1]``; an ensemble's are its members' maps, weighted and renormalised."""
    model, images, classes = _prepare(model, images, classes, batch_size)
    gradient_function()  # an unsupported backend fails before any work
    members = single_view_members(model)
    total = np.zeros(images.shape[:3], np.float32)
    for member, weight in members:
        pre, post = feature_split(member)
        starts = range(0, len(images), batch_size)
        desc = "grad-cam" if len(members) == 1 else f"grad-cam ({member.name})"
        for s in progress(starts, desc=desc, total=len(starts), unit="batch", quiet=quiet):
            batch = slice(s, s + batch_size)
            features = np.asarray(keras.ops.convert_to_numpy(pre(images[batch].astype(np.float32), training=False)),
                                  np.float32)
            grads = class_score_gradients(post, features, classes[batch])
            cams = np.maximum(np.einsum("bhwc,bc->bhw", features, grads.mean(axis=(1, 2))), 0.0)
            total[batch] += weight * _normalise(_resize(cams, images.shape[1:3]))
    return _normalise(total)


def occlusion_sensitivity(
    model: keras.Model | str | os.PathLike[str],
    images: Any,
    classes: Sequence[int] | np.ndarray | None = None,
    *,
    patch: int | None = None,
    stride: int | None = None,
    batch_size: int = 64,
    quiet: bool = True,
) -> np.ndarray:
    """Occlusion maps ``(n, h, w)`` in ``[0, 1]``: the mean drop of the class probability under a mean-colour patch.

    Each pixel gets the mean drop over the patch positions that cover it (positions every
    ``stride`` pixels, ``stride <= patch``, the last one flush with the border); negative
    drops count as 0.
    """
    model, images, classes = _prepare(model, images, classes, batch_size)
    h, w = images.shape[1:3]
    patch = max(1, round(min(h, w) / 6)) if patch is None else patch
    if isinstance(patch, bool) or not isinstance(patch, (int, np.integer)) or not 1 <= patch <= min(h, w):
        raise ValueError(f"patch must be an int in [1, {min(h, w)}] (the images' smaller side). Received: {patch!r}")
    stride = max(1, patch // 2) if stride is None else stride
    if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or not 1 <= stride <= patch:
        raise ValueError(f"stride must be an int in [1, patch={patch}] (a longer stride leaves pixels that no "
                         f"patch covers). Received: stride={stride!r}")
    members = single_view_members(model)
    rows, cols = _positions(h, patch, stride), _positions(w, patch, stride)
    corners = [(y, x) for y in rows for x in cols]
    coverage = np.zeros((h, w), np.float32)
    for y, x in corners:
        coverage[y : y + patch, x : x + patch] += 1
    out = np.zeros((len(images), h, w), np.float32)
    for i in progress(range(len(images)), desc="occlusion", total=len(images), unit="image", quiet=quiet):
        image = images[i]
        fill = np.round(image.reshape(-1, 3).mean(axis=0)).astype(np.uint8)
        copies = np.repeat(image[None], len(corners) + 1, axis=0)  # copy 0: the image itself
        for j, (y, x) in enumerate(corners, start=1):
            copies[j, y : y + patch, x : x + patch] = fill
        p = sum(weight * predict_proba(member, copies, batch_size=batch_size)[:, classes[i]]
                for member, weight in members)
        heat = np.zeros((h, w), np.float32)
        for j, (y, x) in enumerate(corners, start=1):
            heat[y : y + patch, x : x + patch] += p[0] - p[j]
        out[i] = _normalise(np.maximum(heat / coverage, 0.0)[None])[0]
    return out


def single_view_members(model: keras.Model) -> list[tuple[keras.Model, float]]:
    """The single-view classifiers inside ``model`` and their weights (summing to one).

    A temperature-scaled model gives its inner model, a TTA model its single-view
    classifier, an ensemble its members (weighted as its ``AveragePredictions`` layer weighs
    them, whatever its method); any other model is its own one member.

    Example:
        >>> import keras
        >>> from cellkit.inference.tta import with_tta
        >>> inp = keras.Input((8, 8, 3))
        >>> clf = keras.Model(inp, keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(inp)))
        >>> [(m is clf, w) for m, w in single_view_members(with_tta(clf, "d4"))]
        [(True, 1.0)]
    """
    from cellkit.inference.ensemble import AveragePredictions
    from cellkit.inference.temperature import split_temperature
    from cellkit.inference.tta import TestTimeAugmentation, ViewAverage

    model = _pass_through(model)
    split = split_temperature(model)
    if split is not None:
        return single_view_members(split[0])
    layers = list(getattr(model, "layers", []))
    if not any(isinstance(layer, (TestTimeAugmentation, ViewAverage, AveragePredictions)) for layer in layers):
        return [(model, 1.0)]
    nested = [layer for layer in layers if isinstance(layer, keras.Model)]
    combine = next((layer for layer in layers if isinstance(layer, AveragePredictions)), None)
    weights = list(combine.member_weights) if combine is not None and combine.member_weights else []
    if len(weights) != len(nested):  # no weights, or one member called twice: equal weights
        weights = [1.0] * len(nested)
    total = sum(weights)
    return [(m, w * v / total) for member, v in zip(nested, weights, strict=True)
            for m, w in single_view_members(member)]


def feature_split(model: keras.Model) -> tuple[keras.Model, keras.Model]:
    """``(images -> feature map, feature map -> class scores)``: the two halves Grad-CAM needs.

    The feature map is the 4-D input of the model's last global pooling (or ``Flatten``)
    layer, else the last 4-D output of its layers. The class scores are the logits when the
    model ends in a softmax ``Activation`` layer (as :func:`cellkit.build_classifier`'s
    models do), else the log of the probabilities.

    Raises:
        DataError: ``model`` is not a single-input, single-output functional model with a
            4-D feature map.
    """
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):
        inputs = outputs = None
    if not inputs or not outputs or len(inputs) != 1 or len(outputs) != 1:
        raise DataError(f"Grad-CAM needs a single-input, single-output functional model (expected a model built "
                        f"by cellkit or keras.Model(inputs, outputs); method='occlusion' takes any model). "
                        f"Received: {type(model).__name__} {getattr(model, 'name', '')!r}")
    feature = None
    for layer in reversed(model.layers):
        tensor = _tensor(layer, "input") if isinstance(layer, _POOLING) else None
        if tensor is not None and len(tensor.shape) == 4:
            feature = tensor
            break
    if feature is None:
        for layer in reversed(model.layers):
            tensor = _tensor(layer, "output")
            if tensor is not None and len(tensor.shape) == 4:
                feature = tensor
                break
    if feature is None:
        raise DataError(f"model {model.name!r} has no 4-D feature map (batch, h, w, channels) for Grad-CAM "
                        "(expected a convolutional classifier; method='occlusion' takes any model)")
    last = model.layers[-1]
    scores = outputs[0]
    if (isinstance(last, keras.layers.Activation) and last.get_config().get("activation") == "softmax"
            and _tensor(last, "output") is scores and _tensor(last, "input") is not None):
        scores = _tensor(last, "input")
    else:
        scores = keras.ops.log(keras.ops.maximum(keras.ops.cast(scores, "float32"), _FLOOR))
    return keras.Model(inputs[0], feature), keras.Model(feature, scores)


# -- helpers -----------------------------------------------------------------------------------------


def _prepare(model: Any, images: Any, classes: Any, batch_size: Any) -> tuple[keras.Model, np.ndarray, np.ndarray]:
    """The model (loaded from a path), the checked images and one class index per image."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1. Received: batch_size={batch_size!r}")
    if not isinstance(model, keras.Model):
        from cellkit.inference.saving import load_model

        model = load_model(model)
    images = image_batch(images, "images")
    check_input_size(model, images)
    if classes is None:
        proba = predict_proba(model, images, batch_size=int(batch_size))
        return model, images, np.argmax(proba, axis=1).astype(np.int64) if len(images) else np.zeros(0, np.int64)
    idx = np.asarray(classes)
    try:
        k = int(model.outputs[0].shape[-1])
    except (AttributeError, IndexError, TypeError, ValueError):  # not a functional model
        k = predict_proba(model, images[:1]).shape[1] if len(images) else 0
    if idx.shape != (len(images),) or not np.issubdtype(idx.dtype, np.integer) or (idx.size and (
            idx.min() < 0 or idx.max() >= k)):
        raise ValueError(f"classes must hold one class index in [0, {k}) per image ({len(images)}). "
                         f"Received: classes with shape={idx.shape}, dtype={idx.dtype}")
    return model, images, idx.astype(np.int64)


def _pass_through(model: keras.Model) -> keras.Model:
    """The model inside a wrapper whose only layer is one nested model (name-clash wrappers of tta/temperature)."""
    while True:
        layers = [layer for layer in getattr(model, "layers", []) if not isinstance(layer, keras.layers.InputLayer)]
        if len(layers) != 1 or not isinstance(layers[0], keras.Model):
            return model
        model = layers[0]


def _tensor(layer: keras.layers.Layer, which: str) -> Any:
    """``layer.input`` / ``layer.output`` when it is one tensor, else ``None`` (a layer called several times)."""
    try:
        tensor = getattr(layer, which)
    except (AttributeError, ValueError):
        return None
    return tensor if hasattr(tensor, "shape") else None


def _positions(size: int, patch: int, stride: int) -> list[int]:
    starts = list(range(0, size - patch + 1, stride))
    return starts if starts[-1] == size - patch else [*starts, size - patch]


def _resize(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of ``(n, a, b)`` maps to ``(n, h, w)``."""
    h, w = size
    if maps.shape[1:] == (h, w):
        return maps.astype(np.float32)
    return np.stack([cv2.resize(m.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR) for m in maps]) \
        if len(maps) else np.zeros((0, h, w), np.float32)


def _normalise(maps: np.ndarray) -> np.ndarray:
    """Each map divided by its maximum (an all-zero map stays zero), clipped to ``[0, 1]``."""
    maps = np.nan_to_num(np.asarray(maps, np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    top = maps.reshape(len(maps), -1).max(axis=1) if maps.size else np.zeros(len(maps), np.float32)
    scale = np.where(top > 0, top, 1.0).astype(np.float32)
    return np.clip(maps / scale[:, None, None], 0.0, 1.0)
