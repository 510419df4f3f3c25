"""cellkit's one seed convention: an int seed, a ``numpy.random.Generator`` or ``None``.

Every function of cellkit that draws random numbers with NumPy takes one of these three (the
parameter is ``seed``, ``rng`` or, for the scikit-learn-style detectors, ``random_state``)
and turns it into a generator with :func:`as_generator`, as :func:`numpy.random.default_rng`
does: the same int gives the same draws, a generator is used as it is (its state advances,
so a caller can thread one generator through several calls), ``None`` draws fresh entropy
from the operating system.

Example:
    >>> import numpy as np
    >>> as_generator(7).integers(0, 100, 3).tolist() == np.random.default_rng(7).integers(0, 100, 3).tolist()
    True
    >>> gen = np.random.default_rng(0)
    >>> as_generator(gen) is gen
    True
    >>> try:
    ...     as_generator(1.5, "seed")
    ... except ValueError as exc:
    ...     print(exc)
    `seed` must be an int >= 0, a numpy.random.Generator or None. Received: seed=1.5
"""

from __future__ import annotations

import numpy as np

__all__ = ["SeedLike", "as_generator"]

#: What a ``seed`` / ``rng`` / ``random_state`` parameter of cellkit accepts.
SeedLike = int | np.random.Generator | None


def as_generator(seed: SeedLike, name: str = "rng") -> np.random.Generator:
    """A ``numpy.random.Generator`` from an int seed (``>= 0``), a generator (returned as is) or ``None``.

    ``name`` is the parameter's name in the error message (a ``ValueError`` for anything
    else: a ``bool``, a float, a negative int, a legacy ``RandomState``).
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0):
        return np.random.default_rng(seed)
    raise ValueError(f"`{name}` must be an int >= 0, a numpy.random.Generator or None. Received: {name}={seed!r}")
