"""Fixtures shared across the suite: sample data, a folder store, the churn dataset config."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
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
        name: str = "churn.csv",
        rows: int = 2000,
        seed: int = 7,
        shift: float = 0.0,
        gzip: bool = False,
    ) -> Path:
        return write_churn_csv(tmp_path / "data" / name, rows, seed=seed, shift=shift, gzip=gzip)

    return write


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A moto server on 127.0.0.1 (a free port), speaking the AWS APIs over real HTTP."""
    from moto.server import ThreadedMotoServer

    # Port 0 lets the OS pick a free port; the server reports the one it bound.
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_env(moto_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """Point boto3, through the environment only, at the moto server with dummy credentials."""
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ENDPOINT_URL_S3",
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
        "AWS_REGION",
    ):
        monkeypatch.delenv(name, raising=False)
    # Keep the developer's ~/.aws (SSO profiles, endpoint overrides) out of the tests.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    return moto_server


@pytest.fixture
def bucket(aws_env: str) -> str:
    """A fresh, empty bucket on the moto server."""
    import boto3

    name = f"lockgate-test-{uuid.uuid4().hex[:16]}"
    boto3.client("s3", endpoint_url=aws_env).create_bucket(Bucket=name)
    return name
