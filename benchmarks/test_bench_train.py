"""Training: cellkit's pipeline overhead, and (``--full``) the report's accuracy within a time budget.

1. **Pipeline overhead** (quick and full mode). The seed report's baseline CNN
   (``cellkit.zoo`` ``"baseline"`` with the report's head) trained by cellkit's pipeline --
   :class:`cellkit.train.ArrayBatches` over the uint8 images (batch gather, one-hot labels,
   balanced class weights as sample weights, per-epoch seeded shuffle), the training-model
   wrapper, cellkit's callbacks (:class:`~cellkit.train.BestCheckpoint` in memory,
   :class:`~cellkit.train.HistoryRecorder`), compiled by :func:`cellkit.train.runner.compile_phase`
   -- against plain ``keras.Model.fit`` on the same pre-gathered uint8 arrays, one-hot
   labels and sample weights (same architecture and seed, same optimizer and schedule,
   same batch size, ``shuffle=True``). No augmentation, so both do the same arithmetic.

   Method: after one untimed warm-up epoch each (tracing), rounds alternate one epoch of the
   reference and one epoch of cellkit (each a ``fit(epochs=1)`` call, so both pay the same
   per-call setup). The asserted ratio is the median over rounds of cellkit / reference
   **process CPU time** (8 rounds in quick mode, 20 in full): the work each pipeline costs.
   Wall-clock time is reported too, but on a shared machine it measures the neighbours: on
   the busy 2-core development machine the same epoch took 1.7 s to 5.3 s of wall time
   (paired wall ratios 0.97-1.55) while its CPU time stayed within 1.29-1.49 s (CPU ratio
   1.02 over 10 rounds). Bound: 1.10 (the issue's target)
   plus ``SLACK`` for timer noise: 0.05 in quick mode (few rounds on a shared CI machine),
   0 in full mode.

2. **Reproductions** (``--full`` only; need ``../shared/data/pbc96``): with the report's
   stratified 72/8/20 split (seed 0), the ``compact`` preset (compact ResNet from scratch)
   must reach >= 96 % test accuracy with training limited to 30 minutes, and the
   ``report-baseline`` preset (the report's baseline CNN) must land in the report's Table 1
   range (86-94 %) with training limited to 15 minutes. The limits are budgets given to
   :func:`cellkit.train.train` (``time_limit``: no epoch starts that would end past them),
   not timed assertions. Runs are kept in ``benchmarks/.runs/<preset>`` and reused by the
   other full benchmarks (``--retrain`` trains again; see the ``trained_run`` fixture).

Both write ``training.md`` (time per epoch, images/s, accuracy, hardware)::

    python -m pytest benchmarks/test_bench_train.py                # quick: about a minute
    python -m pytest benchmarks/test_bench_train.py --full         # writes docs/results/training.md
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np
import pytest

import cellkit
from cellkit._io import atomic_write_text
from cellkit.train import ArrayBatches, BestCheckpoint, HistoryRecorder, Phase, build_training_model
from cellkit.train.optim import balanced_class_weights
from cellkit.train.phases import compile_phase

BATCH = 32
SLACK_QUICK = 0.05
OVERHEAD_BOUND = 1.10
#: (preset, minimum test accuracy, maximum test accuracy, training budget in minutes)
REPRODUCTIONS = {
    "compact": ("compact", 0.96, 1.0, 30),
    "baseline": ("report-baseline", 0.86, 0.94, 15),
}

_ROWS: dict[str, dict[str, str]] = {"overhead": {}, "reproduction": {}}


@pytest.fixture(scope="module")
def report(results_dir: Path, hardware: str, full_mode: bool, record_rows) -> Iterator[None]:
    """Write ``training.md`` once every benchmark of this module has run (rows of earlier runs kept)."""
    yield
    overhead = record_rows("training", "overhead", _ROWS["overhead"])
    reproduction = record_rows("training", "reproduction", _ROWS["reproduction"])
    lines = [
        "# Training: pipeline overhead and reproductions",
        "",
        f"Hardware of this run: {hardware}. Rows kept from earlier runs were measured on the hardware "
        "their own run recorded (the same 2-core machine unless said otherwise).",
        f"Mode: {'full' if full_mode else 'quick'}. Regenerate: "
        f"`python -m pytest benchmarks/test_bench_train.py{' --full' if full_mode else ''}`.",
        "",
    ]
    if overhead:
        lines += [
            "## cellkit's pipeline vs plain `keras.Model.fit` (report's baseline CNN, batch 32)",
            "",
            "Median epoch time of each over alternating rounds; ratios = median over rounds of cellkit / plain. "
            "CPU = process CPU time (the asserted ratio), wall = elapsed time (context).",
            "",
            "| images | image size | rounds | plain CPU s/epoch | cellkit CPU s/epoch | CPU ratio | plain wall s "
            "| cellkit wall s | cellkit img/s (wall) | wall ratio | bound (CPU) |",
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            *overhead.values(),
            "",
        ]
    if reproduction:
        lines += [
            "## Reproductions on pbc96 (the report's split: stratified 72/8/20, seed 0)",
            "",
            "| recipe | backbone | budget min | epochs | s/epoch | train img/s | training min | test accuracy "
            "| F1 (weighted) | target |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
            *reproduction.values(),
            "",
        ]
    atomic_write_text(results_dir / "training.md", "\n".join(lines))


def _baseline(input_shape: tuple[int, int, int]) -> keras.Model:
    from cellkit.zoo import build_classifier

    keras.utils.set_random_seed(0)
    return build_classifier("baseline", num_classes=8, input_shape=input_shape)


def test_pipeline_overhead_vs_plain_fit(report, full_mode: bool, pbc96_or_sample, benchmark) -> None:
    data, n_images = pbc96_or_sample
    rng = np.random.default_rng(0)
    idx = np.sort(rng.choice(len(data), size=min(n_images, len(data)), replace=False))
    labels = data.labels
    weights = balanced_class_weights(labels[idx], 8)
    shape = tuple(data.images.shape[1:])
    phase = Phase("scratch", epochs=1, optimizer="adamw", learning_rate=1e-3, schedule="constant")
    steps = -(-idx.size // BATCH)

    # cellkit: the pipeline of cellkit.train.train
    clf = _baseline(shape)
    trainer = build_training_model(clf, "none")
    compile_phase(trainer, phase, steps)
    batches = ArrayBatches(data.images, labels, indices=idx, batch_size=BATCH, num_classes=8, shuffle=True,
                           seed=0, class_weight=weights)
    callbacks = [BestCheckpoint(clf, None, monitor="loss"), HistoryRecorder(None)]

    # reference: plain fit on pre-gathered arrays
    plain = _baseline(shape)
    compile_phase(plain, phase, steps)
    x = data.images[idx]
    y = np.eye(8, dtype=np.float32)[labels[idx]]
    sw = weights[labels[idx]].astype(np.float32)

    def cellkit_epoch() -> None:
        trainer.fit(batches, epochs=1, shuffle=False, verbose=0, callbacks=callbacks)

    def plain_epoch() -> None:
        plain.fit(x, y, sample_weight=sw, batch_size=BATCH, epochs=1, shuffle=True, verbose=0)

    cellkit_epoch()  # warm-up: tracing
    plain_epoch()
    cpu: dict[str, list[float]] = {"cellkit": [], "plain": []}
    wall: dict[str, list[float]] = {"cellkit": [], "plain": []}

    def timed(name: str) -> None:
        fn = cellkit_epoch if name == "cellkit" else plain_epoch
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        fn()
        cpu[name].append(time.process_time() - start_cpu)
        wall[name].append(time.perf_counter() - start_wall)

    rounds = 20 if full_mode else 8
    benchmark.pedantic(timed, args=("cellkit",), setup=lambda: timed("plain"), rounds=rounds, iterations=1,
                       warmup_rounds=0)
    ours, ref = np.array(cpu["cellkit"]), np.array(cpu["plain"])
    ratio = float(np.median(ours / ref))
    wall_ours, wall_ref = np.array(wall["cellkit"]), np.array(wall["plain"])
    wall_ratio = float(np.median(wall_ours / wall_ref))
    bound = OVERHEAD_BOUND + (0.0 if full_mode else SLACK_QUICK)
    _ROWS["overhead"][f"{idx.size}x{shape[0]}"] = (
        f"| {idx.size} | {shape[0]}x{shape[1]} | {rounds} | {np.median(ref):.2f} | {np.median(ours):.2f} "
        f"| {ratio:.3f} | {np.median(wall_ref):.2f} | {np.median(wall_ours):.2f} "
        f"| {idx.size / np.median(wall_ours):.0f} | {wall_ratio:.3f} | {bound:.2f} |"
    )
    assert ratio <= bound, f"cellkit's pipeline takes {ratio:.3f}x plain fit (bound {bound})"


@pytest.fixture(scope="module")
def pbc96_or_sample(full_mode: bool, request: pytest.FixtureRequest):
    """Quick: 320 images of the bundled sample. Full: 3,000 pbc96 images when present."""
    if full_mode:
        path = request.getfixturevalue("pbc96_path")
        return cellkit.load(path), 3000
    return cellkit.load("sample"), 320


@pytest.mark.full
@pytest.mark.parametrize("name", list(REPRODUCTIONS))
def test_reproduction_within_budget(report, name: str, pbc96_path: Path, trained_run) -> None:
    from cellkit.train import load_preset

    preset, low, high, minutes = REPRODUCTIONS[name]
    data = cellkit.load(pbc96_path)
    recipe = load_preset(preset).replace(seed=0, val=0.08, test=0.2)
    result = trained_run(preset, data, recipe, minutes)
    epochs = len(next(iter(result.history.values()), []))
    training_s = float(result.info["training_seconds"])
    per_epoch = training_s / max(epochs, 1)
    acc = result.metrics["accuracy"]
    plain = result.metrics.get("without_tta")
    acc_cell = f"{acc:.4f}" if plain is None else (
        f"{acc:.4f} ({result.metrics['tta']} TTA; {plain['accuracy']:.4f} without)")
    _ROWS["reproduction"][preset] = (
        f"| {preset} | {result.recipe.backbone} | {minutes} | {epochs} | {per_epoch:.0f} "
        f"| {result.split.train.size / per_epoch:.0f} | {training_s / 60:.1f} | {acc_cell} "
        f"| {result.metrics['f1_weighted']:.4f} | {low:.0%}-{high:.0%} (total run {result.info['seconds'] / 60:.1f} min) |"
    )
    assert low <= acc <= high, f"{preset}: test accuracy {acc:.4f} outside [{low}, {high}]"
