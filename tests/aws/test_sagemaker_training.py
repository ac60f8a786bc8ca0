"""Trials as SageMaker training jobs: requests, outcomes, budget, interruption, adoption.

The requests go to moto's SageMaker over real HTTP (moto checks them against the API model and
keeps the jobs). moto runs no job: every job it creates is Completed at once and writes no
output, so the tests write each job's ``output.tar.gz`` where SageMaker would, from the
launcher's sleep between polls. Failed, stopped and in-progress jobs, which moto cannot
produce, come from a client whose answers botocore's Stubber scripts.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import optuna
import pytest
from botocore.stub import ANY, Stubber

from lockgate.aws.sagemaker_training import (
    JOB_ATTR,
    JobSettings,
    SageMakerTraining,
    TrainingJobs,
    job_name,
    study_token,
    training_job_request,
)
from lockgate.config import TrainConfig
from lockgate.pipelines.training.entrypoint import trial_hyperparameters
from lockgate.pipelines.training.space import SearchSpace
from lockgate.pipelines.training.study import ERROR_ATTR, StudyPlan, create_or_resume

ROLE = "arn:aws:iam::123456789012:role/lockgate-dev-sagemaker"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/lockgate-dev-sagemaker@sha256:" + "cd" * 32


def make_plan(tmp_path: Path, trials: int = 4, name: str = "churn-v1") -> StudyPlan:
    space = SearchSpace.from_config(
        TrainConfig.model_validate({"families": {"logistic": {}, "random_forest": {}}}),
        "classification",
    )
    plan = StudyPlan(
        study_name=name,
        storage="journal:" + str(tmp_path / "journal.log"),
        space=space,
        metric="roc_auc",
        direction="maximize",
        seed=7,
        sampler="random",
        pruning=False,
        classes=["no", "yes"],
        data_dir=tmp_path / "data",
        work_dir=tmp_path,
        trials=trials,
        deadline=None,
        data_prefix="processed/churn/v1/",
    )
    create_or_resume(plan, {})
    return plan


def settings_for(bucket: str, **changes: Any) -> JobSettings:
    values: dict[str, Any] = {
        "env": "dev",
        "image": IMAGE,
        "role_arn": ROLE,
        "bucket": bucket,
        "prefix": "team/",
    }
    return JobSettings(**(values | changes))


def output_archive(metrics: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    data = json.dumps(metrics).encode()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("metrics.json")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def study_of(plan: StudyPlan) -> optuna.Study:
    from lockgate.pipelines.training.study import open_storage

    return optuna.load_study(study_name=plan.study_name, storage=open_storage(plan.storage))


# --- the request ---------------------------------------------------------------------------


def test_request_names_the_channels_output_role_and_trial_hyperparameters(
    tmp_path: Path,
) -> None:
    plan = make_plan(tmp_path)
    settings = settings_for("lockgate-dev-123-us-east-1", spot=True, max_run_seconds=1800)
    hyperparameters = trial_hyperparameters(
        plan.space, {"family": "logistic", "logistic.C": 0.5}, "roc_auc", 7, ["no", "yes"]
    )
    name = job_name("dev", "0a1b2c3d", 3)
    request = training_job_request(settings, plan, name, 3, hyperparameters)

    assert request["TrainingJobName"] == name == "lockgate-dev-0a1b2c3d-t00003"
    assert request["AlgorithmSpecification"]["TrainingImage"] == IMAGE
    assert request["RoleArn"] == ROLE
    channels = {
        c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"]
        for c in request["InputDataConfig"]
    }
    assert channels == {
        "train": "s3://lockgate-dev-123-us-east-1/team/processed/churn/v1/train.safetensors",
        "validation": (
            "s3://lockgate-dev-123-us-east-1/team/processed/churn/v1/validation.safetensors"
        ),
    }
    assert request["OutputDataConfig"]["S3OutputPath"] == (
        "s3://lockgate-dev-123-us-east-1/team/training/churn-v1/"
    )
    assert request["HyperParameters"] == hyperparameters
    assert all(isinstance(v, str) for v in request["HyperParameters"].values())
    assert request["EnableManagedSpotTraining"] is True
    assert request["StoppingCondition"] == {
        "MaxRuntimeInSeconds": 1800,
        "MaxWaitTimeInSeconds": 3600,
    }
    assert request["CheckpointConfig"]["S3Uri"].endswith(f"/{request['TrainingJobName']}/")


def test_a_study_made_again_under_its_old_name_gets_new_job_names(tmp_path: Path) -> None:
    plan = make_plan(tmp_path / "first")
    token = study_token(study_of(plan))
    assert study_token(study_of(plan)) == token  # kept in the study
    again = make_plan(tmp_path / "again")  # same study name, new storage
    assert study_token(study_of(again)) != token
    names = {job_name("prod-eu-west", token, number) for number in range(50)}
    assert len(names) == 50
    assert all(len(name) <= 63 for name in names)


# --- against moto --------------------------------------------------------------------------


class FakeSageMakerRun:
    """The launcher's sleep: meanwhile, every job moto holds 'writes' its output."""

    def __init__(self, s3: Any, sagemaker: Any, bucket: str, values: Callable[[str], Any]):
        self.s3, self.sagemaker, self.bucket, self.values = s3, sagemaker, bucket, values
        self.sleeps = 0
        self.written: set[str] = set()
        self.running_at_sleep: list[int] = []

    def __call__(self, seconds: float) -> None:
        self.sleeps += 1
        names = [
            job["TrainingJobName"]
            for job in self.sagemaker.list_training_jobs(MaxResults=100)["TrainingJobSummaries"]
            if job["TrainingJobName"].startswith("lockgate-dev-")
        ]
        fresh = [name for name in names if name not in self.written]
        self.running_at_sleep.append(len(fresh))
        for name in fresh:
            self.written.add(name)
            metrics = self.values(name)
            if metrics is None:
                continue  # a job whose output never appears
            # Where SageMaker puts it: <S3OutputPath><job name>/output/output.tar.gz.
            job = self.sagemaker.describe_training_job(TrainingJobName=name)
            output = job["OutputDataConfig"]["S3OutputPath"].removeprefix(f"s3://{self.bucket}/")
            self.s3.put_object(
                Bucket=self.bucket,
                Key=f"{output}{name}/output/output.tar.gz",
                Body=output_archive(metrics),
            )


