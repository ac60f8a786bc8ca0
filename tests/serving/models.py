"""Models that fail the way real ones do, for the server's failure paths.

They live in a module of their own so a package that pickles them can be loaded again.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class Fragile:
    """Predicts like ``inner`` but raises on a feature beyond ``limit``: a model bug that only
    some inputs reach (standardised features of real rows stay far below it)."""

    def __init__(self, inner: Any, limit: float = 1e3) -> None:
        self.inner = inner
        self.limit = limit

    def fit(self, X: np.ndarray, y: np.ndarray) -> Fragile:
        self.inner.fit(X, y)
        self.classes_ = self.inner.classes_
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        self._check(X)
        return np.asarray(self.inner.predict(X))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        self._check(X)
        return np.asarray(self.inner.predict_proba(X))

    def _check(self, X: np.ndarray) -> None:
        if np.abs(X).max() > self.limit:
            raise FloatingPointError("a feature is out of the range this model handles")


class BreaksWhenLoaded(Fragile):
    """Scores normally where it was trained, but every copy loaded from a package raises (a
    model that unpickles fine and then fails, e.g. against another library version)."""

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.limit = -1.0  # every input is now out of range
