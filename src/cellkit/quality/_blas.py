"""Run NumPy/SciPy linear algebra on one BLAS thread (the detector's small matrices).

Example:
    >>> import numpy as np
    >>> with one_blas_thread():
    ...     float(np.ones((2, 2)) @ np.ones(2) @ np.ones(2))
    4.0
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
from collections.abc import Iterator
from pathlib import Path

__all__ = ["one_blas_thread"]


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Best effort: run the enclosed code with a single BLAS thread, then restore.

    The classifier's matrices are small: on 2 cores, OpenBLAS threads cost more in
    synchronisation than they save (the fit on pbc96 takes about half the time in one
    thread), and one thread makes the fit's float sums, hence the fitted model, the same
    on every machine. Uses ``threadpoolctl`` when installed, else the thread setters of
    the OpenBLAS builds that NumPy and SciPy wheels ship; does nothing otherwise.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
    if threadpool_limits is not None:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
        return
    restore = []
    for package, suffix in (("numpy", "64_"), ("scipy", "")):
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            continue
        libs = Path(spec.origin).parent.parent / f"{package}.libs"
        for path in sorted(libs.glob("libscipy_openblas*.so*")):
            try:
                lib = ctypes.CDLL(str(path))  # already loaded: the same library instance
                get = getattr(lib, f"scipy_openblas_get_num_threads{suffix}")
                put = getattr(lib, f"scipy_openblas_set_num_threads{suffix}")
            except (OSError, AttributeError):
                continue
            restore.append((put, int(get())))
            put(1)
    try:
        yield
    finally:
        for put, threads in restore:
            put(threads)
