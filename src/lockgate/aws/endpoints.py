"""Builds an environment's SageMaker endpoint adapter from lockgate.toml (boto3 stays here)."""

from __future__ import annotations

import os

import boto3
from botocore.exceptions import BotoCoreError

from lockgate.aws.sagemaker_endpoint import SageMakerEndpoint
from lockgate.config import EndpointConfig
from lockgate.errors import ConfigError
from lockgate.ports.store import Store


def sagemaker_endpoint(
    store: Store, endpoint_name: str, config: EndpointConfig, where: str
) -> SageMakerEndpoint:
    """The SageMaker endpoint ``endpoint_name`` of an environment whose store is ``store``.

    Raises:
        ConfigError: the endpoint's image or execution role is not configured (``where`` says
            which table of which file to fix).
    """
    if not config.image or not config.role_arn:
        raise ConfigError(f"{where}: kind = 'sagemaker' needs image and role_arn")
    try:
        session = boto3.session.Session()
        # Lambda and SageMaker set AWS_REGION; boto3 itself only reads AWS_DEFAULT_REGION.
        client = session.client(
            "sagemaker", region_name=session.region_name or os.environ.get("AWS_REGION")
        )
    except BotoCoreError as exc:
        raise ConfigError(
            f"{where}: cannot reach SageMaker ({exc}); set AWS_PROFILE / AWS_REGION"
        ) from None
    return SageMakerEndpoint(
        client,
        store,
        endpoint_name=endpoint_name,
        image_uri=config.image,
        role_arn=config.role_arn,
        instance_type=config.instance_type,
        instance_count=config.instance_count,
        capture_percent=config.capture_percent,
    )
