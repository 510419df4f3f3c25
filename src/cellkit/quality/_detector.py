"""What every cellkit issue detector shares: scikit-learn's outlier-estimator surface.

A detector lists its constructor parameters in ``_PARAMS`` and implements ``fit`` (setting
``threshold_`` and the fitted attributes, which end in ``_``) and ``score_samples`` (in
``[0, 1]``, lower = more likely an issue). This mixin adds ``get_params``, a ``repr``
showing the changed parameters, the fitted check, ``decision_function``, ``predict`` and
``fit_predict``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

__all__ = ["IssueDetectorMixin"]


class IssueDetectorMixin:
    _PARAMS: ClassVar[tuple[str, ...]] = ()
    #: The fitted attribute whose presence means "fitted" (set before ``threshold_`` by
    #: detectors that score their own training images to calibrate the threshold).
    _FITTED_ATTR: ClassVar[str] = "threshold_"

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor parameters (scikit-learn convention)."""
        return {k: getattr(self, k) for k in self._PARAMS}

    def __repr__(self) -> str:
        defaults = type(self)().get_params()
        changed = {k: v for k, v in self.get_params().items() if not _same(v, defaults[k])}
        return f"{type(self).__name__}(" + ", ".join(f"{k}={v!r}" for k, v in changed.items()) + ")"

    def _validate_contamination_and_threshold(self) -> None:
        c = getattr(self, "contamination", "auto")
        if not (c == "auto" or (isinstance(c, (float, int)) and not isinstance(c, bool) and 0 < c <= 0.5)):
            raise ValueError(f'`contamination` must be "auto" or a float in (0, 0.5]. Received: contamination={c!r}')
        t = getattr(self, "threshold", None)
        if t is not None and not (isinstance(t, (float, int)) and not isinstance(t, bool) and 0 <= t <= 1):
            raise ValueError(f"`threshold` must be None or a float in [0, 1]. Received: threshold={t!r}")

    def _check_fitted(self) -> None:
        if not hasattr(self, self._FITTED_ATTR):
            raise RuntimeError(f"This {type(self).__name__} is not fitted yet: call `fit(images)` before scoring.")

    def score_samples(self, images: Any) -> np.ndarray:  # pragma: no cover - every detector overrides it
        raise NotImplementedError

    def decision_function(self, images: Any) -> np.ndarray:
        """``score_samples(images) - threshold_``: negative for likely issues."""
        self._check_fitted()
        return self.score_samples(images) - self.threshold_

    def predict(self, images: Any) -> np.ndarray:
        """``+1`` for clean images, ``-1`` for likely issues, ``(n,)`` int."""
        return np.where(self.decision_function(images) < 0, -1, 1)

    def fit_predict(self, images: Any, y: None = None) -> np.ndarray:
        """``fit(images)``, then the prediction for the fitted images."""
        return self.fit(images).predict(images)  # type: ignore[attr-defined]


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # arrays, generators
        return a is b
