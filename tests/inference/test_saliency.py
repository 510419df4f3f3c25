"""Saliency maps (``cellkit.inference.saliency``): Grad-CAM and occlusion, through every wrapper, on every backend.

The property tests use a classifier whose weights are set, not fitted: a 1x1 convolution
measures how red each pixel is, the left half of the image is all it looks at (the right
half is cropped and zero-padded back), and the class is "red" when the mean redness is high.
Its answer comes from one known place, so a map must point there. Runs on whatever
``KERAS_BACKEND`` is set; ``test_backends_give_the_same_maps`` also runs JAX in a fresh
interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import cellkit
from cellkit.errors import DataError
from cellkit.inference.ensemble import build_ensemble
from cellkit.inference.saliency import (
    METHODS,
    explain,
    feature_split,
    grad_cam,
    occlusion_sensitivity,
    single_view_members,
)
from cellkit.inference.saving import save_model
from cellkit.inference.temperature import with_temperature
from cellkit.inference.tta import with_tta
from cellkit.zoo import build_classifier, list_backbones
from saliency_toys import left_half_red_model

SIZE = 32
HALF = SIZE // 2
#: Where the red blob of an informative image is: rows and columns (inside the left half).
BLOB = (slice(12, 20), slice(4, 12))
#: A second blob in the right half, which the model does not see.
DISTRACTOR = (slice(4, 12), slice(22, 30))


def red_images(n: int, *, distractor: bool = False, seed: int = 0) -> np.ndarray:
    """Grey noise (R = G = B) with a red blob at :data:`BLOB` (and one at :data:`DISTRACTOR`)."""
    rng = np.random.default_rng(seed)
    grey = rng.integers(60, 200, (n, SIZE, SIZE, 1))
    images = np.repeat(grey, 3, axis=3).astype(np.uint8)
    for where in (BLOB, DISTRACTOR) if distractor else (BLOB,):
        images[:, where[0], where[1]] = [220, 40, 40]
    return images


@pytest.fixture(scope="module")
def model() -> keras.Model:
    return left_half_red_model()


def _inside(maps: np.ndarray, where: tuple[slice, slice]) -> np.ndarray:
    mask = np.zeros(maps.shape[1:], bool)
    mask[where] = True
    return maps[:, mask].mean(axis=1), maps[:, ~mask].mean(axis=1)


def test_the_synthetic_model_answers_from_the_left_half_only(model):
    p = model.predict(np.concatenate([red_images(2), red_images(2, distractor=True),
                                      np.flip(red_images(2), axis=2)]), verbose=0)
    assert (p[:4, 1] > 0.99).all()  # a blob on the left: red, with or without the distractor
    assert (p[4:, 0] > 0.9).all()  # the same blob mirrored to the right half: not seen


@pytest.mark.parametrize("method", METHODS)
def test_maps_have_the_images_shape_and_lie_in_0_1(model, method):
    images = np.concatenate([red_images(3, distractor=True), np.zeros((1, SIZE, SIZE, 3), np.uint8)])
    maps = explain(model, images, method=method, batch_size=2)
    assert maps.shape == (4, SIZE, SIZE) and maps.dtype == np.float32
    assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1
    assert np.allclose(maps[:3].max(axis=(1, 2)), 1.0)  # each informative map reaches 1 somewhere


def test_grad_cam_highlights_the_half_the_class_depends_on(model):
    maps = grad_cam(model, red_images(4, distractor=True))
    left, right = maps[:, :, :HALF].mean(axis=(1, 2)), maps[:, :, HALF:].mean(axis=(1, 2))
    assert (left > 0.05).all() and (right < 1e-6).all()  # the distractor on the right gets nothing
    blob, elsewhere = _inside(maps, BLOB)
    assert (blob > 3 * elsewhere).all()  # and on the left, the blob itself stands out


def test_grad_cam_of_a_pooled_linear_head_is_its_class_activation_map(model):
    """With global average pooling and a linear head, Grad-CAM is the feature map itself (Zhou et al.'s CAM)."""
    images = red_images(2, seed=3)
    pre, post = feature_split(model)
    assert post.output.shape[-1] == 2 and "logits" in [layer.name for layer in post.layers]  # logits, not softmax
    features = keras.ops.convert_to_numpy(pre(images.astype("float32")))[..., 0]
    import cv2

    expected = np.stack([cv2.resize(f, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR) for f in features])
    expected /= expected.max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(grad_cam(model, images), expected, atol=1e-5)


def test_occlusion_drops_where_the_evidence_is(model):
    maps = occlusion_sensitivity(model, red_images(3, distractor=True), patch=6, stride=2)
    blob, elsewhere = _inside(maps, BLOB)
    assert (blob > 0.5).all() and (blob > 4 * elsewhere).all()
    right, _ = _inside(maps, DISTRACTOR)
    assert (right < 1e-6).all()  # covering what the model never sees changes nothing


def test_occlusion_takes_any_patch_and_stride_and_covers_every_pixel(model):
    images = red_images(1, distractor=True)
    for patch, stride in ((1, 1), (5, 3), (7, 7), (SIZE, 1)):
        maps = occlusion_sensitivity(model, images, patch=patch, stride=stride)
        assert maps.shape == (1, SIZE, SIZE) and 0 <= maps.min() and maps.max() <= 1
    with pytest.raises(ValueError, match=r"stride must be an int in \[1, patch=1\]"):
        occlusion_sensitivity(model, images, patch=1, stride=7)  # pixels between the patches: refused
    # one patch over everything (one blob: the image's mean colour is no longer red enough)
    whole = occlusion_sensitivity(model, red_images(1), patch=SIZE)
    assert np.allclose(whole, 1.0)  # the whole image matters equally


def test_wrappers_are_explained_through_to_the_single_view_classifier(model):
    images = red_images(3, distractor=True)
    classes = np.array([1, 1, 0])
    wrapped = {
        "tta": with_tta(model, "d4+color"),
        "temperature": with_temperature(model, 2.5),
        "ensemble": build_ensemble([model, left_half_red_model()], tta="flips"),
        "calibrated ensemble": with_temperature(build_ensemble([model, left_half_red_model()]), 0.5),
    }
    for method in METHODS:
        plain = explain(model, images, method=method, classes=classes, patch=6)
        for name, other in wrapped.items():
            np.testing.assert_allclose(explain(other, images, method=method, classes=classes, patch=6), plain,
                                       atol=1e-5, err_msg=f"{name} {method}")
    assert [(m is model, w) for m, w in single_view_members(wrapped["tta"])] == [(True, 1.0)]


def test_ensemble_maps_are_the_members_maps_weighted(model):
    other = build_classifier("baseline", num_classes=2, input_shape=(SIZE, SIZE, 3))
    ens = build_ensemble([model, other], method="weighted", weights=[3, 1])
    assert [w for _, w in single_view_members(ens)] == [0.75, 0.25]
    images = red_images(2, distractor=True, seed=5)
    classes = np.array([1, 0])
    a, b = grad_cam(model, images, classes), grad_cam(other, images, classes)
    mixed = 0.75 * a + 0.25 * b
    expected = mixed / np.where(mixed.max(axis=(1, 2), keepdims=True) > 0, mixed.max(axis=(1, 2), keepdims=True), 1)
    np.testing.assert_allclose(grad_cam(ens, images, classes), expected, atol=1e-5)


@pytest.mark.parametrize("backbone", ["baseline", "network2", "compact_resnet"])
def test_every_method_runs_on_zoo_classifiers(backbone, tmp_path):
    model = build_classifier(backbone, num_classes=3, input_shape=(SIZE, SIZE, 3), high_pass="laplacian")
    path = save_model(model, tmp_path / "m.keras")
    images = red_images(3, distractor=True)
    for method in METHODS:
        maps = explain(path, images, method=method, patch=8, stride=8)
        assert maps.shape == (3, SIZE, SIZE) and np.isfinite(maps).all() and 0 <= maps.min() and maps.max() <= 1


@pytest.mark.slow
@pytest.mark.parametrize("backbone", sorted(list_backbones()))
def test_grad_cam_runs_on_every_backbone_of_the_zoo(backbone):
    spec = cellkit.get_backbone(backbone)
    side = max(SIZE, spec.min_input_size)
    model = build_classifier(backbone, num_classes=3, input_shape=(side, side, 3))
    maps = grad_cam(model, np.random.default_rng(0).integers(0, 256, (2, side, side, 3), dtype=np.uint8))
    assert maps.shape == (2, side, side) and np.isfinite(maps).all() and 0 <= maps.min() and maps.max() <= 1


def test_the_class_explained_is_the_prediction_unless_given(model):
    images = red_images(2)
    assert np.allclose(grad_cam(model, images), grad_cam(model, images, [1, 1]))
    assert np.allclose(grad_cam(model, images, [0, 0]), 0.0)  # nothing on the image raises "not red"


def test_bad_arguments_are_refused(model):
    images = red_images(2)
    with pytest.raises(ValueError, match="method must be one of"):
        explain(model, images, method="lime")
    with pytest.raises(ValueError, match=r"classes must hold one class index in \[0, 2\)"):
        explain(model, images, classes=[0, 2])
    with pytest.raises(ValueError, match="classes must hold"):
        explain(model, images, classes=[0])
    with pytest.raises(ValueError, match="patch must be an int in"):
        occlusion_sensitivity(model, images, patch=SIZE + 1)
    with pytest.raises(ValueError, match=r"stride must be an int in \[1, patch="):
        occlusion_sensitivity(model, images, stride=0)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        explain(model, images, batch_size=0)
    with pytest.raises(ValueError, match=r"uint8 array \(n, h, w, 3\)"):
        explain(model, images.astype(np.float32))
    with pytest.raises(DataError, match="expects 32x32"):
        explain(model, np.zeros((1, 48, 48, 3), np.uint8))
    with pytest.raises(DataError, match="no such model"):
        explain("no_such_model.keras", images)


def test_a_model_that_is_not_functional_is_refused_for_grad_cam_only():
    class Subclassed(keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.pool = keras.layers.GlobalAveragePooling2D()
            self.dense = keras.layers.Dense(2, activation="softmax")

        def call(self, x):  # noqa: ANN001, ANN201
            return self.dense(self.pool(x))

    sub = Subclassed()
    images = red_images(2)
    sub.predict(images, verbose=0)
    with pytest.raises(DataError, match="single-input, single-output functional model"):
        grad_cam(sub, images)
    assert occlusion_sensitivity(sub, images, patch=8).shape == (2, SIZE, SIZE)


_OTHER_BACKEND = """
    import json, sys
    import keras, numpy as np
    import cellkit
    from cellkit.inference.saliency import explain

    folder = sys.argv[1]
    images = np.load(f"{folder}/images.npy")
    out = {"backend": keras.backend.backend()}
    for name in ("plain", "ensemble"):
        model = cellkit.load_model(f"{folder}/{name}.keras")
        for method in ("gradcam", "occlusion"):
            np.save(f"{folder}/{name}_{method}_{out['backend']}.npy", explain(model, images, method=method, patch=6))
    print(json.dumps(out))
"""


@pytest.mark.own_backends
@pytest.mark.parametrize("backend", ["jax"])
def test_backends_give_the_same_maps(backend, model, tmp_path):
    """The same saved models explained in a fresh interpreter on another backend give the same maps."""
    pytest.importorskip(backend)
    images = red_images(3, distractor=True, seed=1)
    np.save(tmp_path / "images.npy", images)
    ensemble = build_ensemble([model, left_half_red_model()], tta="flips")
    save_model(model, tmp_path / "plain.keras")
    save_model(ensemble, tmp_path / "ensemble.keras")
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(_OTHER_BACKEND), str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"backend": backend}
    for name, m in (("plain", model), ("ensemble", ensemble)):
        for method in METHODS:
            other = np.load(tmp_path / f"{name}_{method}_{backend}.npy")
            assert other.max() > 0.5, (name, method)  # not vacuous: the maps do point somewhere
            np.testing.assert_allclose(other, explain(m, images, method=method, patch=6), atol=1e-4,
                                       err_msg=f"{name} {method}")
