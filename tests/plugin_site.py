"""Install a plugin folder of this repository for a test, as ``pip install`` would.

The plugin is built into a wheel with pip (offline, no build isolation: hatchling comes with
the test extras) from a copy of its folder, and the pure-Python wheel is unpacked into a fresh
folder that a test puts on ``sys.path``; cellkit then finds the plugin through its entry point.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest


def install_plugin(plugin: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build ``plugin`` (a folder with a pyproject.toml) and unpack its wheel; return the folder."""
    if not plugin.is_dir():
        pytest.skip(f"{plugin.name} is not in this checkout (installed from an sdist?)")
    source = tmp_path_factory.mktemp(f"{plugin.name}-src") / plugin.name
    shutil.copytree(plugin, source, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    wheels = tmp_path_factory.mktemp(f"{plugin.name}-wheel")
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q"]
    subprocess.run([*pip, "-w", str(wheels), str(source)], check=True)
    (wheel,) = wheels.glob("*.whl")
    site = tmp_path_factory.mktemp(f"{plugin.name}-site")
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    return site
