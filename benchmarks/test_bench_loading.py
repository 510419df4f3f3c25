"""Reading a class-folder dataset: images/s, and peak memory bounded by the batch.

cellkit's loader (threaded decoding, truncation checks, RGB conversion) against a plain
per-file ``cv2.imread`` loop reading the same files in the same run; and the peak traced
memory of ``iter_batches`` (one batch decoded at a time) against ``load`` (whole dataset).
Quick mode: the bundled sample (480 images); ``--full``: all of pbc96 (14,528 images).
Writes ``results_dir / "loading.md"``.
"""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import cv2
import pytest

from cellkit._io import atomic_write_text
from cellkit.data import index_folder, iter_batches, load, sample_path

BATCH = 256


@pytest.fixture(scope="module")
def folder(full_mode: bool, request: pytest.FixtureRequest) -> Path:
    return request.getfixturevalue("pbc96_path") if full_mode else sample_path()


def _peak(fn) -> int:  # noqa: ANN001
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_loading_speed_and_bounded_memory(folder: Path, results_dir: Path, hardware: str, full_mode: bool,
                                          benchmark) -> None:
    files = index_folder(folder).files
    n = len(files)
    load(folder)  # warm the file cache for both sides
    t = time.perf_counter()
    for f in files:
        cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB)
    loop_s = time.perf_counter() - t
    dataset = benchmark.pedantic(load, args=(folder,), rounds=3, iterations=1)
    cellkit_s = benchmark.stats.stats.median
    peak_load = _peak(lambda: load(folder))
    peak_batches = _peak(lambda: sum(len(b) for b in iter_batches(folder, BATCH)))
    image_bytes = dataset.images.nbytes
    lines = [
        "# Loading a class-folder dataset",
        "",
        f"Data: {n} JPEG files ({'pbc96' if full_mode else 'the bundled sample'}), file cache warm.",
        f"Hardware: {hardware}.",
        f"Command: `python -m pytest benchmarks/test_bench_loading.py{' --full' if full_mode else ''}`.",
        "",
        "| reader | seconds | images/s |",
        "|---|---:|---:|",
        f"| `cellkit.load` (median of 3) | {cellkit_s:.2f} | {n / cellkit_s:,.0f} |",
        f"| per-file `cv2.imread` loop | {loop_s:.2f} | {n / loop_s:,.0f} |",
        "",
        "| peak traced memory | MB |",
        "|---|---:|",
        f"| decoded images of the whole dataset | {image_bytes / 2**20:.1f} |",
        f"| `load` (whole dataset) | {peak_load / 2**20:.1f} |",
        f"| `iter_batches(batch_size={BATCH})` | {peak_batches / 2**20:.1f} |",
    ]
    atomic_write_text(results_dir / "loading.md", "\n".join(lines) + "\n")
    # cellkit also checks every file (signature, truncation, channels, size); on 480 files the
    # thread start-up weighs more, hence a looser bound in quick mode
    assert n / cellkit_s >= (0.8 if full_mode else 0.5) * n / loop_s
    batch_bytes = BATCH * image_bytes / n
    assert peak_batches < 4 * batch_bytes + 8 * 2**20  # bounded by the batch, not the dataset
    if full_mode:
        assert peak_batches < image_bytes / 10
