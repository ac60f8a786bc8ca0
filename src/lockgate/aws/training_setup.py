"""Builds SageMaker training for `lockgate train` from lockgate.toml (boto3 stays here).

What the configuration leaves unset comes from the environment's stacks: the image is the
newest one pushed to ``lockgate-<env>-sagemaker``, pinned by digest; the execution role is the
stack's ``SageMakerRoleArn`` output.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlparse

from lockgate import durations
from lockgate.aws.environment import SAGEMAKER
from lockgate.aws.image_sync import latest_digest, repository_uri
from lockgate.aws.sagemaker_training import JobSettings, SageMakerTraining, TrainingJobs
from lockgate.aws.secrets import read_secret, storage_url
from lockgate.aws.session import aws_session, repository_name, stack_name
from lockgate.aws.stack import Stacks
from lockgate.config import Settings
from lockgate.errors import ConfigError


def sagemaker_training(
    settings: Settings, say: Callable[[str], None] = lambda _message: None
) -> SageMakerTraining:
    """The SageMaker compute of the current environment.

    Raises:
        ConfigError: the store is not on S3, or the image or role can be found neither in
            lockgate.toml nor in the environment's stacks (the message says which to set).
    """
    env = settings.env
    config = settings.env_config()
    training = config.training
    where = f"{settings.config_path} [envs.{env}.training]"
    store = urlparse(settings.store_uri)
    if store.scheme != "s3":
        raise ConfigError(
            f"{where}: compute = 'sagemaker' needs the environment's store on S3 "
            f'(set [envs.{env}] store = "s3://..."; `lockgate aws deploy` prints it)'
        )
    session = aws_session(config.aws)
    image = training.image
    if not image:
        repository = repository_name(env, SAGEMAKER)
        ecr = session.client("ecr")
        digest = latest_digest(ecr, repository)
        if digest is None:
            raise ConfigError(
                f"{where}: no image is set and {repository} holds none; push the train/serve "
                "image (the sagemaker-image workflow) or set image"
            )
        image = f"{repository_uri(ecr, repository)}@{digest}"
    role = training.role_arn
    if not role:
        outputs = Stacks(session.client("cloudformation")).outputs(stack_name(env, config.aws))
        role = outputs.get("SageMakerRoleArn")
        if not role:
            raise ConfigError(
                f"{where}: no role_arn is set and stack {stack_name(env, config.aws)} has no "
                "SageMakerRoleArn output; run `lockgate aws deploy` or set role_arn"
            )
    max_run = durations.parse_duration(training.max_run, f"[envs.{env}.training] max_run")
    prefix = store.path.lstrip("/")
    job_settings = JobSettings(
        env=env,
        image=image,
        role_arn=role,
        bucket=store.netloc,
        prefix=prefix + "/" if prefix and not prefix.endswith("/") else prefix,
        instance_type=training.instance_type,
        volume_gb=training.volume_gb,
        max_run_seconds=int(max_run or 3600),
        spot=training.spot,
    )
    jobs = TrainingJobs(session.client("sagemaker"), session.client("s3"))
    say(f"trials run as SageMaker training jobs ({training.instance_type}, image {image})")
    return SageMakerTraining(jobs, job_settings, say=say)


def secret_storage(settings: Settings) -> str | None:
    """The Optuna RDB URL kept at ``storage_secret_arn``, if the environment names one."""
    config = settings.env_config()
    arn = config.training.storage_secret_arn
    if not arn:
        return None
    return storage_url(read_secret(arn, aws_session(config.aws)))
