"""Big uploads handed to a SageMaker Processing job, and the job's own entrypoint.

What moto does here (measured with moto 5.2): CreateProcessingJob and DescribeProcessingJob
work over HTTP, but the job is Completed at once and never runs, DescribeProcessingJob leaves
out ``Environment`` and ``ProcessingResources``, and a second CreateProcessingJob of the same
name replaces the first instead of answering ResourceInUse. So the requests are checked as
botocore sent them (after validating them against the API model), a stopped job is made with
moto's StopProcessingJob, and the ResourceInUse race is scripted with Stubber. The job's
entrypoint runs as a real ``python -m lockgate.aws.processing`` against moto's S3.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from lockgate.aws import lambda_data, processing
from lockgate.aws.processing import ProcessingError, SageMakerProcessing
from lockgate.errors import ConfigError
from lockgate.pipelines.runs import recent_runs
from lockgate.wiring import open_store
from tests.aws.test_image_sync import images as images  # the module's fixtures
from tests.aws.test_image_sync import make_function as make_function
from tests.aws.test_lambda_data import RECORDED_BUCKET, context, recorded
from tests.aws.test_lambda_data import lambda_env as lambda_env  # the module's fixture

KEY = "raw/churn/2026/März export/customers a+b été.csv"  # as in put_nested_unicode.json
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/lockgate-dev-data-prep@sha256:" + "c" * 64
ROLE = "arn:aws:iam::123456789012:role/lockgate-dev-sagemaker"


class Sent:
    """The CreateProcessingJob requests a client sent (the JSON on the wire)."""

    def __init__(self, client: Any) -> None:
        self.requests: list[dict[str, Any]] = []
        client.meta.events.register(
            "before-call.sagemaker.CreateProcessingJob",
            lambda params, **_: self.requests.append(json.loads(params["body"])),
        )


@pytest.fixture
def sagemaker(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Sent]:
    """The SageMaker client the data-prep Lambda makes, with its requests recorded."""
    client = boto3.client("sagemaker")
    monkeypatch.setattr(processing, "_client", lambda: client)
    return client, Sent(client)


@pytest.fixture
def big_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stack's Processing settings, with a limit any churn upload passes."""
    monkeypatch.setenv(processing.MAX_BYTES_ENV, "10000")
    monkeypatch.setenv(processing.IMAGE_ENV, IMAGE)
    monkeypatch.setenv(processing.ROLE_ENV, ROLE)
    monkeypatch.setenv(processing.INSTANCE_TYPE_ENV, "ml.m5.2xlarge")
    monkeypatch.setenv("LOCKGATE_ENV", "dev")


def test_an_upload_over_the_limit_is_handed_to_one_processing_job(
    lambda_env: Callable[[str], Any],
    churn_csv: Callable[..., Path],
    sagemaker: tuple[Any, Sent],
    big_files: None,
) -> None:
    client, sent = sagemaker
    s3 = lambda_env(f"s3://{RECORDED_BUCKET}")
    s3.upload_file(str(churn_csv(rows=800)), RECORDED_BUCKET, KEY)

    first = lambda_data.handler(recorded("put_nested_unicode.json"), context())

    (prepared,) = first["prepared"]
    assert prepared["status"] == "handed_off"
    name = f"lockgate-dev-prep-{prepared['version'].removeprefix('dv-')}"
    assert f"SageMaker Processing job {name} started" in prepared["message"]
    # Nothing was prepared here: the job does that.
    assert "Contents" not in s3.list_objects_v2(Bucket=RECORDED_BUCKET, Prefix="processed/")
    (request,) = sent.requests
    assert request["ProcessingJobName"] == name
    assert request["AppSpecification"] == {
        "ImageUri": IMAGE,
        "ContainerEntrypoint": ["python", "-m", "lockgate.aws.processing"],
    }
    assert request["RoleArn"] == ROLE
    assert request["ProcessingResources"]["ClusterConfig"] == {
        "InstanceCount": 1,
        "InstanceType": "ml.m5.2xlarge",
        "VolumeSizeInGB": processing.MIN_VOLUME_GB,
    }
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": processing.MAX_RUNTIME}
    environment = request["Environment"]
    assert environment["LOCKGATE_STORE"] == f"s3://{RECORDED_BUCKET}"
    assert environment["LOCKGATE_ENV"] == "dev"
    assert environment["LOCKGATE_CONFIG"] == os.environ["LOCKGATE_CONFIG"]
    assert environment["LOCKGATE_DATASET"] == "churn"
    assert environment["LOCKGATE_TRIGGER"] == f"lambda:req-1 {KEY} via {name}"
    assert environment["AWS_DEFAULT_REGION"] == "us-east-1"
    assert set(environment) == {
        "LOCKGATE_STORE",
        "LOCKGATE_ENV",
        "LOCKGATE_CONFIG",
        "LOCKGATE_DATASET",
        "LOCKGATE_TRIGGER",
        "AWS_DEFAULT_REGION",
    }
    secrets = {os.environ["AWS_SECRET_ACCESS_KEY"], os.environ["AWS_SESSION_TOKEN"]}
    assert not secrets & set(environment.values())
    assert client.describe_processing_job(ProcessingJobName=name)["RoleArn"] == ROLE

    (view,) = recent_runs(open_store(f"s3://{RECORDED_BUCKET}"), "data")
    assert view.state == "succeeded"
    assert view.record["outputs"]["status"] == "handed_off"
    assert view.record["outputs"]["processing_job"] == name
    assert view.record["inputs"]["raw_keys"] == [KEY]
    assert view.record["inputs"]["raw_bytes"] > 10000

    # A duplicate event finds the job and starts no second one.
    again = lambda_data.handler(recorded("put_nested_unicode.json"), context())
    assert f"{name} already there (Completed)" in again["prepared"][0]["message"]
    assert len(sent.requests) == 1


