"""Fixtures shared across the suite: sample data, a folder store, the churn dataset config."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from lockgate.config import DatasetConfig, PrepConfig
from lockgate.local.file_store import FileStore
from lockgate.sample.churn import CHURN_COLUMNS, CHURN_TARGET, write_churn_csv

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def file_store(tmp_path: Path) -> FileStore:
    """An empty folder store."""
    return FileStore((tmp_path / "store").as_uri())


@pytest.fixture
def churn_config() -> DatasetConfig:
    """The churn dataset's configuration, as `lockgate init` infers it."""
    return DatasetConfig(
        target=CHURN_TARGET,
        task="classification",
        columns=dict(CHURN_COLUMNS),  # type: ignore[arg-type]
        prep=PrepConfig(text_max_features=32),
    )


@pytest.fixture
def churn_csv(tmp_path: Path) -> Callable[..., Path]:
    """Writes a churn CSV: ``churn_csv(name, rows=2000, seed=7, shift=0.0, gzip=False)``."""

    def write(
        name: str = "churn.csv", rows: int = 2000, seed: int = 7, shift: float = 0.0,
        gzip: bool = False,
    ) -> Path:
        return write_churn_csv(tmp_path / "data" / name, rows, seed=seed, shift=shift, gzip=gzip)

    return write