@pytest.fixture
def clients(aws_env: str) -> tuple[Any, Any]:
    return boto3.client("sagemaker"), boto3.client("s3")


def test_study_runs_as_jobs_and_reads_each_metric_from_the_jobs_output(
    tmp_path: Path, bucket: str, clients: tuple[Any, Any]
) -> None:
    sagemaker, s3 = clients
    plan = make_plan(tmp_path, trials=5)
    value_of = {}

    def values(name: str) -> dict[str, Any]:
        value_of[name] = 0.5 + int(name[-5:]) / 100
        return {"status": "completed", "roc_auc": value_of[name], "seconds": 1.5, "history": []}

    fake = FakeSageMakerRun(s3, sagemaker, bucket, values)
    fake.written.update(  # jobs of earlier tests on this moto server have their output
        job["TrainingJobName"]
        for job in sagemaker.list_training_jobs(MaxResults=100)["TrainingJobSummaries"]
    )
    said: list[str] = []
    launcher = SageMakerTraining(
        TrainingJobs(sagemaker, s3), settings_for(bucket), sleep=fake, say=said.append
    )
    launcher.run_trials(plan, workers=2)

    study = study_of(plan)
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(complete) == 5
    for trial in complete:
        name = trial.user_attrs[JOB_ATTR]
        assert trial.value == pytest.approx(value_of[name])
        assert trial.user_attrs["seconds"] == 1.5
    # Never more than `workers` jobs were running at once.
    assert max(fake.running_at_sleep) <= 2
    ours = {trial.user_attrs[JOB_ATTR] for trial in complete}
    assert len(ours) == 5
    assert ours <= fake.written  # each one a job moto holds
    described = sagemaker.describe_training_job(TrainingJobName=sorted(ours)[0])
    assert described["RoleArn"] == ROLE
    assert described["AlgorithmSpecification"]["TrainingImage"] == IMAGE
    assert any("training job" in line and "started" in line for line in said)


