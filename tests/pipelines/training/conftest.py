"""Small synthetic splits, shaped like a dataset version's tensors (float32 X, int64/float32 y)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest


@dataclass(frozen=True)
class Splits:
    """Train and validation tensors of one task."""

    task: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    classes: list[str] | None


def make_splits(task: str, n_classes: int = 2, rows: int = 450, seed: int = 0) -> Splits:
    """Learnable synthetic data: two thirds train, one third validation."""
    from sklearn.datasets import make_classification, make_regression

    if task == "classification":
        X, y = make_classification(
            n_samples=rows,
            n_features=8,
            n_informative=5,
            n_redundant=1,
            n_classes=n_classes,
            class_sep=1.2,
            random_state=seed,
        )
        y = y.astype(np.int64)
        classes: list[str] | None = [f"class-{index}" for index in range(n_classes)]
    else:
        X, y = make_regression(
            n_samples=rows, n_features=8, n_informative=5, noise=10.0, random_state=seed
        )
        y = y.astype(np.float32)
        classes = None
    X = X.astype(np.float32)
    cut = rows * 2 // 3
    return Splits(task, X[:cut], y[:cut], X[cut:], y[cut:], classes)


@pytest.fixture(scope="session")
def binary() -> Splits:
    return make_splits("classification", 2)


@pytest.fixture(scope="session")
def three_class() -> Splits:
    return make_splits("classification", 3)


@pytest.fixture(scope="session")
def regression() -> Splits:
    return make_splits("regression")
