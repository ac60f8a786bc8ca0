"""The SageMaker endpoint adapter.

What moto implements (models, endpoint configurations, endpoints, describe, tags) runs against
moto's server over HTTP. moto has no ``UpdateEndpoint`` and every endpoint it creates is
InService at once, so updates, failures, rollbacks and timeouts run against a client whose
answers are scripted with botocore's Stubber (which also checks each request's parameters
against the API model).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import tarfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.stub import ANY, Stubber
from sklearn.linear_model import LogisticRegression

from lockgate.aws.s3_store import S3Store
from lockgate.aws.sagemaker_endpoint import (
    DeploymentTimedOut,
    SageMakerEndpoint,
    SageMakerError,
)
from lockgate.errors import ConfigError, IntegrityError
from lockgate.pipelines.training.archive import write_model_archive
from lockgate.pipelines.training.package import package_sha256
from lockgate.ports.endpoint import DeploymentFailed, DeployRequest
from tests.packages import make_package, prepare_churn

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/lockgate-serve@sha256:" + "ab" * 32
ROLE = "arn:aws:iam::123456789012:role/lockgate-endpoint"
ACCOUNT_ARN = "arn:aws:sagemaker:us-east-1:123456789012"
PACKAGE_FILES = ["model.pkl", "package.json", "schema.json", "transformer.pkl"]
NAME_RULE = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """Two churn packages with different models: version 1 and version 2."""
    root = tmp_path_factory.mktemp("packages")
    prepared = prepare_churn(root)
    return {
        1: make_package(prepared, root / "v1", version=1),
        2: make_package(
            prepared, root / "v2", model=LogisticRegression(C=0.05, max_iter=500), version=2
        ),
    }


def request_for(folder: Path, version: int, endpoint: str = "lockgate-dev") -> DeployRequest:
    return DeployRequest(
        env="dev",
        endpoint_name=endpoint,
        model="churn",
        version=version,
        package_sha256=package_sha256(folder),
        package_dir=folder,
        package_prefix=f"models/churn/{version}/",
        release_seq=version,
    )


class Calls:
    """The operations a client sent (SageMaker or S3), in order."""

    def __init__(self, client: Any) -> None:
        self.names: list[str] = []
        client.meta.events.register("before-parameter-build", self._record)

    def _record(self, model: Any, **_: Any) -> None:
        self.names.append(model.name)


class FakeTime:
    """A clock that moves only when the adapter sleeps: no real waiting."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def s3(aws_env: str) -> Any:
    return boto3.client("s3", endpoint_url=aws_env, region_name="us-east-1")


@pytest.fixture
def store(bucket: str, s3: Any) -> S3Store:
    return S3Store(f"s3://{bucket}/team", client=s3)


@pytest.fixture
def sagemaker(aws_env: str) -> Any:
    """A SageMaker client talking to the moto server."""
    return boto3.client("sagemaker", endpoint_url=aws_env, region_name="us-east-1")


@pytest.fixture
def endpoint_name() -> str:
    # the moto server lives for the session: every test gets an endpoint of its own
    return f"churn-{uuid.uuid4().hex[:10]}"


def make_endpoint(client: Any, store: S3Store, name: str, **options: Any) -> SageMakerEndpoint:
    return SageMakerEndpoint(
        client, store, endpoint_name=name, image_uri=IMAGE, role_arn=ROLE, **options
    )


def archive_members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        members = {member.name: archive.extractfile(member) for member in archive.getmembers()}
        return {name: content.read() for name, content in members.items() if content is not None}


# -- against moto's server -------------------------------------------------------------------


