"""lockgate.toml's AWS tables: where an environment's stack lives and how it trains there.

Kept apart from :mod:`lockgate.config` so the local configuration reads on its own; the
models here are fields of ``[envs.<env>]``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AwsConfig(_Strict):
    """``[envs.<env>.aws]``: the AWS account and region of an environment, for `lockgate aws`."""

    region: str | None = Field(
        None, description="AWS region; unset: AWS_REGION / the profile's region"
    )
    profile: str | None = Field(None, description="AWS profile; unset: the default credentials")
    stack: str | None = Field(None, description="environment stack name; default lockgate-<env>")
    parameters: dict[str, str] = Field(
        {},
        description="CloudFormation parameters of the environment stack, e.g. "
        'DataPrepMemorySize = "3008" (see docs/aws.md)',
    )


class TrainingConfig(_Strict):
    """``[envs.<env>.training]``: where `lockgate train` runs the study's trials."""

    compute: Literal["local", "sagemaker"] = Field(
        "local",
        description="local: worker processes on this machine; sagemaker: one training job "
        "per trial, --workers of them at once",
    )
    image: str | None = Field(
        None,
        description="sagemaker: training image URI; unset: the newest image in the "
        "environment's lockgate-<env>-sagemaker repository, pinned by digest",
    )
    role_arn: str | None = Field(
        None, description="sagemaker: execution role; unset: the stack's SageMakerRoleArn"
    )
    instance_type: str = Field("ml.m5.large", description="sagemaker: instance of each trial")
    volume_gb: int = Field(30, ge=1, le=16384, description="sagemaker: storage per trial")
    max_run: str = Field(
        "1h", description="sagemaker: a trial's run time limit (StoppingCondition)"
    )
    spot: bool = Field(
        False, description="sagemaker: managed spot training (waits up to 2 x max_run)"
    )
    storage_secret_arn: str | None = Field(
        None,
        description="Optuna RDB URL kept in Secrets Manager or SSM Parameter Store (by ARN), "
        "read by `lockgate train` and never passed to a job; unset: train.storage",
    )
