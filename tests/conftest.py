"""Shared fixtures and hypothesis profiles for cellkit's unit tests."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import cellkit
from cellkit.data import Dataset

settings.register_profile(
    "default", deadline=None, max_examples=25, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci", deadline=None, max_examples=25, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("thorough", deadline=None, max_examples=300)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "default"))

#: Where the real PBC data lives in a development checkout (absent in CI).
PBC96 = Path(os.environ.get("CELLKIT_PBC96", Path(__file__).resolve().parents[2] / "shared" / "data" / "pbc96"))


@pytest.fixture(scope="session")
def sample() -> Dataset:
    """The bundled sample: 480 images, 60 per class."""
    return cellkit.load("sample")


@pytest.fixture(scope="session")
def pbc96_path() -> Path:
    """The real pbc96 folder; tests that need it are skipped where it is absent (CI)."""
    if not PBC96.is_dir():
        pytest.skip(f"needs the real PBC data at {PBC96} (set CELLKIT_PBC96); not shipped with the repository")
    return PBC96


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
