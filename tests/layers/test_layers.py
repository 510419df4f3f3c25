"""Tests for cellkit.layers (high-pass Keras layers) and cellkit.filters.ops.

Backend-agnostic: the same tests run under ``KERAS_BACKEND=tensorflow`` and
``KERAS_BACKEND=jax``; ``test_backends_give_the_same_numbers`` runs each backend in a
subprocess and compares them. References are ``scipy.ndimage`` with ``mode="mirror"``
(= NumPy's "reflect" = ``cv2.BORDER_REFLECT_101``) and OpenCV.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import textwrap

import cv2
import keras
import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import given, settings
from hypothesis import strategies as st
from keras import ops

from cellkit.filters import ops as hp
from cellkit.filters.kernels import difference_of_gaussians_kernel, laplacian_kernel, sobel_kernels
from cellkit.layers import (
    HIGH_PASS_LAYERS,
    DifferenceOfGaussians,
    HighPassFilter,
    LaplacianFilter,
    LearnableHighPass,
    SobelMagnitude,
    high_pass_layer,
)

BT601 = np.array([0.299, 0.587, 0.114])

#: A small-kernel instance of every layer (hypothesis and serialization use small images).
SMALL = {
    "laplacian": {},
    "sobel": {},
    "dog": {"sigma_low": 0.5, "sigma_high": 1.0},
    "learnable": {"filters": 2, "seed": 3},
}


def _images(shape: tuple[int, ...], seed: int = 0, high: float = 1.0) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape) * high).astype("float32")


def _np(x) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(x))


def _per_channel(fn, images: np.ndarray) -> np.ndarray:
    """Apply a 2-D NumPy filter to every (image, channel) of (n, h, w, c)."""
    x = images.astype(np.float64)
    out = [np.stack([fn(x[i, :, :, c]) for c in range(x.shape[-1])], axis=-1) for i in range(x.shape[0])]
    return np.stack(out)


# --------------------------------------------------------------------------- the border mode


def test_keras_reflect_pad_is_scipy_mirror_and_opencv_reflect_101():
    row = np.array([0.0, 0.0, 1.0, 5.0, 2.0])
    padded = _np(hp.reflect_pad(row.reshape(1, 1, 5, 1), 0, 2))[0, 0, :, 0]
    np.testing.assert_array_equal(padded, [1.0, 0.0, 0.0, 0.0, 1.0, 5.0, 2.0, 5.0, 1.0])
    np.testing.assert_array_equal(padded, np.pad(row, 2, mode="reflect"))
    np.testing.assert_array_equal(
        padded, cv2.copyMakeBorder(row.reshape(1, 5), 0, 0, 2, 2, cv2.BORDER_REFLECT_101)[0]
    )
    # scipy's "mirror" is this border, its "reflect" is not (it repeats the edge pixel)
    kernel = np.array([1.0, -2.0, 1.0])
    ours = np.convolve(padded[1:-1], kernel, mode="valid")  # symmetric kernel: correlation
    np.testing.assert_allclose(ours, ndi.correlate1d(row, kernel, mode="mirror"))
    assert not np.allclose(ours, ndi.correlate1d(row, kernel, mode="reflect"))


# --------------------------------------------------------------------------- numerical agreement


@pytest.mark.parametrize("diagonal", [False, True])
def test_laplacian_matches_scipy_and_opencv(diagonal):
    x = _images((2, 9, 11, 2))
    got = _np(LaplacianFilter(diagonal=diagonal)(x))
    kernel = laplacian_kernel(diagonal)
    np.testing.assert_allclose(
        got, _per_channel(lambda im: ndi.correlate(im, kernel, mode="mirror"), x), atol=1e-5
    )
    if not diagonal:
        np.testing.assert_allclose(got, _per_channel(lambda im: ndi.laplace(im, mode="mirror"), x), atol=1e-5)
        cv = _per_channel(
            lambda im: cv2.Laplacian(im, cv2.CV_64F, ksize=1, borderType=cv2.BORDER_REFLECT_101), x
        )
        np.testing.assert_allclose(got, cv, atol=1e-5)


def test_sobel_magnitude_matches_scipy_and_opencv():
    x = _images((2, 10, 7, 3), seed=1)
    got = _np(SobelMagnitude()(x))
    sp = _per_channel(
        lambda im: np.hypot(ndi.sobel(im, axis=1, mode="mirror"), ndi.sobel(im, axis=0, mode="mirror")), x
    )
    cv = _per_channel(
        lambda im: np.hypot(
            cv2.Sobel(im, cv2.CV_64F, 1, 0, ksize=3, borderType=cv2.BORDER_REFLECT_101),
            cv2.Sobel(im, cv2.CV_64F, 0, 1, ksize=3, borderType=cv2.BORDER_REFLECT_101),
        ),
        x,
    )
    np.testing.assert_allclose(got, sp, atol=1e-5)
    np.testing.assert_allclose(got, cv, atol=1e-5)
    assert got.min() >= 0


@pytest.mark.parametrize(
    ("sigma_low", "sigma_high", "size"), [(1.0, 2.0, None), (0.5, 1.5, None), (1.0, 1.6, 7)]
)
def test_difference_of_gaussians_matches_scipy_gaussian_filters(sigma_low, sigma_high, size):
    x = _images((2, 16, 19, 2), seed=2)
    layer = DifferenceOfGaussians(sigma_low, sigma_high, size=size)
    got = _np(layer(x))
    radius = layer.kernel_size // 2

    def dog(im):  # two Gaussians on the same support, normalised there, mirror border
        low = ndi.gaussian_filter(im, sigma_low, mode="mirror", radius=radius)
        return low - ndi.gaussian_filter(im, sigma_high, mode="mirror", radius=radius)

    np.testing.assert_allclose(got, _per_channel(dog, x), atol=1e-5)
    kernel = difference_of_gaussians_kernel(sigma_low, sigma_high, size)
    np.testing.assert_allclose(
        got, _per_channel(lambda im: ndi.correlate(im, kernel, mode="mirror"), x), atol=1e-5
    )


def test_separable_path_equals_direct_correlation():
    x = _images((2, 15, 14, 3), seed=3)
    kernel = difference_of_gaussians_kernel(1.0, 2.0)
    terms = hp.separable_terms(kernel)
    assert len(terms) == 2
    np.testing.assert_allclose(sum(np.outer(c, r) for c, r in terms), kernel, atol=1e-15)
    direct = hp.correlate(hp.reflect_pad(x, 6), kernel)  # the non-separable path
    np.testing.assert_allclose(_np(hp.filter2d(x, kernel)), _np(direct), atol=1e-6)


def test_luminance_mode_filters_the_bt601_luminance():
    x = _images((2, 8, 9, 3), seed=4, high=255.0)
    luminance = x.astype(np.float64) @ BT601
    np.testing.assert_allclose(_np(hp.rgb_to_luminance(x))[..., 0], luminance, rtol=1e-6)
    got = _np(LaplacianFilter(mode="luminance")(x))
    assert got.shape == (2, 8, 9, 1)
    want = np.stack([ndi.laplace(im, mode="mirror") for im in luminance])[..., None]
    np.testing.assert_allclose(got, want, atol=1e-3)
    gray = x[..., :1]  # one channel is its own luminance
    np.testing.assert_allclose(_np(LaplacianFilter(mode="luminance")(gray)), _np(LaplacianFilter()(gray)))


def test_functions_equal_layers():
    x = _images((2, 16, 16, 3), seed=5)
    np.testing.assert_allclose(_np(hp.laplacian(x, diagonal=True)), _np(LaplacianFilter(diagonal=True)(x)))
    np.testing.assert_allclose(_np(hp.sobel_magnitude(x)), _np(SobelMagnitude()(x)))
    np.testing.assert_allclose(
        _np(hp.difference_of_gaussians(x, 0.8, 1.6)), _np(DifferenceOfGaussians(0.8, 1.6)(x))
    )


def test_learnable_starts_as_the_laplacian():
    x = _images((2, 12, 12, 3), seed=6)
    for kernel_size in (3, 5):
        layer = LearnableHighPass(kernel_size=kernel_size)
        np.testing.assert_allclose(_np(layer(x)), _np(LaplacianFilter()(x)), atol=1e-5)
    two = LearnableHighPass(filters=2, seed=0)
    out = _np(two(x))
    assert out.shape == (2, 12, 12, 6)
    np.testing.assert_allclose(out[..., 0::2], _np(LaplacianFilter()(x)), atol=1e-5)  # channel * 2 + filter
    assert not np.allclose(out[..., 1::2], out[..., 0::2])  # the second filter is perturbed


def test_keep_input_and_scale():
    x = _images((1, 10, 10, 3), seed=7)
    filtered = _np(LaplacianFilter()(x))
    np.testing.assert_allclose(_np(LaplacianFilter(scale=2.5)(x)), 2.5 * filtered, rtol=1e-5, atol=1e-6)
    concat = _np(LaplacianFilter(keep_input="concat", scale=0.5)(x))
    np.testing.assert_array_equal(concat[..., :3], x)
    np.testing.assert_allclose(concat[..., 3:], 0.5 * filtered, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_np(LaplacianFilter(keep_input="add", scale=-1.0)(x)), x - filtered, atol=1e-5)
    lum = _np(LaplacianFilter(mode="luminance")(x))
    np.testing.assert_allclose(
        _np(LaplacianFilter(mode="luminance", keep_input="add")(x)), x + lum, atol=1e-5
    )


def test_inputs_are_not_modified_and_integers_are_accepted():
    x = (_images((1, 8, 8, 3), seed=8) * 255).astype(np.uint8)
    before = x.copy()
    got = _np(SobelMagnitude()(x))
    np.testing.assert_array_equal(x, before)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, _np(SobelMagnitude()(x.astype("float32"))))


# --------------------------------------------------------------------------- constant images


@pytest.mark.parametrize("name", sorted(HIGH_PASS_LAYERS))
@pytest.mark.parametrize("mode", ["per_channel", "luminance"])
@pytest.mark.parametrize("value", [0.7, 200.0])
def test_constant_image_gives_zero_response(name, mode, value):
    kwargs = {"filters": 3, "kernel_size": 5, "seed": 1} if name == "learnable" else {}
    layer = high_pass_layer(name, mode=mode, **kwargs)  # default sigmas for "dog" (13x13 kernel)
    x = np.full((2, 20, 17, 3), value, dtype="float32")
    out = _np(layer(x))
    # float32 rounding of the kernel taps times the value
    assert np.abs(out).max() <= 1e-6 * value * layer.kernel_size**2, np.abs(out).max()


# --------------------------------------------------------------------------- shapes (hypothesis)


@st.composite
def layer_cases(draw):
    name = draw(st.sampled_from(sorted(SMALL)))
    channels = draw(st.integers(1, 4))
    mode = draw(st.sampled_from(["per_channel", "luminance"] if channels in (1, 3) else ["per_channel"]))
    kwargs = dict(SMALL[name], mode=mode)
    if name == "learnable":
        kwargs.update(filters=draw(st.integers(1, 3)), kernel_size=draw(st.sampled_from([3, 5])))
    keep = [None, "concat"]
    if name != "learnable" or kwargs["filters"] == 1:
        keep.append("add")
    kwargs["keep_input"] = draw(st.sampled_from(keep))
    kwargs["scale"] = draw(st.sampled_from([1.0, 0.5, -2.0]))
    shape = (draw(st.integers(1, 3)), draw(st.integers(5, 20)), draw(st.integers(5, 20)), channels)
    return name, kwargs, shape


@settings(max_examples=15)  # each new shape is a new trace under JAX
@given(case=layer_cases())
def test_output_shape_equals_compute_output_shape(case):
    name, kwargs, shape = case
    layer = high_pass_layer(name, **kwargs)
    out = layer(_images(shape))
    assert tuple(out.shape) == layer.compute_output_shape(shape)
    assert tuple(out.shape[:3]) == shape[:3]
    assert bool(np.all(np.isfinite(_np(out))))
    symbolic = layer.compute_output_shape((None, None, None, shape[-1]))
    assert symbolic == (None, None, None, out.shape[-1])


def test_symbolic_and_dynamic_shapes():
    inputs = keras.Input((None, None, 3))
    outputs = LaplacianFilter(keep_input="concat")(inputs)
    assert tuple(outputs.shape) == (None, None, None, 6)
    model = keras.Model(inputs, outputs)
    assert tuple(model(_images((1, 9, 13, 3))).shape) == (1, 9, 13, 6)


# --------------------------------------------------------------------------- gradients and training


def _small_dense() -> keras.layers.Dense:
    """A seeded head with small weights: no saturated softmax, so a zero gradient means a broken layer."""
    return keras.layers.Dense(2, activation="softmax",
                              kernel_initializer=keras.initializers.RandomNormal(stddev=0.01, seed=0))


def _fit(model: keras.Model, x: np.ndarray, y: np.ndarray) -> None:
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=2, epochs=1, verbose=0, shuffle=False)  # 3 steps


def test_learnable_trains_and_stays_zero_sum():
    x = _images((6, 12, 12, 3), seed=9)
    y = np.array([0, 1, 0, 1, 0, 1])
    inputs = keras.Input((12, 12, 3))
    layer = LearnableHighPass(filters=2, seed=0)
    h = keras.layers.GlobalAveragePooling2D()(ops.abs(layer(inputs)))
    model = keras.Model(inputs, _small_dense()(h))
    before = _np(layer.kernel).copy()
    _fit(model, x, y)
    after = _np(layer.kernel)
    assert np.all(np.isfinite(after))
    assert np.abs(after - before).max() > 1e-6  # gradients reached the kernel
    effective = _np(layer.effective_kernel)
    assert effective.shape == (3, 3, 3, 2)
    np.testing.assert_allclose(effective.sum(axis=(0, 1)), 0.0, atol=1e-6)
    constant = np.full((1, 12, 12, 3), 0.3, "float32")
    assert np.abs(_np(layer(constant))).max() < 1e-5


@pytest.mark.parametrize("name", sorted(HIGH_PASS_LAYERS))
def test_gradients_flow_through_to_earlier_layers(name):
    # flat regions included: the Sobel magnitude's gradient must be 0 there, not NaN
    x = _images((6, 10, 10, 3), seed=10)
    x[:3] = 0.5
    y = np.array([0, 1, 0, 1, 0, 1])
    inputs = keras.Input((10, 10, 3))
    first = keras.layers.Conv2D(3, 1, kernel_initializer="ones")
    h = high_pass_layer(name, **SMALL[name])(first(inputs))
    h = keras.layers.GlobalAveragePooling2D()(ops.square(h))
    model = keras.Model(inputs, _small_dense()(h))
    before = _np(first.kernel).copy()
    _fit(model, x, y)
    after = _np(first.kernel)
    assert np.all(np.isfinite(after))
    assert np.abs(after - before).max() > 0


# --------------------------------------------------------------------------- serialization


@pytest.mark.parametrize("name", sorted(HIGH_PASS_LAYERS))
def test_saved_model_loads_back_with_safe_mode(name, tmp_path):
    kwargs = dict(SMALL[name], mode="luminance", keep_input="concat", scale=0.5, name="hp")
    inputs = keras.Input((12, 12, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 1)(high_pass_layer(name, **kwargs)(inputs)))
    if name == "learnable":  # make the saved kernel differ from the initial one
        model.get_layer("hp").kernel.assign(np.random.default_rng(0).normal(size=(3, 3, 1, 2)))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    layer = loaded.get_layer("hp")
    assert type(layer) is HIGH_PASS_LAYERS[name]
    assert layer.get_config() == model.get_layer("hp").get_config()
    x = _images((2, 12, 12, 3), seed=11)
    np.testing.assert_array_equal(_np(loaded(x)), _np(model(x)))


@pytest.mark.parametrize("name", sorted(HIGH_PASS_LAYERS))
def test_config_round_trip(name):
    layer = high_pass_layer(name, **SMALL[name], keep_input="add" if name != "learnable" else None)
    config = layer.get_config()
    json.dumps(config)
    again = type(layer).from_config(config)
    assert again.get_config() == config
    registered = keras.saving.get_registered_object(f"cellkit>{type(layer).__name__}")
    assert registered is type(layer)


# --------------------------------------------------------------------------- factory and errors


def test_factory_names_and_arguments():
    assert set(HIGH_PASS_LAYERS) == {"laplacian", "sobel", "dog", "learnable"}
    for name, cls in HIGH_PASS_LAYERS.items():
        layer = high_pass_layer(name, name=f"my_{name}", scale=2.0)
        assert type(layer) is cls and isinstance(layer, HighPassFilter)
        assert layer.name == f"my_{name}" and layer.scale == 2.0
    assert high_pass_layer("dog", sigma_low=0.5, sigma_high=3.0).kernel_size == 19
    with pytest.raises(TypeError):
        HIGH_PASS_LAYERS["x"] = LaplacianFilter  # read-only


@pytest.mark.parametrize(
    ("name", "expected"),
    [("laplace", "Did you mean 'laplacian'"), ("Sobel", "Did you mean 'sobel'"), ("gabor", "Available")],
)
def test_factory_unknown_name(name, expected):
    with pytest.raises(ValueError, match=expected) as info:
        high_pass_layer(name)
    assert str(info.value).endswith(f"Received: name={name!r}")


@pytest.mark.parametrize(
    ("factory", "argument"),
    [
        (lambda: LaplacianFilter(mode="gray"), "mode"),
        (lambda: LaplacianFilter(keep_input="stack"), "keep_input"),
        (lambda: LaplacianFilter(scale="2"), "scale"),
        (lambda: LaplacianFilter(scale=math.nan), "scale"),
        (lambda: LaplacianFilter(scale=True), "scale"),
        (lambda: LaplacianFilter(diagonal="yes"), "diagonal"),
        (lambda: DifferenceOfGaussians(2.0, 1.0), "sigma_high"),
        (lambda: DifferenceOfGaussians(-1.0, 1.0), "sigma_low"),
        (lambda: DifferenceOfGaussians(1.0, 2.0, size=8), "size"),
        (lambda: DifferenceOfGaussians(1.0, 2.0, size=7.0), "size"),
        (lambda: LearnableHighPass(filters=0), "filters"),
        (lambda: LearnableHighPass(kernel_size=4), "kernel_size"),
        (lambda: LearnableHighPass(kernel_size=1), "kernel_size"),
        (lambda: LearnableHighPass(seed=-1), "seed"),
        (lambda: LearnableHighPass(filters=2, keep_input="add"), "filters"),
    ],
)
def test_bad_arguments(factory, argument):
    with pytest.raises(ValueError, match=f"Received: .*{argument}="):
        factory()


@pytest.mark.parametrize(
    ("layer", "shape", "match"),
    [
        (LaplacianFilter(mode="luminance"), (1, 8, 8, 4), "1 or 3"),
        (DifferenceOfGaussians(), (1, 6, 30, 3), "must be > 6"),
        (LearnableHighPass(filters=2, mode="luminance", keep_input="concat"), (1, 8, 8, 2), "1 or 3"),
    ],
)
def test_bad_input_shapes(layer, shape, match):
    with pytest.raises(ValueError, match=match) as info:
        layer(np.zeros(shape, "float32"))
    assert "Received: input_shape=" in str(info.value)


def test_bad_input_rank_and_unbuilt_kernel():
    with pytest.raises(ValueError, match=r"channels-last .* Received: input_shape=\(8, 8, 3\)"):
        LaplacianFilter()(np.zeros((8, 8, 3), "float32"))
    with pytest.raises(ValueError, match="Received: input_shape="):
        LaplacianFilter().compute_output_shape((8, 8, 3))
    built = LaplacianFilter()
    built(np.zeros((1, 8, 8, 3), "float32"))
    with pytest.raises(ValueError):  # Keras's input spec, once built
        built(np.zeros((1, 8, 8, 2), "float32"))
    with pytest.raises(ValueError, match="Received: x.shape="):
        hp.laplacian(np.zeros((8, 8, 3), "float32"))
    with pytest.raises(ValueError, match="not built"):
        _ = LearnableHighPass().effective_kernel


# --------------------------------------------------------------------------- mixed precision


@pytest.mark.parametrize("name", sorted(HIGH_PASS_LAYERS))
def test_mixed_float16_policy(name):
    x = _images((2, 16, 16, 3), seed=12, high=255.0)  # [0, 255]: Sobel squares would overflow float16
    reference = _np(high_pass_layer(name, **SMALL[name])(x))
    layer = high_pass_layer(name, **SMALL[name], dtype="mixed_float16")
    out = layer(x)
    assert keras.backend.standardize_dtype(out.dtype) == "float16"
    got = _np(out).astype(np.float32)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, reference, rtol=1e-2, atol=2e-3 * np.abs(reference).max())
    if name == "learnable":
        assert keras.backend.standardize_dtype(layer.kernel.dtype) == "float32"


def test_mixed_float16_training_step():
    x = _images((6, 12, 12, 3), seed=13)
    y = np.array([0, 1, 0, 1, 0, 1])
    inputs = keras.Input((12, 12, 3))
    layer = LearnableHighPass(dtype="mixed_float16", keep_input="concat")
    h = keras.layers.GlobalAveragePooling2D(dtype="mixed_float16")(layer(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax", dtype="float32")(h))
    _fit(model, x, y)
    assert np.all(np.isfinite(_np(layer.kernel)))
    np.testing.assert_allclose(_np(layer.effective_kernel).sum(axis=(0, 1)), 0.0, atol=1e-6)


# --------------------------------------------------------------------------- across backends

_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import keras
    from keras import ops
    from cellkit.layers import high_pass_layer

    x = (np.random.default_rng(0).random((2, 14, 11, 3)) * 255).astype("float32")
    cases = {
        "laplacian": {"diagonal": True},
        "sobel": {},
        "dog": {},
        "dog_lum": {"mode": "luminance", "sigma_low": 0.7, "sigma_high": 1.4},
        "learnable": {"filters": 2, "kernel_size": 5, "seed": 4, "keep_input": "concat"},
    }
    out = {"backend": np.array(keras.backend.backend())}
    for key, kwargs in cases.items():
        layer = high_pass_layer(key.split("_")[0], **kwargs)
        out[key] = np.asarray(ops.convert_to_numpy(layer(x)))
    np.savez(sys.argv[1], **out)
    """
)


