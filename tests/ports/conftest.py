"""Fixtures for the port contract suites: every adapter, behind one parametrized fixture."""

from __future__ import annotations

from pathlib import Path

import pytest

from lockgate.local.file_store import FileStore
from lockgate.ports.store import Store

S3_PART_SIZE = 5 * 1024 * 1024
"""The S3 store under test uploads in parts from this size, so an 11 MiB file goes multipart."""


@pytest.fixture
def s3_store(bucket: str) -> Store:
    """An S3 store under a prefix of a fresh bucket, its client built from the environment."""
    from lockgate.aws.s3_store import S3Store

    return S3Store(f"s3://{bucket}/team/", multipart_threshold=S3_PART_SIZE)


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """Each Store adapter in turn, empty; the moto server starts only for the S3 one."""
    if request.param == "file":
        return FileStore((tmp_path / "store").as_uri())
    s3: Store = request.getfixturevalue("s3_store")
    return s3
