"""Fixtures for ``pytest benchmarks``: quick mode by default, ``--full`` for the reproductions.

Quick mode fits CI (a few minutes on 2 cores) and writes its tables to a scratch folder;
``--full`` runs the full reproductions and writes to ``docs/results/``. See README.md here.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PBC96 = Path(os.environ.get("CELLKIT_PBC96", REPO.parent / "shared" / "data" / "pbc96"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--full", action="store_true", default=False, help="run the full reproductions")
    parser.addoption(
        "--results-dir", default=None, help="where tables are written (default: scratch in quick mode, docs/results in full)"
    )


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
