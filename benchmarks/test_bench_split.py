"""Speed of stratified splitting and of one-graph ensembles, against same-run references.

- ``stratified_split`` on 1,000,000 labels vs a straightforward per-class shuffle loop
  (``np.flatnonzero(labels == c)``, shuffle, slice: one pass over the labels per class).
  Bounds: at most 2x the loop with 8 classes (cellkit also does exact controlled rounding
  and validation), and faster than the loop with 1,000 classes (one sort instead of 1,000
  passes).
- ``build_ensemble`` of 3 small CNNs on 96x96 images vs running the members one after
  another and averaging in NumPy. Bound: the one-graph ensemble takes at most 1.3x.

Both write rows to ``results_dir / "split_ensemble.md"``.

    python -m pytest benchmarks/test_bench_split.py          # quick (CI)
    python -m pytest benchmarks/test_bench_split.py --full   # more images for the ensemble
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from cellkit._io import atomic_write_text
from cellkit.data.split import stratified_split

N_LABELS = 1_000_000
SPLIT_BOUND_8 = 2.0  # cellkit / per-class loop, 8 classes
SPLIT_BOUND_1000 = 1.0  # cellkit / per-class loop, 1,000 classes: must be faster
ENSEMBLE_BOUND = 1.3  # one-graph ensemble / members one after another


def _best_of(fn: Callable[[], object], repeats: int) -> float:
    """Minimum wall time of ``repeats`` calls after one untimed warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def per_class_loop_split(labels: np.ndarray, val: float = 0.08, test: float = 0.2, seed: int = 0):
    """The straightforward reference: for each class, shuffle its indices and slice."""
    rng = np.random.default_rng(seed)
    parts: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        n_test = round(test * idx.size)
        n_val = round(val * idx.size)
        parts[2].append(idx[:n_test])
        parts[1].append(idx[n_test : n_test + n_val])
        parts[0].append(idx[n_test + n_val :])
    return tuple(np.sort(np.concatenate(p)) for p in parts)


@pytest.fixture(scope="module")
def table(results_dir: Path, hardware: str) -> Iterator[list[str]]:
    rows: list[str] = []
    yield rows
    text = [
        "# Splitting and ensemble inference speed",
        "",
        f"Hardware: {hardware}.",
        "Command: `python -m pytest benchmarks/test_bench_split.py` (best of several runs after a warm-up).",
        "",
        "| benchmark | cellkit (s) | reference (s) | ratio | bound |",
        "|---|---:|---:|---:|---:|",
        *rows,
        "",
    ]
    atomic_write_text(results_dir / "split_ensemble.md", "\n".join(text))


@pytest.mark.parametrize(("n_classes", "bound"), [(8, SPLIT_BOUND_8), (1000, SPLIT_BOUND_1000)])
def test_stratified_split_vs_per_class_loop(benchmark, table, n_classes, bound):
    rng = np.random.default_rng(0)
    weights = rng.uniform(0.5, 2.0, n_classes)
    labels = rng.choice(n_classes, size=N_LABELS, p=weights / weights.sum())
    ours = _best_of(lambda: stratified_split(labels, seed=1), repeats=5)
    ref = _best_of(lambda: per_class_loop_split(labels, seed=1), repeats=3 if n_classes > 100 else 5)
    benchmark.pedantic(stratified_split, args=(labels,), kwargs={"seed": 1}, rounds=3, warmup_rounds=1)
    split = stratified_split(labels, seed=1)
    assert split.n == N_LABELS
    ratio = ours / ref
    table.append(
        f"| `stratified_split`, {N_LABELS:,} labels, {n_classes} classes, vs per-class shuffle loop "
        f"| {ours:.3f} | {ref:.3f} | {ratio:.2f} | <= {bound} |"
    )
    assert ratio <= bound, f"stratified_split took {ratio:.2f}x the per-class loop (bound {bound})"


def test_stratified_split_with_groups(table):
    """Groups are placed with a loop over groups: recorded against the ungrouped split (no bound)."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 8, N_LABELS)
    groups = np.full(N_LABELS, -1, dtype=np.int64)
    groups[: N_LABELS // 10] = rng.integers(0, N_LABELS // 40, N_LABELS // 10)  # ~25k groups of ~4
    plain = _best_of(lambda: stratified_split(labels, seed=1), repeats=3)
    grouped = _best_of(lambda: stratified_split(labels, seed=1, groups=groups), repeats=3)
    table.append(
        f"| `stratified_split` with groups ({N_LABELS // 10:,} grouped labels, ~{N_LABELS // 40:,} groups) "
        f"vs without | {grouped:.3f} | {plain:.3f} | {grouped / plain:.2f} | recorded |"
    )
    split = stratified_split(labels, seed=1, groups=groups)
    where = np.empty(N_LABELS, dtype=np.int8)
    for i, part in enumerate((split.train, split.val, split.test)):
        where[part] = i
    grouped_idx = np.flatnonzero(groups >= 0)
    order = np.argsort(groups[grouped_idx], kind="stable")
    g, w = groups[grouped_idx][order], where[grouped_idx][order]
    same_group = g[1:] == g[:-1]
    assert np.all(w[1:][same_group] == w[:-1][same_group])


def _member(seed: int):
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inp = keras.Input((96, 96, 3))
    x = layers.Rescaling(1 / 255)(inp)
    for filters in (8, 16, 32):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D()(x)
    x = layers.GlobalAveragePooling2D()(x)
    out = layers.Dense(8, activation="softmax")(x)
    return keras.Model(inp, out, name=f"member_{seed}")


@pytest.mark.parametrize("tta", [False, "flips"])
def test_ensemble_vs_members_one_after_another(benchmark, table, full_mode, tta):
    from cellkit.inference.ensemble import average_predictions, build_ensemble

    n = 1024 if full_mode else 256
    images = np.random.default_rng(0).integers(0, 256, (n, 96, 96, 3)).astype(np.float32)
    members = [_member(s) for s in range(3)]
    ens = build_ensemble(members, tta=tta)
    batch = 64

    if tta:
        views = [images, images[:, :, ::-1], images[:, ::-1], images[:, ::-1, ::-1]]

        def sequential():
            return average_predictions(
                [np.mean([m.predict(v, batch_size=batch, verbose=0) for v in views], axis=0) for m in members]
            )
    else:

        def sequential():
            return average_predictions([m.predict(images, batch_size=batch, verbose=0) for m in members])

    def combined():
        return ens.predict(images, batch_size=batch, verbose=0)

    np.testing.assert_allclose(combined(), sequential(), atol=1e-5)
    ours = _best_of(combined, repeats=3)
    ref = _best_of(sequential, repeats=3)
    benchmark.pedantic(combined, rounds=2, warmup_rounds=0)
    ratio = ours / ref
    what = "flip TTA (4 views)" if tta else "no TTA"
    table.append(
        f"| `build_ensemble` of 3 small CNNs, {n} images 96x96, {what}, vs members one after another "
        f"| {ours:.3f} | {ref:.3f} | {ratio:.2f} | <= {ENSEMBLE_BOUND} |"
    )
    assert ratio <= ENSEMBLE_BOUND, f"ensemble took {ratio:.2f}x the members run one after another"
