"""cellkit._random: one seed convention (an int, a Generator or None) and one conversion."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import cellkit
from cellkit._random import as_generator
from cellkit.augment.mix import mix_batch
from cellkit.corrupt import overlay_bank
from cellkit.corrupt.color import random_filter_gains
from cellkit.corrupt.suite import corrupt
from cellkit.data.split import stratified_kfold, stratified_split

SRC = Path(cellkit.__file__).resolve().parent


@pytest.mark.parametrize("seed", [0, 7, np.int64(7), 2**63])
def test_an_int_seed_gives_default_rngs_draws(seed):
    assert as_generator(seed).integers(0, 2**31, 5).tolist() == np.random.default_rng(seed).integers(0, 2**31, 5).tolist()


def test_a_generator_is_used_as_it_is_and_none_draws_fresh_entropy():
    gen = np.random.default_rng(0)
    assert as_generator(gen) is gen
    assert isinstance(as_generator(None), np.random.Generator)
    assert as_generator(None).integers(0, 2**62) != as_generator(None).integers(0, 2**62)


@pytest.mark.parametrize("bad", [True, 1.5, -1, "0", [1, 2], np.random.RandomState(0)])
def test_anything_else_is_refused_naming_the_parameter(bad):
    with pytest.raises(ValueError, match=r"^`random_state` must be an int >= 0, a numpy.random.Generator or None\. "
                       r"Received: random_state="):
        as_generator(bad, "random_state")


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda seed: stratified_split([0, 1] * 10, seed=seed), "seed"),
        (lambda seed: stratified_kfold([0, 1] * 10, n_splits=2, seed=seed), "seed"),
        (lambda seed: corrupt(np.zeros((1, 8, 8, 3), np.uint8), "hue_shift", 3, seed=seed), "seed"),
        (lambda seed: random_filter_gains(2, rng=seed), "rng"),
        (lambda seed: overlay_bank("drawn", 1, size=(16, 16), rng=seed), "rng"),
        (lambda seed: mix_batch(np.zeros((2, 4, 4, 3), np.uint8), np.eye(2), "mixup", rng=seed), "rng"),
    ],
)
def test_cellkit_functions_share_the_convention(call, name):
    gen = np.random.default_rng(3)
    call(gen)  # a generator is accepted wherever a seed is
    with pytest.raises(ValueError, match=rf"`{name}` must be an int >= 0.*Received: {name}=1\.5"):
        call(1.5)


def test_no_module_converts_a_seed_by_hand():
    """``isinstance(x, np.random.Generator)`` belongs to ``as_generator`` alone."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "_random.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isinstance"
                and len(node.args) == 2 and ast.unparse(node.args[1]).endswith("random.Generator")
            ):
                found.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert found == [], "use cellkit._random.as_generator"