def test_a_job_whose_output_holds_no_metric_is_a_failed_trial(
    tmp_path: Path, bucket: str, clients: tuple[Any, Any]
) -> None:
    sagemaker, s3 = clients
    plan = make_plan(tmp_path, trials=2, name="churn-v1")

    def values(name: str) -> dict[str, Any] | None:
        return None if name.endswith("t00000") else {"status": "completed", "roc_auc": 0.8}

    fake = FakeSageMakerRun(s3, sagemaker, bucket, values)
    settings = settings_for(bucket, env="dev")
    launcher = SageMakerTraining(TrainingJobs(sagemaker, s3), settings, sleep=fake)
    fake.written.update(  # jobs of earlier tests on this moto server have their output
        job["TrainingJobName"]
        for job in sagemaker.list_training_jobs(MaxResults=100)["TrainingJobSummaries"]
    )
    launcher.run_trials(plan, workers=1)

    study = study_of(plan)
    by_number = {trial.number: trial for trial in study.trials}
    assert by_number[0].state == optuna.trial.TrialState.FAIL
    assert "metrics.json" in by_number[0].user_attrs[ERROR_ATTR]
    assert by_number[1].state == optuna.trial.TrialState.COMPLETE


# --- job states moto cannot produce (Stubber) ---------------------------------------------


def stubbed() -> tuple[Any, Stubber, Any, Stubber]:
    sagemaker = boto3.client(
        "sagemaker",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",  # noqa: S106 - a stubbed client sends nothing
    )
    s3 = boto3.client(
        "s3",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",  # noqa: S106
    )
    return sagemaker, Stubber(sagemaker), s3, Stubber(s3)


def describe(name: str, status: str, reason: str | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "TrainingJobName": name,
        "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{name}",
        "TrainingJobStatus": status,
        "SecondaryStatus": "Training" if status == "InProgress" else status,
        "AlgorithmSpecification": {"TrainingInputMode": "File", "TrainingImage": IMAGE},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "CreationTime": "2026-11-26T10:00:00Z",
        "ModelArtifacts": {"S3ModelArtifacts": f"s3://b/training/{name}/output/model.tar.gz"},
    }
    if reason:
        answer["FailureReason"] = reason
    return answer


def test_failed_and_stopped_jobs_are_failed_trials_with_sagemakers_reason(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, trials=2)
    sagemaker, stub, s3, _ = stubbed()
    token = study_token(study_of(plan))
    first, second = (job_name("dev", token, n) for n in (0, 1))
    stub.add_response("create_training_job", {"TrainingJobArn": "arn:1"}, {**_any_request()})
    stub.add_response("create_training_job", {"TrainingJobArn": "arn:2"}, {**_any_request()})
    stub.add_response(
        "describe_training_job", describe(first, "InProgress"), {"TrainingJobName": first}
    )
    stub.add_response(
        "describe_training_job", describe(second, "Stopped"), {"TrainingJobName": second}
    )
    stub.add_response(
        "describe_training_job",
        describe(first, "Failed", "AlgorithmError: ValueError: C must be positive"),
        {"TrainingJobName": first},
    )
    polls: list[float] = []
    with stub:
        SageMakerTraining(
            TrainingJobs(sagemaker, s3), settings_for("b"), sleep=polls.append, poll_seconds=9.0
        ).run_trials(plan, workers=2)
        stub.assert_no_pending_responses()
    study = study_of(plan)
    errors = {trial.number: trial.user_attrs.get(ERROR_ATTR) for trial in study.trials}
    assert all(t.state == optuna.trial.TrialState.FAIL for t in study.trials)
    assert "C must be positive" in errors[0]
    assert "stopped" in errors[1]
    assert polls == [9.0, 9.0]


def _any_request() -> dict[str, Any]:
    keys = (
        "TrainingJobName AlgorithmSpecification RoleArn HyperParameters InputDataConfig "
        "OutputDataConfig ResourceConfig StoppingCondition CheckpointConfig "
        "EnableManagedSpotTraining Tags"
    ).split()
    return dict.fromkeys(keys, ANY)


