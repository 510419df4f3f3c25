"""The Keras port: Lite scaling rules, TF-"same" padding, shapes, arguments, serialisation."""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cellkit_efficientnet_lite import VARIANTS, block_configs, build_efficientnet_lite
from cellkit_efficientnet_lite.architecture import round_filters, same_padding


@pytest.mark.parametrize(
    ("variant", "n_blocks", "stage_widths"),
    [
        ("efficientnet_lite0", 16, [16, 24, 40, 80, 112, 192, 320]),
        ("efficientnet_lite1", 21, [16, 24, 40, 80, 112, 192, 320]),
        ("efficientnet_lite2", 21, [16, 24, 48, 88, 120, 208, 352]),
    ],
)
def test_lite_scaling_rules(variant: str, n_blocks: int, stage_widths: list[int]) -> None:
    blocks = block_configs(variant)
    assert len(blocks) == n_blocks
    assert [b.index for b in blocks] == list(range(n_blocks))
    firsts = [b for b in blocks if b.input_filters != b.output_filters]
    assert [b.output_filters for b in firsts] == stage_widths
    assert blocks[0].input_filters == 32 and blocks[0].expand_ratio == 1  # fixed stem feeds stage 0
    assert sum(b.output_filters == stage_widths[-1] for b in blocks) == 1  # last stage not repeated
    assert sum(b.output_filters == stage_widths[0] for b in blocks) == 1  # nor the first
    assert [b.stride for b in firsts] == [1, 2, 2, 2, 1, 2, 1]
    assert all(b.stride == 1 and b.residual for b in blocks if b not in firsts)


def test_round_filters_matches_the_tf_reference() -> None:
    assert [round_filters(f, 1.1) for f in (16, 24, 40, 80, 112, 192, 320)] == [16, 24, 48, 88, 120, 208, 352]
    assert round_filters(32, 1.4) == 48 and round_filters(10, 0.5) == 8


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "pads"),
    [
        (224, 3, 2, (0, 1)),
        (225, 3, 2, (1, 1)),
        (112, 5, 2, (1, 2)),
        (7, 5, 2, (2, 2)),
        (14, 3, 1, (1, 1)),
        (1, 5, 2, (2, 2)),
    ],
)
def test_same_padding_examples(size: int, kernel: int, stride: int, pads: tuple[int, int]) -> None:
    assert same_padding(size, kernel, stride) == pads


@given(st.integers(1, 400), st.sampled_from([1, 3, 5]), st.sampled_from([1, 2]))
def test_same_padding_gives_tf_output_size(size: int, kernel: int, stride: int) -> None:
    before, after = same_padding(size, kernel, stride)
    assert 0 <= after - before <= 1  # the extra pixel goes at the end, as in TensorFlow
    assert (size + before + after - kernel) // stride + 1 == math.ceil(size / stride)


@pytest.mark.parametrize(
    ("shape", "expected_pads"), [((224, 224), ((0, 1), (0, 1))), ((97, 130), ((1, 1), (0, 1)))]
)
def test_stride_two_layers_pad_explicitly(shape: tuple[int, int], expected_pads) -> None:
    model = build_efficientnet_lite("efficientnet_lite0", (*shape, 3))
    assert tuple(tuple(p) for p in model.get_layer("stem_pad").padding) == expected_pads
    strided = [layer for layer in model.layers if getattr(layer, "strides", (1, 1)) != (1, 1)]
    assert len(strided) == 5 and all(layer.padding == "valid" for layer in strided)
    expected = tuple(math.ceil(s / 32) for s in shape)
    assert model.output.shape == (None, *expected, 1280)


def test_no_squeeze_excite_relu6_and_bn_epsilon() -> None:
    model = build_efficientnet_lite("efficientnet_lite1", (64, 64, 3))
    kinds = {type(layer).__name__ for layer in model.layers}
    assert kinds == {
        "InputLayer",
        "Rescaling",
        "ZeroPadding2D",
        "Conv2D",
        "BatchNormalization",
        "ReLU",
        "DepthwiseConv2D",
        "Add",
    }
    assert all(layer.max_value == 6.0 for layer in model.layers if isinstance(layer, keras.layers.ReLU))
    assert all(
        layer.epsilon == 1e-3 for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)
    )


def test_preprocessing_and_top() -> None:
    model = build_efficientnet_lite("efficientnet_lite0", (32, 48, 3), include_top=True)
    assert model.output.shape == (None, 1000)
    rescale = model.get_layer("preprocess")
    np.testing.assert_allclose(
        np.asarray(rescale(np.array([[[[0.0, 127.0, 255.0]]]], "float32"))), [[[[-127 / 128, 0, 1]]]]
    )


def test_resize_inside_the_model() -> None:
    model = build_efficientnet_lite("efficientnet_lite0", (96, 96, 3), resize_to=224)
    assert model.get_layer("resize").output.shape == (None, 224, 224, 3)
    assert model.output.shape == (None, 7, 7, 1280)
    same = build_efficientnet_lite("efficientnet_lite0", (96, 96, 3), resize_to=(96, 96))
    assert "resize" not in [layer.name for layer in same.layers]


def test_resize_does_not_switch_batch_norm_to_training() -> None:
    # Keras hands Resizing's training=True default on to later layers of a plain model(x) call.
    keras.utils.set_random_seed(2)
    model = build_efficientnet_lite("efficientnet_lite0", (40, 40, 3), resize_to=64, include_top=True)
    x = np.random.default_rng(0).uniform(0, 255, (3, 40, 40, 3)).astype("float32")
    inference = np.asarray(model(x, training=False))
    np.testing.assert_allclose(np.asarray(model(x)), inference, atol=1e-5)
    np.testing.assert_allclose(np.asarray(model(x[:1])), inference[:1], atol=1e-5)
    # ...while training still uses batch statistics (the batch-norm layers do train)
    assert np.abs(np.asarray(model(x, training=True)) - inference).max() > 1e-3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"variant": "efficientnet_lite9"}, "variant must be one of"),
        ({"input_shape": (96, 96, 1)}, r"input_shape must be \(height, width, 3\)"),
        ({"input_shape": (96, 0, 3)}, "input_shape"),
        ({"weights": "noisy-student"}, "weights must be None or 'imagenet'"),
        ({"resize_to": 0}, "resize_to must be a positive int"),
        ({"resize_to": (1, 2, 3)}, "resize_to"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    args = {"variant": "efficientnet_lite0", "input_shape": (64, 64, 3), **kwargs}
    with pytest.raises(ValueError, match=message) as info:
        build_efficientnet_lite(**args)
    assert "Received:" in str(info.value)


def test_default_input_is_the_imagenet_resolution() -> None:
    assert build_efficientnet_lite("efficientnet_lite2").input.shape == (None, 260, 260, 3)
    assert VARIANTS["efficientnet_lite1"].resolution == 240


def test_saves_and_loads_with_safe_mode(tmp_path: Path) -> None:
    keras.utils.set_random_seed(1)
    model = build_efficientnet_lite("efficientnet_lite0", (40, 40, 3), resize_to=48, include_top=True)
    x = np.random.default_rng(0).uniform(0, 255, (2, 40, 40, 3)).astype("float32")
    path = tmp_path / "lite0.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-5)