def _run_backends(backends: list[str], tmp_path) -> dict[str, dict[str, np.ndarray]]:
    """Run ``_SCRIPT`` under each backend, in parallel subprocesses (Keras picks its backend at import)."""
    script = tmp_path / "layers_script.py"
    script.write_text(_SCRIPT)
    running = {}
    for backend in backends:
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "JAX_PLATFORMS": "cpu"}
        dest = tmp_path / f"{backend}.npz"
        cmd = [sys.executable, str(script), str(dest)]
        running[backend] = (
            dest,
            subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
        )
    results = {}
    for backend, (dest, proc) in running.items():
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{backend}: {stderr[-3000:]}"
        with np.load(dest, allow_pickle=False) as data:
            results[backend] = {key: data[key] for key in data.files}
    return results


@pytest.mark.own_backends
def test_backends_give_the_same_numbers(tmp_path):
    backends = ["tensorflow"] + (["jax"] if importlib.util.find_spec("jax") else [])
    if len(backends) < 2:
        pytest.skip("jax is not installed: nothing to compare TensorFlow with")
    results = _run_backends(backends, tmp_path)
    first, second = (results[b] for b in backends)
    assert str(first["backend"]) == backends[0] and str(second["backend"]) == backends[1]
    for key in ("laplacian", "sobel", "dog", "dog_lum", "learnable"):
        assert first[key].shape == second[key].shape, key
        # inputs in [0, 255]: float32 rounding of sums of a few hundred
        np.testing.assert_allclose(first[key], second[key], rtol=1e-5, atol=1e-3, err_msg=key)
    # and both agree with scipy
    x = (np.random.default_rng(0).random((2, 14, 11, 3)) * 255).astype("float32")
    want = _per_channel(lambda im: ndi.correlate(im, laplacian_kernel(True), mode="mirror"), x)
    np.testing.assert_allclose(first["laplacian"], want, atol=1e-3)
    kx, ky = sobel_kernels()
    want = _per_channel(
        lambda im: np.hypot(ndi.correlate(im, kx, mode="mirror"), ndi.correlate(im, ky, mode="mirror")), x
    )
    np.testing.assert_allclose(second["sobel"], want, rtol=1e-5, atol=1e-3)
