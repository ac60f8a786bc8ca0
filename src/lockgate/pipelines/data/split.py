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

    With ``strata`` (class index per row) every class is split in the same proportions, so a
    rare class reaches validation and test whenever it has enough rows.
    """
    rng = np.random.default_rng(seed)
    groups = [np.arange(n_rows)] if strata is None else _groups(strata)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in SPLITS}
    for group in groups:
        shuffled = rng.permutation(group)
        n_test = round(len(shuffled) * test_fraction)
        n_validation = round(len(shuffled) * validation_fraction)
        parts["test"].append(shuffled[:n_test])
        parts["validation"].append(shuffled[n_test : n_test + n_validation])
        parts["train"].append(shuffled[n_test + n_validation :])
    return {
        name: np.sort(np.concatenate(chunks)) if chunks else np.empty(0, dtype=np.int64)
        for name, chunks in parts.items()
    }


def _groups(strata: np.ndarray) -> list[np.ndarray]:
    order = np.argsort(strata, kind="stable")
    values, starts = np.unique(strata[order], return_index=True)
    return [np.sort(chunk) for chunk in np.split(order, starts[1:])] if len(values) else []
