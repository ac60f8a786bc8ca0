"""Deterministic, seeded train/validation/test split (stratified for classification)."""

from __future__ import annotations

import numpy as np

SPLITS = ("train", "validation", "test")


def split_indices(
    n_rows: int,
    validation_fraction: float,
    test_fraction: float,
    seed: int,
    strata: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Row indices of each split, each sorted ascending.

    With ``strata`` (a non-negative class index per row) every class is split in the same
    proportions, so a rare class reaches validation and test whenever it has enough rows.
    """
    rng = np.random.default_rng(seed)
    assignment = np.zeros(n_rows, dtype=np.int8)  # index into SPLITS
    if strata is None:
        groups = [np.arange(n_rows)]
    else:
        present: np.ndarray = np.flatnonzero(np.bincount(strata)) if len(strata) else np.empty(0)
        groups = [np.flatnonzero(strata == label) for label in present]
    for group in groups:
        shuffled = group[rng.permutation(len(group))]
        n_test = round(len(shuffled) * test_fraction)
        n_validation = round(len(shuffled) * validation_fraction)
        assignment[shuffled[:n_test]] = 2
        assignment[shuffled[n_test : n_test + n_validation]] = 1
    return {name: np.flatnonzero(assignment == code) for code, name in enumerate(SPLITS)}
