"""Fixtures for ``pytest benchmarks``: quick mode by default, ``--full`` for the reproductions.

Quick mode fits CI (a few minutes on 2 cores) and writes its tables to a scratch folder;
``--full`` runs the full reproductions and writes to ``docs/results/``. See README.md here.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
PBC96 = Path(os.environ.get("CELLKIT_PBC96", REPO.parent / "shared" / "data" / "pbc96"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--full", action="store_true", default=False, help="run the full reproductions")
    parser.addoption(
        "--results-dir", default=None, help="where tables are written (default: scratch in quick mode, docs/results in full)"
    )
    parser.addoption(
        "--runs-dir", default=None,
        help="where full-mode training runs are kept and reused (default: benchmarks/.runs; scratch in quick mode)",
    )
    parser.addoption("--retrain", action="store_true", default=False, help="train again even when a kept run matches")
    parser.addoption(
        "--reuse-only", action="store_true", default=False,
        help="never train: a test whose kept run does not match fails (regenerate tables from kept runs only)",
    )
    parser.addoption(
        "--table2-weights", default="auto", choices=("auto", "imagenet", "none"),
        help="Table 2's report rows: ImageNet transfer, or from scratch (auto: imagenet when the files are cached)",
    )
    parser.addoption("--table2-minutes", default=15.0, type=float, help="training budget of each Table 2 report row")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "full: only runs with --full (long reproductions)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--full"):
        return
    skip = pytest.mark.skip(reason="full reproduction: run with `pytest benchmarks --full`")
    for item in items:
        if "full" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def full_mode(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--full"))


@pytest.fixture(scope="session")
def results_dir(request: pytest.FixtureRequest, full_mode: bool, tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = request.config.getoption("--results-dir")
    if chosen:
        path = Path(chosen)
    elif full_mode:
        path = REPO / "docs" / "results"
    else:
        path = tmp_path_factory.mktemp("benchmark-results")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def pbc96_path() -> Path:
    if not PBC96.is_dir():
        pytest.skip(f"needs the real PBC data at {PBC96} (set CELLKIT_PBC96)")
    return PBC96


@pytest.fixture(scope="session")
def hardware() -> str:
    """One line describing the machine, for the tables."""
    import keras

    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
        f"Python {platform.python_version()}, Keras {keras.__version__} ({keras.backend.backend()} backend)"
    )


def _merge_rows(sidecar: Path, section: str, rows: dict[str, str]) -> dict[str, str]:
    from cellkit._io import atomic_write_json

    record: dict[str, dict[str, str]] = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    merged = dict(record.get(section, {}))
    merged.update(rows)
    if rows:
        record[section] = merged
        atomic_write_json(sidecar, record)
    return merged


@pytest.fixture(scope="session")
def record_rows(results_dir: Path):
    """``record_rows(table, section, rows) -> all rows``: keep table rows across partial runs.

    A full reproduction takes tens of minutes, so maintainers rerun one row at a time
    (``-k``). Rows are stored by key in ``<table>.json`` beside the Markdown table: a run
    replaces the rows it measured and keeps the others, and the table is rendered from the
    merged rows, so a partial run never drops a recorded figure.
    """

    def record(table: str, section: str, rows: dict[str, str]) -> dict[str, str]:
        return _merge_rows(results_dir / f"{table}.json", section, rows)

    return record


def _paired_steps(benchmark, candidate, reference, rounds: int, context=None) -> dict[str, float]:  # noqa: ANN001
    times: dict[str, list[float]] = {"candidate": [], "reference": [], "context": []}
    steps = {"candidate": candidate, "reference": reference, "context": context}
    for step in steps.values():  # warm-up: tracing / compilation
        if step is not None:
            step()

    def timed(name: str) -> None:
        start = time.perf_counter()
        steps[name]()
        times[name].append(time.perf_counter() - start)

    def setup() -> None:
        if context is not None:
            timed("context")
        timed("reference")

    benchmark.pedantic(timed, args=("candidate",), setup=setup, rounds=rounds, iterations=1, warmup_rounds=0)
    ref, cand = np.array(times["reference"]), np.array(times["candidate"])
    return {
        "reference": float(np.median(ref)),
        "candidate": float(np.median(cand)),
        "context": float(np.median(times["context"])) if context is not None else float("nan"),
        "ratio": float(np.median(cand / ref)),
    }


@pytest.fixture(scope="session")
def paired_steps():
    """``paired_steps(benchmark, candidate, reference, rounds, context=None) -> dict``: a speed ratio that holds on a busy machine.

    ``candidate``, ``reference`` (and ``context``) are argument-free callables, each run once
    untimed first (tracing / compilation). Then every round runs ``context``, ``reference``
    and, timed by pytest-benchmark, ``candidate``, back to back: steps a few milliseconds
    apart see the same load from other processes, so the median over rounds of candidate /
    reference (``ratio``) holds where the step times themselves vary severalfold. Also
    returns the median step of each (seconds; ``context`` is nan when not given).
    """
    return _paired_steps


@pytest.fixture(scope="session")
def write_ratio_table(results_dir: Path, hardware: str, full_mode: bool):
    """``write_ratio_table(name, title, method, header, rows)``: write ``<name>.md``, a table of paired ratios.

    ``method`` says what was timed (after the mode); ``header`` is the Markdown header row
    and its separator; ``rows`` the table rows. The page names the hardware, the mode and
    the command that regenerates it (``benchmarks/test_bench_<name>.py``).
    """

    def write(name: str, title: str, method: str, header: list[str], rows: list[str]) -> None:
        from cellkit._io import atomic_write_text

        lines = [
            f"# {title}",
            "",
            f"Hardware: {hardware}.",
            f"Mode: {'full' if full_mode else 'quick'}; {method}",
            f"Regenerate: `python -m pytest benchmarks/test_bench_{name}.py --full` (set `KERAS_BACKEND` for "
            "another backend).",
            "",
            *header,
            *rows,
            "",
        ]
        atomic_write_text(results_dir / f"{name}.md", "\n".join(lines))

    return write


@pytest.fixture(scope="session")
def runs_dir(request: pytest.FixtureRequest, full_mode: bool, tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = request.config.getoption("--runs-dir")
    if chosen:
        path = Path(chosen)
    elif full_mode:
        path = REPO / "benchmarks" / ".runs"
    else:
        path = tmp_path_factory.mktemp("benchmark-runs")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _reusable(folder: Path, recipe, data, seconds: float | None, split=None):  # noqa: ANN001, ANN202
    """The finished run in ``folder`` if it is this recipe on this data (and split), backend and budget.

    Runs that recorded their augmentation ops (``run.json``) must also have trained with the
    ops the recipe's policy has today: a policy is a name, and its ops may have changed since.
    """
    import keras

    from cellkit.augment import describe_policy
    from cellkit.errors import CellkitError
    from cellkit.train import load_run

    if not (folder / "run.json").is_file():
        return None
    try:
        run = load_run(folder)
    except (CellkitError, OSError, ValueError):
        return None
    info = run.info
    ops = describe_policy(recipe.augmentation)
    same = (
        run.status == "complete"
        and run.recipe == recipe
        and info.get("time_limit_seconds") == seconds
        and info.get("data", {}).get("source") == data.source
        and info.get("data", {}).get("images") == len(data)
        and info.get("environment", {}).get("backend") == keras.backend.backend()
        and (split is None or run.split == split)
        and info.get("augmentation", ops) == ops
    )
    return run if same else None


@pytest.fixture(scope="session")
def trained_run(runs_dir: Path, request: pytest.FixtureRequest):
    """``trained_run(name, data, recipe, minutes=None, split=None) -> TrainResult``.

    Full reproductions train for tens of minutes, and several tables use the same run (the
    compact ResNet is a Table 2 ensemble member, the light-recipe row of the robustness
    table and the training benchmark's reproduction). A run is kept in
    ``runs_dir / name`` and reused when its ``run.json`` shows a complete run of the same
    resolved recipe, time budget, data (source and size), Keras backend and augmentation ops; ``--retrain``
    trains again. The figures reported are always those the run recorded itself
    (``run.json``, ``history.csv``, ``metrics.json``). ``--reuse-only`` never trains: a test whose
    kept run does not match fails instead.
    """
    retrain = request.config.getoption("--retrain")
    reuse_only = request.config.getoption("--reuse-only")

    def run(name: str, data, recipe, minutes: float | None = None, split=None):  # noqa: ANN001, ANN202
        from cellkit.train import train

        recipe = recipe.resolved()
        seconds = None if minutes is None else minutes * 60
        folder = runs_dir / name
        kept = None if retrain else _reusable(folder, recipe, data, seconds, split)
        if kept is not None:
            return kept
        if reuse_only:
            pytest.fail(f"--reuse-only: no kept run in {folder} matches {name}'s recipe, data, budget and backend")
        return train(data, recipe, folder, overwrite=True, quiet=True, time_limit=seconds, split=split)

    return run
