"""Appearance clusters and cluster-wise folds for the detector's cross-fitting.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = np.concatenate([rng.normal(0, 1, (50, 4)), rng.normal(8, 1, (50, 4))])
    >>> folds = cluster_folds(clusters(x, rng, n_clusters=2), rng)
    >>> sorted(np.bincount(folds).tolist())
    [50, 50]
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.cluster.vq

__all__ = ["cluster_folds", "clusters"]


def clusters(x: np.ndarray, rng: np.random.Generator, n_clusters: int = 16, dims: int = 32) -> np.ndarray:
    """k-means cluster labels of feature rows ``x`` on their leading principal components."""
    n = x.shape[0]
    z = (x - x.mean(axis=0)) / np.maximum(x.std(axis=0), 1e-6)
    sample = z[rng.permutation(n)[: min(n, 4000)]]
    _, _, vt = np.linalg.svd(sample, full_matrices=False)
    proj = (z @ vt[:dims].T).astype(np.float64)
    k = int(min(n_clusters, max(2, n // 20)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "One of the clusters is empty": harmless here
        _, labels = scipy.cluster.vq.kmeans2(proj, k, minit="++", seed=rng)
    return labels.astype(np.int64)


def cluster_folds(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Two folds made of whole clusters, largest clusters first into the smaller fold."""
    sizes = np.bincount(labels)
    cluster_fold = np.zeros(len(sizes), np.int64)
    load = [0, 0]
    for c in np.argsort(-sizes, kind="stable"):
        f = int(np.argmin(load))
        cluster_fold[c] = f
        load[f] += int(sizes[c])
    if min(load) == 0:  # a single cluster: fall back to a random split
        return rng.permutation(len(labels)) % 2
    return cluster_fold[labels]
