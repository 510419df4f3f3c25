"""Training-step cost of :class:`cellkit.layers.FusedBatchNormalization` against Keras' ``BatchNormalization``.

The compact ResNet classifier of the zoo (13 batch-norm layers, every layer trainable, as
the ``compact`` and ``robust`` recipes train it from scratch), batch 32 of 96x96x3, in
mixed bfloat16 where the CPU computes it (cellkit's training precision there; float32
elsewhere), Lion: the model as the zoo builds it (fused batch norm) against the same model
cloned with ``keras.layers.BatchNormalization`` in place of every fused layer, the same
weights. ``train_on_batch`` steps, paired (the ``paired_steps`` fixture); the ratio is
the median over rounds of fused / Keras steps run back to back.

Bounds (before ``SLACK``): on TensorFlow, where the fused kernel runs, :data:`TF_BOUND`;
on other backends the layer is Keras' own, so the ratio must stay near 1
(:data:`OTHER_BOUND`). Quick mode writes ``batch_norm.md`` to a scratch folder,
``--full`` (more rounds) to ``docs/results/batch_norm.md``::

    python -m pytest benchmarks/test_bench_batch_norm.py --full
    KERAS_BACKEND=jax python -m pytest benchmarks/test_bench_batch_norm.py
"""

from __future__ import annotations

from collections.abc import Iterator

import keras
import numpy as np
import pytest

from cellkit.layers import FusedBatchNormalization
from cellkit.train.devices import precision_policy
from cellkit.zoo import build_classifier

BATCH = 32
SLACK = 0.1
#: Upper bound on time(fused) / time(Keras) on TensorFlow.
TF_BOUND = 0.9
#: Upper bound on other backends (the same layer both sides).
OTHER_BOUND = 1.0

_ROWS: dict[str, str] = {}


def _with_keras_batch_norm(model: keras.Model) -> keras.Model:
    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        if isinstance(layer, FusedBatchNormalization):
            return keras.layers.BatchNormalization.from_config(layer.get_config())
        return layer.__class__.from_config(layer.get_config())

    twin = keras.models.clone_model(model, clone_function=clone, recursive=True)
    twin.set_weights(model.get_weights())
    return twin


@pytest.fixture(scope="module")
def report(write_ratio_table) -> Iterator[None]:
    yield
    if _ROWS:
        write_ratio_table(
            "batch_norm",
            "FusedBatchNormalization vs Keras BatchNormalization: training step of the compact ResNet",
            f"batch {BATCH}x96x96x3, every layer trainable, Lion, `train_on_batch`; times are median steps, the "
            "ratio the median over rounds of fused / Keras steps run back to back.",
            ["| backend | precision | batch-norm layers | Keras ms | fused ms | ratio | bound (+0.1 slack) |",
             "|---|---|---:|---:|---:|---:|---:|"],
            list(_ROWS.values()),
        )


def test_fused_batch_norm_speeds_up_the_compact_resnet_step(benchmark, paired_steps, report, full_mode) -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (BATCH, 96, 96, 3)).astype("float32")
    y = rng.integers(0, 8, BATCH)
    with precision_policy("bfloat16") as precision:
        keras.utils.set_random_seed(0)
        fused = build_classifier("compact_resnet", 8, (96, 96, 3))
        plain = _with_keras_batch_norm(fused)
        for model in (fused, plain):
            model.compile(optimizer=keras.optimizers.Lion(1e-4), loss="sparse_categorical_crossentropy")
    layers = [la for la in fused._flatten_layers() if isinstance(la, FusedBatchNormalization)]
    assert layers and not any(isinstance(la, FusedBatchNormalization) for la in plain._flatten_layers())
    np.testing.assert_allclose(  # the same network: equal predictions before training
        np.asarray(fused.predict_on_batch(x), "float32"), np.asarray(plain.predict_on_batch(x), "float32"), atol=1e-2
    )
    got = paired_steps(
        benchmark, lambda: fused.train_on_batch(x, y), lambda: plain.train_on_batch(x, y), 20 if full_mode else 6
    )
    backend = keras.backend.backend()
    bound = TF_BOUND if backend == "tensorflow" else OTHER_BOUND
    _ROWS[backend] = (
        f"| {backend} | {precision} | {len(layers)} | {got['reference'] * 1e3:.1f} | {got['candidate'] * 1e3:.1f} "
        f"| {got['ratio']:.2f} | {bound:.2f} |"
    )
    assert got["ratio"] <= bound + SLACK, f"fused batch norm: {got['ratio']:.2f}x Keras' step (bound {bound} + {SLACK})"
