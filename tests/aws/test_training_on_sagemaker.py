"""`lockgate train` on an AWS environment: trials as training jobs, end to end against moto.

The store is an S3 bucket and the study's storage URL sits in Secrets Manager, both on moto's
server over HTTP; the trials are training jobs moto accepts and completes at once. moto runs
no container, so each job's output.tar.gz is written where SageMaker would put it, from the
launcher's wait between polls. The rest -- best trial, refit, package, registry -- is the real
training pipeline.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import optuna
import pytest

from lockgate.aws import training_setup
from lockgate.aws.s3_store import S3Store
from lockgate.aws.sagemaker_training import JOB_ATTR, SageMakerTraining
from lockgate.config import DatasetConfig, EnvConfig, FileConfig, Settings, TrainConfig
from lockgate.config_aws import AwsConfig, TrainingConfig
from lockgate.errors import ConfigError
from lockgate.local.runtime import Runtime
from tests.aws.test_sagemaker_training import FakeSageMakerRun

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/lockgate-dev-sagemaker@sha256:" + "ef" * 32
ROLE = "arn:aws:iam::123456789012:role/lockgate-dev-sagemaker"


def settings_for(tmp_path: Path, store: str, churn: DatasetConfig, **training: Any) -> Settings:
    return Settings(
        env="dev",
        config_path=tmp_path / "lockgate.toml",
        file=FileConfig(
            datasets={"churn": churn},
            envs={
                "dev": EnvConfig(
                    store=store,
                    aws=AwsConfig(region="us-east-1"),
                    training=TrainingConfig(compute="sagemaker", **training),
                )
            },
            train=TrainConfig(trials=3, sampler="random", families={"logistic": {}}),
        ),
    )


def test_train_runs_its_trials_as_jobs_and_registers_the_best(
    tmp_path: Path,
    bucket: str,
    churn_config: DatasetConfig,
    churn_csv: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = S3Store(f"s3://{bucket}/team")
    store.put_file("raw/churn/jan.csv", churn_csv(rows=600))
    runtime = Runtime(store, {"churn": churn_config})
    runtime.poll()
    assert runtime.poll() is not None  # the data version the study trains on
    database = tmp_path / "optuna.db"
    url = f"sqlite:///{database}"
    arn = boto3.client("secretsmanager").create_secret(
        Name=f"lockgate/dev/optuna-{bucket[-6:]}", SecretString=url
    )["ARN"]
    settings = settings_for(
        tmp_path,
        f"s3://{bucket}/team",
        churn_config,
        image=IMAGE,
        role_arn=ROLE,
        storage_secret_arn=arn,
    )
    sagemaker, s3 = boto3.client("sagemaker"), boto3.client("s3")
    values = {"t00000": 0.71, "t00001": 0.93, "t00002": 0.82}

    def metrics(name: str) -> dict[str, Any]:
        return {"status": "completed", "roc_auc": values[name[-6:]], "seconds": 2.0}

    fake = FakeSageMakerRun(s3, sagemaker, bucket, metrics)
    fake.written.update(  # jobs of earlier tests on this moto server
        job["TrainingJobName"]
        for job in sagemaker.list_training_jobs(MaxResults=100)["TrainingJobSummaries"]
    )
    built = training_setup.SageMakerTraining

    def with_fake_wait(*args: Any, **kwargs: Any) -> SageMakerTraining:
        return built(*args, **kwargs, sleep=fake)

    monkeypatch.setattr(training_setup, "SageMakerTraining", with_fake_wait)
    from lockgate.cli.training import run_training

    result = run_training(settings, store, workers=2)

    assert result.best_value == pytest.approx(0.93)
    assert result.model_version == 1
    assert result.package_uri.startswith(f"s3://{bucket}/team/models/churn/1")
    study = optuna.load_study(study_name=result.study_name, storage=url)
    jobs = [trial.user_attrs[JOB_ATTR] for trial in study.trials]
    assert len(jobs) == 3
    assert max(fake.running_at_sleep) <= 2
    for name in jobs:
        described = json.dumps(sagemaker.describe_training_job(TrainingJobName=name), default=str)
        assert url not in described and str(database) not in described
        assert "/team/processed/churn/" in described


def test_sagemaker_compute_needs_the_store_on_s3(
    tmp_path: Path, churn_config: DatasetConfig
) -> None:
    settings = settings_for(tmp_path, str(tmp_path / "store"), churn_config, role_arn=ROLE)
    with pytest.raises(ConfigError, match=r"store on S3"):
        training_setup.sagemaker_training(settings)


def test_without_an_image_the_newest_pushed_one_is_used_by_digest(
    tmp_path: Path, bucket: str, churn_config: DatasetConfig
) -> None:
    ecr = boto3.client("ecr")
    repository = "lockgate-dev-sagemaker"
    try:
        ecr.create_repository(repositoryName=repository)
    except ecr.exceptions.RepositoryAlreadyExistsException:
        pass
    settings = settings_for(tmp_path, f"s3://{bucket}/", churn_config, role_arn=ROLE)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 1,
            "digest": "sha256:" + "1" * 64,
        },
        "layers": [],
    }
    ecr.put_image(
        repositoryName=repository, imageManifest=json.dumps(manifest), imageTag=f"sha-{bucket}"
    )
    digest = ecr.describe_images(
        repositoryName=repository, imageIds=[{"imageTag": f"sha-{bucket}"}]
    )["imageDetails"][0]["imageDigest"]

    compute = training_setup.sagemaker_training(settings)

    assert compute.settings.image.endswith(f"/{repository}@{digest}")
    assert compute.settings.bucket == bucket and compute.settings.prefix == ""
