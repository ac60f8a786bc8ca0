"""Fixtures for the port contract suites: every adapter, behind one parametrized fixture."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lockgate.local.file_store import FileStore
from lockgate.ports.store import Store

S3_PART_SIZE = 5 * 1024 * 1024
"""The S3 store under test uploads in parts from this size, so an 11 MiB file goes multipart."""


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