def test_an_interrupted_study_stops_its_running_jobs_and_fails_their_trials(
    tmp_path: Path,
) -> None:
    plan = make_plan(tmp_path, trials=3)
    sagemaker, stub, s3, _ = stubbed()
    names = [job_name("dev", study_token(study_of(plan)), n) for n in (0, 1)]
    for _ in names:
        stub.add_response("create_training_job", {"TrainingJobArn": "arn"}, _any_request())
    for name in names:
        stub.add_response("stop_training_job", {}, {"TrainingJobName": name})

    def interrupted(_seconds: float) -> None:
        raise KeyboardInterrupt

    with stub, pytest.raises(KeyboardInterrupt):
        SageMakerTraining(
            TrainingJobs(sagemaker, s3), settings_for("b"), sleep=interrupted
        ).run_trials(plan, workers=2)
    stub.assert_no_pending_responses()
    study = study_of(plan)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.FAIL] * 2
    assert all("interrupted" in t.user_attrs[ERROR_ATTR] for t in study.trials)


def test_a_killed_launchers_running_job_is_followed_to_its_end(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, trials=1)
    study = study_of(plan)
    trial = study.ask()
    trial.set_user_attr("family", "logistic")
    name = job_name("dev", study_token(study), trial.number)
    trial.set_user_attr(JOB_ATTR, name)  # what a launcher killed mid-study leaves
    sagemaker, stub, s3, s3_stub = stubbed()
    stub.add_response(
        "describe_training_job", describe(name, "Completed"), {"TrainingJobName": name}
    )
    s3_stub.add_response(
        "get_object",
        {"Body": io.BytesIO(output_archive({"roc_auc": 0.91, "seconds": 3.0}))},
        {"Bucket": "b", "Key": f"team/training/{plan.study_name}/{name}/output/output.tar.gz"},
    )
    said: list[str] = []
    with stub, s3_stub:
        SageMakerTraining(
            TrainingJobs(sagemaker, s3), settings_for("b"), sleep=lambda _s: None, say=said.append
        ).run_trials(plan, workers=2)
    done = study_of(plan).trials
    assert len(done) == 1  # no new job: the budget was the adopted trial
    assert done[0].state == optuna.trial.TrialState.COMPLETE
    assert done[0].value == pytest.approx(0.91)
    assert any("following job" in line for line in said)


def test_a_refused_create_fails_the_trial_and_says_what_to_do(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, trials=2)
    sagemaker, stub, s3, _ = stubbed()
    stub.add_client_error(
        "create_training_job",
        service_error_code="ResourceLimitExceeded",
        service_message="The account-level service limit 'ml.m5.large for training job usage' is 1",
    )
    from lockgate.aws.sagemaker_endpoint import SageMakerError

    with stub, pytest.raises(SageMakerError, match="lower --workers"):
        SageMakerTraining(
            TrainingJobs(sagemaker, s3), settings_for("b"), sleep=lambda _s: None
        ).run_trials(plan, workers=2)
    trials = study_of(plan).trials
    assert trials[0].state == optuna.trial.TrialState.FAIL
    assert "ResourceLimitExceeded" in trials[0].user_attrs[ERROR_ATTR]


def test_a_trial_whose_job_was_never_created_fails_and_the_study_goes_on(
    tmp_path: Path,
) -> None:
    """A launcher stopped between ask and create leaves a running trial with no job."""
    plan = make_plan(tmp_path, trials=2)
    study = study_of(plan)
    token = study_token(study)
    orphan = study.ask()
    orphan.set_user_attr("family", "logistic")
    orphan.set_user_attr(JOB_ATTR, job_name("dev", token, orphan.number))
    sagemaker, stub, s3, s3_stub = stubbed()
    stub.add_client_error(
        "describe_training_job",
        service_error_code="ValidationException",
        service_message="Requested resource not found.",
    )
    name = job_name("dev", token, 1)
    stub.add_response("create_training_job", {"TrainingJobArn": "arn"}, _any_request())
    stub.add_response(
        "describe_training_job", describe(name, "Completed"), {"TrainingJobName": name}
    )
    s3_stub.add_response(
        "get_object",
        {"Body": io.BytesIO(output_archive({"roc_auc": 0.8}))},
        {"Bucket": "b", "Key": f"team/training/{plan.study_name}/{name}/output/output.tar.gz"},
    )
    with stub, s3_stub:
        SageMakerTraining(
            TrainingJobs(sagemaker, s3), settings_for("b"), sleep=lambda _s: None
        ).run_trials(plan, workers=1)
    trials = study_of(plan).trials
    assert trials[0].state == optuna.trial.TrialState.FAIL
    assert "never created" in trials[0].user_attrs[ERROR_ATTR]
    assert trials[1].state == optuna.trial.TrialState.COMPLETE