def test_a_stopped_job_gets_a_second_attempt_under_a_new_name(
    lambda_env: Callable[[str], Any],
    churn_csv: Callable[..., Path],
    sagemaker: tuple[Any, Sent],
    big_files: None,
) -> None:
    client, sent = sagemaker
    s3 = lambda_env(f"s3://{RECORDED_BUCKET}")
    s3.upload_file(str(churn_csv(rows=700, seed=5)), RECORDED_BUCKET, KEY)
    first = lambda_data.handler(recorded("put_nested_unicode.json"), context())
    name = sent.requests[0]["ProcessingJobName"]
    client.stop_processing_job(ProcessingJobName=name)

    again = lambda_data.handler(recorded("put_nested_unicode.json"), context())

    assert first["prepared"][0]["version"] == again["prepared"][0]["version"]
    assert [request["ProcessingJobName"] for request in sent.requests] == [name, f"{name}-r2"]
    assert f"{name}-r2 started" in again["prepared"][0]["message"]


def test_below_the_limit_the_lambda_prepares_the_upload_itself(
    lambda_env: Callable[[str], Any],
    churn_csv: Callable[..., Path],
    sagemaker: tuple[Any, Sent],
    big_files: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _client, sent = sagemaker
    monkeypatch.setenv(processing.MAX_BYTES_ENV, str(1024**3))
    s3 = lambda_env(f"s3://{RECORDED_BUCKET}")
    s3.upload_file(str(churn_csv(rows=600)), RECORDED_BUCKET, KEY)

    result = lambda_data.handler(recorded("put_nested_unicode.json"), context())

    assert result["prepared"][0]["status"] == "committed"
    assert sent.requests == []


def test_over_the_limit_without_the_processing_settings_says_what_to_do(
    lambda_env: Callable[[str], Any],
    churn_csv: Callable[..., Path],
    sagemaker: tuple[Any, Sent],
    big_files: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(processing.ROLE_ENV)
    s3 = lambda_env(f"s3://{RECORDED_BUCKET}")
    s3.upload_file(str(churn_csv(rows=600)), RECORDED_BUCKET, KEY)
    with pytest.raises(ConfigError, match=r"LOCKGATE_PROCESSING_ROLE_ARN is not.*aws deploy"):
        lambda_data.handler(recorded("put_nested_unicode.json"), context())


def test_a_job_created_by_a_concurrent_duplicate_event_is_used(aws_env: str) -> None:
    client = boto3.client("sagemaker")  # credentials from aws_env; Stubber answers
    request = processing.job_request(
        "lockgate-dev-prep-0123456789abcdef",
        processing.ProcessingSettings(IMAGE, ROLE),
        {"LOCKGATE_DATASET": "churn"},
        raw_bytes=200 * 1024**3,
    )
    assert request["ProcessingResources"]["ClusterConfig"]["VolumeSizeInGB"] == 610
    missing = "Could not find requested job with name lockgate-dev-prep-0123456789abcdef"
    with Stubber(client) as stubber:
        stubber.add_client_error("describe_processing_job", "ValidationException", missing)
        stubber.add_client_error("create_processing_job", "ResourceInUse", "already exists")
        stubber.add_response(
            "describe_processing_job",
            {
                "ProcessingJobName": request["ProcessingJobName"],
                "ProcessingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:processing-job/x",
                "ProcessingJobStatus": "InProgress",
                "AppSpecification": request["AppSpecification"],
                "ProcessingResources": request["ProcessingResources"],
                "CreationTime": "2026-11-20T12:00:00Z",
            },
            {"ProcessingJobName": request["ProcessingJobName"]},
        )
        job = SageMakerProcessing(client).start(request)
        stubber.assert_no_pending_responses()
    assert (job.name, job.status, job.started) == (
        request["ProcessingJobName"],
        "InProgress",
        False,
    )


def test_a_refused_job_says_which_permission_is_missing(aws_env: str) -> None:
    client = boto3.client("sagemaker")  # credentials from aws_env; Stubber answers
    request = processing.job_request(
        "lockgate-dev-prep-0123456789abcdef", processing.ProcessingSettings(IMAGE, ROLE), {}, 1
    )
    with Stubber(client) as stubber, pytest.raises(ProcessingError) as caught:
        stubber.add_client_error("describe_processing_job", "ValidationException", "Could not find")
        stubber.add_client_error("create_processing_job", "AccessDeniedException", "not allowed")
        SageMakerProcessing(client).start(request)
    assert str(caught.value) == (
        "SageMaker CreateProcessingJob of lockgate-dev-prep-0123456789abcdef was refused "
        "(AccessDeniedException): allow sagemaker:CreateProcessingJob on "
        "processing-job/lockgate-dev-prep-0123456789abcdef and iam:PassRole on the SageMaker role"
    )


# -- the job's entrypoint, as SageMaker runs it ------------------------------------------------


def run_job(store_uri: str, config: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "LOCKGATE_STORE": store_uri,
        "LOCKGATE_ENV": "dev",
        "LOCKGATE_CONFIG": str(config),
        "LOCKGATE_DATASET": "churn",
        **extra,
    }
    return subprocess.run(  # this interpreter, fixed arguments
        [sys.executable, "-m", "lockgate.aws.processing"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_job_prepares_every_raw_object_of_the_dataset(
    lambda_env: Callable[[str], Any], churn_csv: Callable[..., Path]
) -> None:
    s3 = lambda_env(f"s3://{RECORDED_BUCKET}")
    s3.upload_file(str(churn_csv("a.csv", rows=500, seed=1)), RECORDED_BUCKET, "raw/churn/a.csv")
    s3.upload_file(str(churn_csv("b.csv", rows=400, seed=2)), RECORDED_BUCKET, "raw/churn/b.csv")

    done = run_job(
        f"s3://{RECORDED_BUCKET}",
        Path(os.environ["LOCKGATE_CONFIG"]),
        LOCKGATE_TRIGGER="lambda:req-1 raw/churn/b.csv via lockgate-dev-prep-abc",
    )

    assert done.returncode == 0, done.stderr
    (view,) = recent_runs(open_store(f"s3://{RECORDED_BUCKET}"), "data")
    assert view.state == "succeeded" and view.record["outputs"]["status"] == "committed"
    assert view.record["outputs"]["rows"]["total"] == 900
    assert view.record["trigger"] == {
        "kind": "lambda",
        "detail": "req-1 raw/churn/b.csv via lockgate-dev-prep-abc",
    }
    version = view.record["outputs"]["version"]
    assert f"committed churn {version}: 900 rows" in done.stdout
    manifest = s3.get_object(Bucket=RECORDED_BUCKET, Key=f"processed/churn/{version}/manifest.json")
    assert [s["key"] for s in json.loads(manifest["Body"].read())["sources"]] == [
        "raw/churn/a.csv",
        "raw/churn/b.csv",
    ]


def test_a_job_that_makes_no_version_exits_non_zero_with_one_line(
    lambda_env: Callable[[str], Any],
) -> None:
    s3 = lambda_env(f"s3://{RECORDED_BUCKET}")
    s3.put_object(Bucket=RECORDED_BUCKET, Key="raw/churn/broken.csv", Body=b"\x00\x01garbage")

    done = run_job(f"s3://{RECORDED_BUCKET}", Path(os.environ["LOCKGATE_CONFIG"]))

    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("error: churn: all_quarantined: all 1 raw file(s) were rejected")

    missing = run_job(
        f"s3://{RECORDED_BUCKET}", Path(os.environ["LOCKGATE_CONFIG"]), LOCKGATE_DATASET="nope"
    )
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1
    assert missing.stderr.startswith("error: dataset 'nope' is not in")


def test_the_job_runs_the_image_the_lambda_runs_not_the_stacks(
    images: SimpleNamespace, make_function: Callable[..., str]
) -> None:
    """After the workflow or image-sync moved the function to a newer digest, a hand-off
    takes that digest (read from Lambda), not the one the stack last set."""
    from lockgate.aws.lambda_data import running_image

    name = make_function(images.new)
    arn = images.aws.lam.get_function(FunctionName=name)["Configuration"]["FunctionArn"]
    context = SimpleNamespace(invoked_function_arn=arn)
    assert running_image(context, images.aws.lam) == f"{images.uri}@{images.new}"
    assert running_image(SimpleNamespace(), images.aws.lam) is None
    missing = SimpleNamespace(invoked_function_arn=arn + "-gone")
    assert running_image(missing, images.aws.lam) is None