def test_deploy_creates_the_model_configuration_and_endpoint_from_the_uploaded_archive(
    packages: dict[int, Path], store: S3Store, sagemaker: Any, s3: Any, endpoint_name: str
) -> None:
    calls = Calls(sagemaker)
    endpoint = make_endpoint(
        sagemaker,
        store,
        endpoint_name,
        instance_type="ml.c5.xlarge",
        instance_count=2,
        capture_percent=25.0,
    )
    request = request_for(packages[1], 1, endpoint_name)

    deployment = endpoint.deploy(request)

    assert (deployment.state, deployment.endpoint) == ("serving", endpoint_name)
    assert deployment.package_sha256 == request.package_sha256
    assert calls.names == [
        "DescribeEndpoint",
        "CreateModel",
        "CreateEndpointConfig",
        "CreateEndpoint",
        "DescribeEndpoint",
    ]
    described = sagemaker.describe_endpoint(EndpointName=endpoint_name)
    assert described["EndpointStatus"] == "InService"
    config_name = described["EndpointConfigName"]
    assert config_name in deployment.detail
    config = sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
    (variant,) = config["ProductionVariants"]
    assert variant["VariantName"] == "AllTraffic"
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.c5.xlarge", 2)
    assert config["DataCaptureConfig"] == {
        "EnableCapture": True,
        "InitialSamplingPercentage": 25,
        "DestinationS3Uri": f"s3://{store.bucket}/team/monitoring/capture",
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {
            "CsvContentTypes": ["text/csv"],
            "JsonContentTypes": ["application/json"],
        },
    }
    model = sagemaker.describe_model(ModelName=variant["ModelName"])
    assert model["ExecutionRoleArn"] == ROLE
    assert model["PrimaryContainer"]["Image"] == IMAGE
    url = f"s3://{store.bucket}/team/models/churn/1/model.tar.gz"
    assert model["PrimaryContainer"]["ModelDataUrl"] == url
    assert variant["ModelName"].startswith(f"{endpoint_name}-v1-{request.package_sha256[:8]}-")
    tags = sagemaker.list_tags(ResourceArn=model["ModelArn"])["Tags"]
    assert {tag["Key"]: tag["Value"] for tag in tags} == {
        "lockgate:model": "churn",
        "lockgate:version": "1",
        "lockgate:package-sha256": request.package_sha256,
    }
    uploaded = s3.get_object(Bucket=store.bucket, Key="team/models/churn/1/model.tar.gz")
    members = archive_members(uploaded["Body"].read())
    assert sorted(members) == PACKAGE_FILES
    for name, data in members.items():
        assert data == (packages[1] / name).read_bytes(), name


def test_deploying_the_package_already_served_sends_no_change(
    packages: dict[int, Path], store: S3Store, sagemaker: Any, s3: Any, endpoint_name: str
) -> None:
    endpoint = make_endpoint(sagemaker, store, endpoint_name)
    request = request_for(packages[1], 1, endpoint_name)
    endpoint.deploy(request)
    sagemaker_calls, s3_calls = Calls(sagemaker), Calls(s3)

    again = endpoint.deploy(request)

    assert (again.state, again.package_sha256) == ("serving", request.package_sha256)
    assert again.detail.startswith("already serving ")
    assert sagemaker_calls.names == ["DescribeEndpoint"]
    assert s3_calls.names == []  # the archive is not uploaded again either


def test_status_reports_what_runs_and_the_package_it_serves(
    packages: dict[int, Path], store: S3Store, sagemaker: Any, endpoint_name: str
) -> None:
    endpoint = make_endpoint(sagemaker, store, endpoint_name)
    before = endpoint.status()
    request = request_for(packages[2], 2, endpoint_name)
    endpoint.deploy(request)

    after = endpoint.status()

    assert (before.state, before.package_sha256) == ("not_running", None)
    assert endpoint_name in before.detail
    assert (after.state, after.endpoint) == ("serving", endpoint_name)
    assert after.package_sha256 == request.package_sha256
    config_name = sagemaker.describe_endpoint(EndpointName=endpoint_name)["EndpointConfigName"]
    assert after.detail == f"InService on {config_name}"


