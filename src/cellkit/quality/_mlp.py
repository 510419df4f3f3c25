"""A one-hidden-layer network trained by L-BFGS (NumPy + SciPy): the detector's classifier.

Example:
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(200, 3)).astype(np.float32)
    >>> y = (x[:, 0] > 0).astype(np.float32)
    >>> net = MLP(hidden=4, l2=1.0, max_iter=50, seed=0).fit(x, y, np.ones(200))
    >>> bool(((net.logit(x) > 0) == (y > 0)).mean() > 0.9)
    True
"""

from __future__ import annotations

import numpy as np
import scipy.optimize

__all__ = ["MLP", "sigmoid"]


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class MLP:
    """A one-hidden-layer ReLU network for binary classification, trained by L-BFGS.

    Full batch, float32 arithmetic, weighted logistic loss (weights normalised to mean 1)
    plus ``l2 / n`` times the squared weights, so the penalty acts like a fixed prior
    whose pull fades as data grow. Inputs are standardised. The output is a logit.
    Deterministic for a given ``seed``, data and BLAS thread count.
    """

    def __init__(self, hidden: int, l2: float, max_iter: int, seed: int) -> None:
        self.hidden, self.l2, self.max_iter, self.seed = hidden, l2, max_iter, seed

    def fit(self, x: np.ndarray, y: np.ndarray, weight: np.ndarray) -> MLP:
        self.mean_ = x.mean(axis=0).astype(np.float32)
        scale = x.std(axis=0)
        self.scale_ = np.where(scale > 1e-6, scale, 1.0).astype(np.float32)
        z = (x - self.mean_) / self.scale_
        n, d = z.shape
        h = self.hidden
        y = y.astype(np.float32)
        w = (weight / weight.sum()).astype(np.float32)
        decay = np.float32(self.l2 / n)
        rng = np.random.default_rng(self.seed)
        p0 = np.concatenate(
            [rng.normal(0, np.sqrt(2.0 / d), d * h), np.zeros(h), rng.normal(0, np.sqrt(1.0 / h), h), [0.0]]
        )
        grad = np.empty(p0.size, np.float64)

        def loss(p: np.ndarray) -> tuple[float, np.ndarray]:
            w1, b1, w2, b2 = self._unpack(p.astype(np.float32), d)
            a = z @ w1
            a += b1
            hid = np.maximum(a, 0)
            o = hid @ w2 + b2
            value = float(w @ (np.logaddexp(0, o) - y * o)) + float(
                decay * ((w1 * w1).sum() + (w2 * w2).sum())
            )
            g = (sigmoid(o) - y) * w
            gh = np.outer(g, w2)
            gh *= a > 0
            grad[: d * h] = (z.T @ gh + 2 * decay * w1).ravel()
            grad[d * h : d * h + h] = gh.sum(axis=0)
            grad[d * h + h : d * h + 2 * h] = hid.T @ g + 2 * decay * w2
            grad[-1] = g.sum()
            return value, grad

        res = scipy.optimize.minimize(
            loss, p0, jac=True, method="L-BFGS-B", options={"maxiter": self.max_iter}
        )
        self.params_ = res.x.astype(np.float32)
        self.n_iter_ = int(res.nit)
        self.d_ = d
        return self

    def _unpack(self, p: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.float32]:
        h = self.hidden
        return p[: d * h].reshape(d, h), p[d * h : d * h + h], p[d * h + h : d * h + 2 * h], p[-1]

    def logit(self, x: np.ndarray) -> np.ndarray:
        w1, b1, w2, b2 = self._unpack(self.params_, self.d_)
        z = (x - self.mean_) / self.scale_
        return (np.maximum(z @ w1 + b1, 0) @ w2 + b2).astype(np.float64)
