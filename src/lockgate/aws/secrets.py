"""Secrets by ARN: Secrets Manager secrets and SSM parameters, read once, never logged.

The study storage of an AWS environment is a database URL with a password in it; lockgate.toml
names where it is kept (``[envs.<env>.training] storage_secret_arn``), not the URL itself.
A Secrets Manager secret may hold the URL as its string, or a JSON document: ``{"url": ...}``,
or the connection fields of RDS's secret format (``username``, ``password``, ``host``,
``port``, ``dbname``, ``engine``), which are turned into a SQLAlchemy URL. A secret RDS manages
for a master password holds only ``username`` and ``password``: add ``host`` (and ``dbname``)
to it, or keep the URL in a secret of its own.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from botocore.exceptions import BotoCoreError, ClientError

from lockgate.aws.errors import unanswered
from lockgate.errors import ConfigError

_DRIVERS = {"postgres": "postgresql+psycopg", "postgresql": "postgresql+psycopg"}


class SecretError(ConfigError):
    """The secret cannot be read or does not hold a database URL; the message says why."""


def read_secret(arn: str, session: Any) -> str:
    """The value kept at ``arn`` (``arn:aws:secretsmanager:...`` or ``arn:aws:ssm:...``).

    Args:
        session: a boto3 session; the client is made in the ARN's region.

    Raises:
        SecretError: the ARN is of another service, or AWS refused or could not be reached.
    """
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or parts[2] not in ("secretsmanager", "ssm"):
        raise SecretError(
            f"'{arn}' is not the ARN of a Secrets Manager secret or an SSM parameter "
            "(arn:aws:secretsmanager:<region>:<account>:secret:<name> or "
            "arn:aws:ssm:<region>:<account>:parameter/<name>)"
        )
    service, region = parts[2], parts[3] or None
    try:
        client = session.client(service, region_name=region)
        if service == "secretsmanager":
            answer = client.get_secret_value(SecretId=arn)
            if "SecretString" not in answer:
                raise SecretError(f"secret {arn} is binary; store the URL as a string")
            return str(answer["SecretString"])
        answer = client.get_parameter(Name=arn, WithDecryption=True)
        return str(answer["Parameter"]["Value"])
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        action = (
            "secretsmanager:GetSecretValue" if service == "secretsmanager" else ("ssm:GetParameter")
        )
        raise SecretError(
            f"cannot read {arn} ({code}): it must exist and the credentials need {action} "
            "on it (and kms:Decrypt of its key)"
        ) from None
    except BotoCoreError as exc:
        raise SecretError(
            unanswered(exc, doing=f"to read {arn}", reach=service, failed=f"reading {arn}")
        ) from None


def storage_url(value: str) -> str:
    """A database URL from a secret's value: the URL itself, or RDS's JSON document.

    Raises:
        SecretError: neither (the message never repeats the value: it may be a password).
    """
    text = value.strip()
    if not text.startswith("{"):
        if "://" not in text:
            raise SecretError("the secret holds neither a database URL nor RDS's JSON document")
        return text
    try:
        document: dict[str, Any] = json.loads(text)
    except ValueError:
        raise SecretError("the secret starts like JSON but does not parse") from None
    if "url" in document:
        return str(document["url"])
    missing = [key for key in ("username", "password", "host") if key not in document]
    if missing:
        raise SecretError(
            f"the secret's JSON has no {', '.join(missing)} (nor a 'url'): add them, or keep "
            "the database URL in a secret of its own (a secret RDS manages for a master "
            "password holds only username and password)"
        )
    engine = str(document.get("engine", "postgres"))
    driver = _DRIVERS.get(engine, engine)
    user = quote(str(document["username"]), safe="")
    password = quote(str(document["password"]), safe="")
    port = f":{document['port']}" if document.get("port") else ""
    database = quote(str(document.get("dbname") or "postgres"), safe="")
    return f"{driver}://{user}:{password}@{document['host']}{port}/{database}"
