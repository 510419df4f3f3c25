"""Hypothesis strategies shared by cellkit's tests: seeds, image batches, label arrays.

One module rather than a copy per test file (issue 19). A test in any folder imports it as
``from strategies import seeds, uint8_images``: pyproject's pytest options put ``tests/`` on
``sys.path`` (``pythonpath = ["tests"]``). A strategy tied to one test file's subject
(``layer_cases`` in ``tests/layers/test_layers.py``, ``phase_strategy`` in
``tests/train/test_recipe.py``, the file bytes of ``tests/data/test_loader_properties.py``)
stays in that file.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

__all__ = [
    "SAMPLE_SIZE",
    "dihedral_ks",
    "group_arrays",
    "label_arrays",
    "sample_indices",
    "seeded_uint8_images",
    "seeds",
    "uint8_images",
]

#: Images in the bundled sample (``cellkit.load("sample")``, the ``sample`` fixture).
SAMPLE_SIZE = 480


def seeds(max_value: int = 2**32 - 1) -> st.SearchStrategy[int]:
    """An int seed in ``[0, max_value]`` (default: any 32-bit seed), as cellkit's ``seed``/``rng`` take."""
    return st.integers(0, max_value)


def sample_indices() -> st.SearchStrategy[int]:
    """The index of one image of the bundled sample."""
    return st.integers(0, SAMPLE_SIZE - 1)


def dihedral_ks(identity: bool = False) -> st.SearchStrategy[int]:
    """An element of the square's symmetry group as ``cellkit.corrupt.overlays.dihedral`` numbers it.

    ``0`` is the identity, drawn only with ``identity=True``; ``1..7`` are the other flips
    and quarter turns.
    """
    return st.integers(0 if identity else 1, 7)


def uint8_images(
    max_images: int = 3, max_side: int = 20, *, min_images: int = 0, min_side: int = 1, channels: int = 3
) -> st.SearchStrategy[np.ndarray]:
    """A ``uint8`` batch ``(n, h, w, channels)`` of any shape within the bounds and any pixels.

    Hypothesis draws (and shrinks) every pixel: for small batches, where an edge case (an
    empty batch, a 1x1 image, saturated pixels) matters more than realistic content.
    """
    shape = st.tuples(
        st.integers(min_images, max_images), st.integers(min_side, max_side), st.integers(min_side, max_side),
        st.just(channels),
    )
    return arrays(np.uint8, shape, elements=st.integers(0, 255))


def seeded_uint8_images(shape: tuple[int, ...], max_seed: int = 2**32 - 1) -> st.SearchStrategy[np.ndarray]:
    """Uniformly random ``uint8`` images of a fixed ``shape``, from a drawn seed (:func:`seeds`).

    Noise images, cheap at any size: for properties that must hold for every picture
    (invariances), where per-pixel drawing would give mostly constant images.
    """
    return seeds(max_seed).map(lambda seed: np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8))


def label_arrays(num_classes: int = 7, min_size: int = 3, max_size: int = 300) -> st.SearchStrategy[np.ndarray]:
    """A 1-D ``int64`` array of class labels in ``[0, num_classes)``; some classes may be absent."""
    return st.lists(st.integers(0, num_classes - 1), min_size=min_size, max_size=max_size).map(
        lambda values: np.array(values, dtype=np.int64)
    )


def group_arrays(max_group: int, size: int = 300) -> st.SearchStrategy[np.ndarray]:
    """A 1-D ``int64`` array of ``size`` group ids in ``[-1, max_group]`` (``-1``: no group).

    Slice it to the length of the labels it goes with.
    """
    return st.lists(st.integers(-1, max_group), min_size=size, max_size=size).map(
        lambda values: np.array(values, dtype=np.int64)
    )