def test_status_of_an_endpoint_lockgate_did_not_create_has_no_package(
    store: S3Store, sagemaker: Any, endpoint_name: str
) -> None:
    sagemaker.create_model(
        ModelName=endpoint_name, ExecutionRoleArn=ROLE, PrimaryContainer={"Image": IMAGE}
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=endpoint_name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": endpoint_name,
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    sagemaker.create_endpoint(EndpointName=endpoint_name, EndpointConfigName=endpoint_name)

    status = make_endpoint(sagemaker, store, endpoint_name).status()

    assert (status.state, status.package_sha256) == ("serving", None)


@pytest.mark.parametrize(
    ("percent", "enabled", "sampled"), [(0.0, False, 0), (0.4, True, 1), (37.6, True, 38)]
)
def test_capture_share_is_sent_in_whole_percents(
    packages: dict[int, Path],
    store: S3Store,
    sagemaker: Any,
    endpoint_name: str,
    percent: float,
    enabled: bool,
    sampled: int,
) -> None:
    endpoint = make_endpoint(sagemaker, store, endpoint_name, capture_percent=percent)
    endpoint.deploy(request_for(packages[1], 1, endpoint_name))

    config_name = sagemaker.describe_endpoint(EndpointName=endpoint_name)["EndpointConfigName"]
    capture = sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
    assert capture["DataCaptureConfig"]["EnableCapture"] is enabled
    assert capture["DataCaptureConfig"]["InitialSamplingPercentage"] == sampled


def test_names_of_a_long_endpoint_keep_to_sagemaker_rules(
    packages: dict[int, Path], store: S3Store, sagemaker: Any
) -> None:
    first = "a" * 40 + uuid.uuid4().hex[:10] + "-" + "b" * 12  # 63 characters
    second = first[:-1] + "c"  # same up to the cut
    models = []
    for name in (first, second):
        make_endpoint(sagemaker, store, name).deploy(request_for(packages[1], 1, name))
        config_name = sagemaker.describe_endpoint(EndpointName=name)["EndpointConfigName"]
        (variant,) = sagemaker.describe_endpoint_config(EndpointConfigName=config_name)[
            "ProductionVariants"
        ]
        for resource in (config_name, variant["ModelName"]):
            assert len(resource) <= 63 and NAME_RULE.fullmatch(resource), resource
        models.append(variant["ModelName"])
    assert models[0] != models[1]


def test_a_package_folder_that_is_not_the_release_is_refused_before_any_change(
    packages: dict[int, Path], store: S3Store, sagemaker: Any, s3: Any, endpoint_name: str
) -> None:
    calls, s3_calls = Calls(sagemaker), Calls(s3)
    request = request_for(packages[1], 1, endpoint_name)
    wrong = DeployRequest(**{**request.__dict__, "package_dir": packages[2]})

    with pytest.raises(IntegrityError, match="is not the package of release 1"):
        make_endpoint(sagemaker, store, endpoint_name).deploy(wrong)

    assert calls.names == ["DescribeEndpoint"]
    assert s3_calls.names == []


# -- the model archive -----------------------------------------------------------------------


def test_model_archive_is_the_same_bytes_for_the_same_package(
    packages: dict[int, Path], tmp_path: Path
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(packages[1], copy)
    for path in copy.iterdir():  # other times and a stray file: neither may change the bytes
        os.utime(path, (1_900_000_000, 1_900_000_000))
    (copy / "notes.txt").write_text("not part of the package", encoding="utf-8")

    first = write_model_archive(packages[1], tmp_path / "first.tar.gz").read_bytes()
    second = write_model_archive(copy, tmp_path / "second.tar.gz").read_bytes()
    other = write_model_archive(packages[2], tmp_path / "other.tar.gz").read_bytes()

    assert first == second
    assert first != other
    assert sorted(archive_members(first)) == PACKAGE_FILES
    with tarfile.open(tmp_path / "first.tar.gz", mode="r:gz") as archive:
        member = archive.getmember("model.pkl")
    assert (member.mtime, member.uid, member.gid, member.mode) == (0, 0, 0, 0o644)


def test_model_archive_refuses_a_changed_file(packages: dict[int, Path], tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(packages[1], copy)
    with open(copy / "model.pkl", "ab") as handle:
        handle.write(b"tampered")

    with pytest.raises(IntegrityError, match=r"model\.pkl has sha256"):
        write_model_archive(copy, tmp_path / "model.tar.gz")

    assert not (tmp_path / "model.tar.gz").exists()


# -- scripted answers (what moto does not do) ------------------------------------------------

OLD_CONFIG = "lockgate-dev-v1-11111111-aaaaaa"


@pytest.fixture
def stubbed(aws_env: str) -> Iterator[tuple[Any, Stubber]]:
    """A SageMaker client whose answers the test scripts; every scripted answer must be used."""
    client = boto3.client("sagemaker", endpoint_url=aws_env, region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def endpoint(stubbed: tuple[Any, Stubber], store: S3Store, time: FakeTime) -> SageMakerEndpoint:
    return make_endpoint(
        stubbed[0],
        store,
        "lockgate-dev",
        instance_count=2,
        poll_seconds=15.0,
        timeout_seconds=60.0,
        sleep=time.sleep,
        clock=time.clock,
    )


def expect_describe(
    stubber: Stubber, status: str, config: str, reason: str = "", pending: str = ""
) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    response: dict[str, Any] = {
        "EndpointName": "lockgate-dev",
        "EndpointArn": f"{ACCOUNT_ARN}:endpoint/lockgate-dev",
        "EndpointConfigName": config,
        "EndpointStatus": status,
        "CreationTime": now,
        "LastModifiedTime": now,
    }
    if reason:
        response["FailureReason"] = reason
    if pending:
        response["PendingDeploymentSummary"] = {"EndpointConfigName": pending}
    stubber.add_response("describe_endpoint", response, {"EndpointName": "lockgate-dev"})


def expect_no_endpoint(stubber: Stubber) -> None:
    stubber.add_client_error(
        "describe_endpoint",
        service_error_code="ValidationException",
        service_message=f"Could not find endpoint '{ACCOUNT_ARN}:endpoint/lockgate-dev'.",
        expected_params={"EndpointName": "lockgate-dev"},
    )


def expect_creates(
    stubber: Stubber,
    endpoint: SageMakerEndpoint,
    request: DeployRequest,
    *,
    exist: bool = False,
) -> None:
    """CreateModel and CreateEndpointConfig with the parameters a deploy must send;
    ``exist``: SageMaker answers that both already exist."""
    model_name = endpoint.model_name(request)
    config_name = endpoint.endpoint_config_name(request)
    tags = [
        {"Key": "lockgate:model", "Value": "churn"},
        {"Key": "lockgate:version", "Value": str(request.version)},
        {"Key": "lockgate:package-sha256", "Value": request.package_sha256},
    ]
    calls = [
        (
            "create_model",
            "model",
            {"ModelArn": f"{ACCOUNT_ARN}:model/{model_name}"},
            {
                "ModelName": model_name,
                "ExecutionRoleArn": ROLE,
                "PrimaryContainer": {
                    "Image": IMAGE,
                    "ModelDataUrl": endpoint.model_data_url(request),
                },
                "Tags": tags,
            },
        ),
        (
            "create_endpoint_config",
            "endpoint configuration",
            {"EndpointConfigArn": f"{ACCOUNT_ARN}:endpoint-config/{config_name}"},
            {
                "EndpointConfigName": config_name,
                "ProductionVariants": [
                    {
                        "VariantName": "AllTraffic",
                        "ModelName": model_name,
                        "InstanceType": "ml.m5.large",
                        "InitialInstanceCount": 2,
                        "InitialVariantWeight": 1.0,
                    }
                ],
                "DataCaptureConfig": ANY,  # its content is checked against moto above
                "Tags": tags,
            },
        ),
    ]
    for operation, kind, response, params in calls:
        if exist:
            stubber.add_client_error(
                operation,
                service_error_code="ValidationException",
                service_message=f'Cannot create already existing {kind} "{ACCOUNT_ARN}:{kind}".',
                expected_params=params,
            )
        else:
            stubber.add_response(operation, response, params)


def expect_update(stubber: Stubber, config_name: str) -> None:
    stubber.add_response(
        "update_endpoint",
        {"EndpointArn": f"{ACCOUNT_ARN}:endpoint/lockgate-dev"},
        {
            "EndpointName": "lockgate-dev",
            "EndpointConfigName": config_name,
            "RetainAllVariantProperties": False,
        },
    )


def expect_create_endpoint(stubber: Stubber, config_name: str) -> None:
    stubber.add_response(
        "create_endpoint",
        {"EndpointArn": f"{ACCOUNT_ARN}:endpoint/lockgate-dev"},
        {"EndpointName": "lockgate-dev", "EndpointConfigName": config_name},
    )


def expect_update_started(
    stubber: Stubber,
    endpoint: SageMakerEndpoint,
    request: DeployRequest,
    *,
    exist: bool = False,
    serving: str = OLD_CONFIG,
) -> str:
    """An endpoint serving ``serving``, then the calls that update it to ``request``'s package;
    returns the new configuration's name."""
    new = endpoint.endpoint_config_name(request)
    expect_describe(stubber, "InService", serving)
    expect_creates(stubber, endpoint, request, exist=exist)
    expect_update(stubber, new)
    return new


def test_update_waits_until_the_new_configuration_serves(
    stubbed: tuple[Any, Stubber],
    endpoint: SageMakerEndpoint,
    packages: dict[int, Path],
    time: FakeTime,
) -> None:
    _, stubber = stubbed
    request = request_for(packages[2], 2)
    new = expect_update_started(stubber, endpoint, request)
    expect_describe(stubber, "Updating", OLD_CONFIG, pending=new)
    expect_describe(stubber, "Updating", OLD_CONFIG, pending=new)
    expect_describe(stubber, "InService", new)

    deployment = endpoint.deploy(request)

    assert (deployment.state, deployment.endpoint) == ("serving", "lockgate-dev")
    assert deployment.package_sha256 == request.package_sha256
    assert deployment.detail == f"now serving {new}"
    assert time.slept == [15.0, 15.0]
    assert new.startswith(f"lockgate-dev-v2-{request.package_sha256[:8]}-")


def test_existing_model_and_configuration_are_reused(
    stubbed: tuple[Any, Stubber], endpoint: SageMakerEndpoint, packages: dict[int, Path]
) -> None:
    _, stubber = stubbed
    request = request_for(packages[2], 2)
    new = expect_update_started(stubber, endpoint, request, exist=True)
    expect_describe(stubber, "InService", new)

    assert endpoint.deploy(request).state == "serving"


def test_a_failed_update_is_rolled_back_and_the_old_configuration_keeps_serving(
    stubbed: tuple[Any, Stubber], endpoint: SageMakerEndpoint, packages: dict[int, Path]
) -> None:
    _, stubber = stubbed
    request = request_for(packages[2], 2)
    reason = (
        "The primary container for production variant AllTraffic did not pass the ping "
        "health check."
    )
    new = expect_update_started(stubber, endpoint, request)
    expect_describe(stubber, "Updating", OLD_CONFIG, pending=new)
    expect_describe(stubber, "RollingBack", OLD_CONFIG)
    expect_describe(stubber, "InService", OLD_CONFIG, reason=reason)

    with pytest.raises(DeploymentFailed) as failed:
        endpoint.deploy(request)

    message = str(failed.value)
    assert reason in message
    assert f"{OLD_CONFIG} keeps serving" in message
    assert "/aws/sagemaker/Endpoints/lockgate-dev" in message


def test_a_failed_creation_says_why_and_how_to_recover(
    stubbed: tuple[Any, Stubber], endpoint: SageMakerEndpoint, packages: dict[int, Path]
) -> None:
    _, stubber = stubbed
    request = request_for(packages[1], 1)
    config_name = endpoint.endpoint_config_name(request)
    expect_no_endpoint(stubber)
    expect_creates(stubber, endpoint, request)
    expect_create_endpoint(stubber, config_name)
    expect_describe(stubber, "Creating", config_name)
    expect_describe(stubber, "Failed", config_name, reason="Image not found in ECR.")

    with pytest.raises(DeploymentFailed) as failed:
        endpoint.deploy(request)

    message = str(failed.value)
    assert "Image not found in ECR." in message
    assert "nothing serves" in message
    assert "aws sagemaker delete-endpoint --endpoint-name lockgate-dev" in message


def test_waiting_gives_up_after_the_timeout_and_a_repeat_resumes_waiting(
    stubbed: tuple[Any, Stubber],
    endpoint: SageMakerEndpoint,
    packages: dict[int, Path],
    time: FakeTime,
) -> None:
    _, stubber = stubbed
    request = request_for(packages[2], 2)
    new = expect_update_started(stubber, endpoint, request)
    for _ in range(5):  # at 0, 15, 30, 45 and 60 s
        expect_describe(stubber, "Updating", OLD_CONFIG, pending=new)

    with pytest.raises(DeploymentTimedOut) as timed_out:
        endpoint.deploy(request)

    assert str(timed_out.value) == (
        f"endpoint 'lockgate-dev' is still Updating after 60 s deploying {new}; SageMaker "
        "carries on: check `lockgate status` and the CloudWatch log group "
        "/aws/sagemaker/Endpoints/lockgate-dev, and deploy again to wait for it"
    )
    assert time.slept == [15.0] * 4

    # deploying again creates nothing (the Stubber refuses unscripted calls): it waits
    expect_describe(stubber, "Updating", OLD_CONFIG, pending=new)
    expect_describe(stubber, "InService", new)
    assert endpoint.deploy(request).state == "serving"


def test_new_sizing_for_the_served_package_updates_the_endpoint(
    stubbed: tuple[Any, Stubber],
    endpoint: SageMakerEndpoint,
    store: S3Store,
    packages: dict[int, Path],
) -> None:
    _, stubber = stubbed
    request = request_for(packages[2], 2)
    one_instance = make_endpoint(stubbed[0], store, "lockgate-dev", instance_count=1)
    served = one_instance.endpoint_config_name(request)
    # the same package on two instances instead of one
    new = expect_update_started(stubber, endpoint, request, serving=served)
    expect_describe(stubber, "InService", new)

    assert endpoint.deploy(request).detail == f"now serving {new}"
    # the model is the same: only the endpoint configuration is new
    assert endpoint.model_name(request) == one_instance.model_name(request)


def test_a_new_image_for_the_same_package_is_a_new_model() -> None:
    request = DeployRequest(
        env="dev",
        endpoint_name="lockgate-dev",
        model="churn",
        version=2,
        package_sha256="0123456789abcdef" * 4,
        package_dir=Path("unused"),
        package_prefix="models/churn/2/",
        release_seq=1,
    )
    store = S3Store("s3://lockgate-example/team")
    endpoints = [
        SageMakerEndpoint(None, store, endpoint_name="lockgate-dev", image_uri=image, role_arn=ROLE)
        for image in (IMAGE, IMAGE[:-2] + "cd")
    ]

    models = {endpoint.model_name(request) for endpoint in endpoints}
    configs = {endpoint.endpoint_config_name(request) for endpoint in endpoints}

    assert len(models) == len(configs) == 2
    assert all(name.startswith("lockgate-dev-v2-01234567-") for name in models | configs)


@pytest.mark.parametrize("status", ["Updating", "SystemUpdating", "Creating"])
def test_an_endpoint_busy_with_another_change_is_not_touched(
    stubbed: tuple[Any, Stubber],
    endpoint: SageMakerEndpoint,
    packages: dict[int, Path],
    status: str,
) -> None:
    _, stubber = stubbed
    expect_describe(stubber, status, OLD_CONFIG, pending="someone-elses-config")

    with pytest.raises(SageMakerError, match=f"is {status} with another configuration"):
        endpoint.deploy(request_for(packages[2], 2))


def test_a_failed_endpoint_must_be_deleted_first(
    stubbed: tuple[Any, Stubber], endpoint: SageMakerEndpoint, packages: dict[int, Path]
) -> None:
    _, stubber = stubbed
    expect_describe(stubber, "Failed", OLD_CONFIG, reason="Out of capacity.")

    with pytest.raises(SageMakerError) as refused:
        endpoint.deploy(request_for(packages[2], 2))

    assert "Out of capacity." in str(refused.value)
    assert "aws sagemaker delete-endpoint --endpoint-name lockgate-dev" in str(refused.value)


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        (
            "AccessDeniedException",
            "User: arn:aws:sts::123456789012:assumed-role/dev is not authorized to perform: "
            "sagemaker:CreateModel",
            "SageMaker CreateModel for endpoint 'lockgate-dev' was refused "
            "(AccessDeniedException): check the AWS credentials (AWS_PROFILE, aws sso login) "
            f"and that they allow sagemaker:CreateModel and iam:PassRole on {ROLE}",
        ),
        (
            "ValidationException",
            f"Could not assume role {ROLE}.\nPlease ensure that the role exists.",
            f"SageMaker CreateModel for endpoint 'lockgate-dev' failed: ValidationException "
            f"Could not assume role {ROLE}. Please ensure that the role exists. (check role_arn "
            f"{ROLE}: it must exist and trust sagemaker.amazonaws.com)",
        ),
    ],
)
def test_a_refused_call_is_one_line_naming_the_call_and_the_code(
    stubbed: tuple[Any, Stubber],
    endpoint: SageMakerEndpoint,
    packages: dict[int, Path],
    code: str,
    message: str,
    expected: str,
) -> None:
    _, stubber = stubbed
    expect_no_endpoint(stubber)
    stubber.add_client_error("create_model", service_error_code=code, service_message=message)

    with pytest.raises(SageMakerError) as refused:
        endpoint.deploy(request_for(packages[1], 1))

    assert str(refused.value) == expected
    assert refused.value.code == code


def test_an_unreachable_api_is_reported_with_what_to_check(aws_env: str, store: S3Store) -> None:
    client = boto3.client(
        "sagemaker",
        endpoint_url="http://127.0.0.1:9",  # discard port: nothing listens
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, connect_timeout=2),
    )

    with pytest.raises(SageMakerError, match="cannot reach SageMaker for DescribeEndpoint"):
        make_endpoint(client, store, "lockgate-dev").status()


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("InService", "serving"),
        ("Creating", "creating"),
        ("Updating", "updating"),
        ("SystemUpdating", "updating"),
        ("RollingBack", "updating"),
        ("Failed", "failed"),
        ("UpdateRollbackFailed", "failed"),
        ("OutOfService", "not_running"),
    ],
)
def test_status_maps_sagemaker_states(
    stubbed: tuple[Any, Stubber], endpoint: SageMakerEndpoint, status: str, state: str
) -> None:
    _, stubber = stubbed
    reason = "Out of capacity." if state == "failed" else ""
    expect_describe(stubber, status, OLD_CONFIG, reason=reason)
    arn = f"{ACCOUNT_ARN}:endpoint-config/{OLD_CONFIG}"
    stubber.add_response(
        "describe_endpoint_config",
        {
            "EndpointConfigName": OLD_CONFIG,
            "EndpointConfigArn": arn,
            "ProductionVariants": [{"VariantName": "AllTraffic"}],
            "CreationTime": datetime(2026, 1, 1, tzinfo=UTC),
        },
        {"EndpointConfigName": OLD_CONFIG},
    )
    stubber.add_response(
        "list_tags",
        {"Tags": [{"Key": "lockgate:package-sha256", "Value": "f" * 64}]},
        {"ResourceArn": arn},
    )

    deployment = endpoint.status()

    assert (deployment.state, deployment.package_sha256) == (state, "f" * 64)
    assert deployment.detail.startswith(f"{status} on {OLD_CONFIG}")
    assert ("Out of capacity." in deployment.detail) is bool(reason)


# -- configuration -----------------------------------------------------------------------------


def test_an_invalid_endpoint_name_or_a_local_store_is_refused(
    sagemaker: Any, store: S3Store, file_store: Any
) -> None:
    with pytest.raises(ConfigError, match="'lockgate-my_env' cannot name a SageMaker endpoint"):
        make_endpoint(sagemaker, store, "lockgate-my_env")
    with pytest.raises(ConfigError, match="reads its model from S3"):
        make_endpoint(sagemaker, file_store, "lockgate-dev")
