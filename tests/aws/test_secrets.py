"""The study storage's secret, read by ARN from Secrets Manager or SSM (moto over HTTP)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3
import pytest

from lockgate.aws.secrets import SecretError, read_secret, storage_url

URL = "postgresql+psycopg://optuna:p%40ss@db.internal:5432/optuna"


@pytest.fixture
def session(aws_env: str) -> Any:
    return boto3.session.Session(region_name="us-east-1")


def test_a_secrets_manager_secret_holding_the_url(session: Any) -> None:
    arn = session.client("secretsmanager").create_secret(
        Name=f"lockgate/dev/optuna-{uuid.uuid4().hex[:6]}", SecretString=URL
    )["ARN"]
    assert storage_url(read_secret(arn, session)) == URL


def test_an_rds_managed_secret_becomes_a_postgresql_url(session: Any) -> None:
    document = {
        "username": "optuna",
        "password": "p@ss/word",
        "host": "db.internal",
        "port": 5432,
        "dbname": "studies",
        "engine": "postgres",
    }
    arn = session.client("secretsmanager").create_secret(
        Name=f"lockgate/dev/rds-{uuid.uuid4().hex[:6]}", SecretString=json.dumps(document)
    )["ARN"]
    assert storage_url(read_secret(arn, session)) == (
        "postgresql+psycopg://optuna:p%40ss%2Fword@db.internal:5432/studies"
    )


def test_an_ssm_secure_string_parameter(session: Any) -> None:
    name = f"/lockgate/dev/optuna-{uuid.uuid4().hex[:6]}"
    ssm = session.client("ssm")
    ssm.put_parameter(Name=name, Value=URL, Type="SecureString")
    arn = ssm.get_parameter(Name=name)["Parameter"]["ARN"]
    assert read_secret(arn, session) == URL


def test_a_missing_secret_says_what_the_credentials_need(session: Any) -> None:
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:lockgate/dev/none-AbCdEf"
    with pytest.raises(SecretError, match="secretsmanager:GetSecretValue"):
        read_secret(arn, session)


@pytest.mark.parametrize(
    "arn",
    [
        "postgresql://user:pw@host/db",
        "arn:aws:s3:::bucket/key",
        "arn:aws:secretsmanager:us-east-1",
    ],
)
def test_what_is_not_a_secret_arn_is_refused_without_a_call(arn: str) -> None:
    with pytest.raises(SecretError, match="not the ARN"):
        read_secret(arn, session=None)


def test_a_value_that_is_no_url_is_refused_without_repeating_it() -> None:
    with pytest.raises(SecretError) as raised:
        storage_url("hunter2")
    assert "hunter2" not in str(raised.value)
    with pytest.raises(SecretError, match="password"):
        storage_url(json.dumps({"username": "u", "host": "h"}))
