"""Fixtures of the plugin's tests: a private weights cache, and skips for optional packages."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

if importlib.util.find_spec("cellkit_efficientnet_lite") is None:  # a checkout, not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from cellkit_efficientnet_lite import PACKAGES, checkpoint_path  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def weights_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every test converts into a session-private cache, never the user's ``~/.cache/cellkit``."""
    path = tmp_path_factory.mktemp("cellkit-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CELLKIT_CACHE_DIR", str(path))
        yield path


def require_checkpoint(variant: str) -> Path:
    """The installed checkpoint of ``variant``, or skip saying what to install."""
    path = checkpoint_path(variant)
    if path is None:
        pytest.skip(f"needs the ImageNet checkpoint: {PACKAGES[variant].pip_install}")
    return path


@pytest.fixture(scope="session")
def torch():  # noqa: ANN201 - the torch module
    return pytest.importorskip(
        "torch", reason="comparing with torch needs it (pip install torch==2.13.0)", exc_type=ImportError
    )
