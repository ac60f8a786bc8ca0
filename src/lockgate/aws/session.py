"""The boto3 session of an environment: its profile and region from lockgate.toml or flags."""

from __future__ import annotations

import os
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ProfileNotFound

from lockgate.config_aws import AwsConfig
from lockgate.errors import ConfigError

STACK_PREFIX = "lockgate"


def aws_session(config: AwsConfig, *, profile: str | None = None, region: str | None = None) -> Any:
    """A boto3 session: the flag, else ``[envs.<env>.aws]``, else boto3's own defaults.

    Raises:
        ConfigError: the profile does not exist, or no region is set anywhere.
    """
    profile = profile or config.profile
    region = region or config.region or os.environ.get("AWS_REGION")
    try:
        session = boto3.session.Session(profile_name=profile, region_name=region)
    except ProfileNotFound:
        raise ConfigError(
            f"AWS profile '{profile}' is not in ~/.aws/config; fix [envs.<env>.aws] profile "
            "or --profile"
        ) from None
    except BotoCoreError as exc:
        raise ConfigError(f"cannot set up AWS: {exc}") from None
    if not session.region_name:
        raise ConfigError(
            "no AWS region: set [envs.<env>.aws] region in lockgate.toml, --region, or AWS_REGION"
        )
    return session


def stack_name(env: str, config: AwsConfig) -> str:
    """The environment stack: ``[envs.<env>.aws] stack``, else ``lockgate-<env>``."""
    return config.stack or f"{STACK_PREFIX}-{env}"


def images_stack_name(env: str) -> str:
    """The stack of the environment's ECR repositories."""
    return f"{STACK_PREFIX}-{env}-images"


def repository_name(env: str, image: str) -> str:
    """The ECR repository of ``image`` (``data-prep`` or ``sagemaker``) in ``env``."""
    return f"{STACK_PREFIX}-{env}-{image}"


def function_name(env: str, function: str) -> str:
    """A Lambda function of the environment stack (``data-prep``, ``monitor``, ``image-sync``)."""
    return f"{STACK_PREFIX}-{env}-{function}"
