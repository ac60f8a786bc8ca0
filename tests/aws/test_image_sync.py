"""The image sync against moto's ECR and Lambda over HTTP, and its retries with Stubber.

What moto does here (measured with moto 5.2): ECR computes an image's digest from its layer
digests (so two manifests with different layers have different digests) and records
``imagePushedAt`` in whole seconds; Lambda validates an ``ImageUri`` against its ECR only with
``MOTO_LAMBDA_STUB_ECR=false``, and then its ``ResolvedImageUri`` ends in the image's digest
(after a malformed ``@sha256@`` middle that the sync does not read); versions, aliases and
``LastUpdateStatus`` work. moto never answers ResourceConflictException nor an update still in
progress, so the conflict retries and the wait run against a Lambda client whose answers are
scripted with botocore's Stubber (which checks each request against the API model); their ECR
side is still moto's.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber

from lockgate.aws import image_sync
from lockgate.aws.image_sync import ImageSyncError, latest_digest, sync_image
from tests.aws.lambda_logs import restored_logging

# lockgate-<env>-data-prep for an environment of this run alone: the moto server is shared with
# the stack tests, which create lockgate-dev-data-prep themselves.
REPOSITORY = f"lockgate-t{uuid.uuid4().hex[:8]}-data-prep"
EVENT = Path(__file__).parent.parent / "fixtures" / "events" / "ecr-push.json"
TRUST = {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}}
ROLE_POLICY = {"Version": "2012-10-17", "Statement": [{**TRUST, "Action": "sts:AssumeRole"}]}


def manifest(layer: str) -> str:
    """A Docker image manifest with one layer; moto derives the digest from the layers."""
    docker = "application/vnd.docker."
    config = {"mediaType": docker + "container.image.v1+json", "size": 1000}
    config["digest"] = "sha256:" + hashlib.sha256(f"config {layer}".encode()).hexdigest()
    blob = {"mediaType": docker + "image.rootfs.diff.tar.gzip", "size": 2000}
    blob["digest"] = "sha256:" + hashlib.sha256(layer.encode()).hexdigest()
    kind = docker + "distribution.manifest.v2+json"
    return json.dumps({"schemaVersion": 2, "mediaType": kind, "config": config, "layers": [blob]})


def clients(endpoint: str) -> SimpleNamespace:
    """Clients of the shared moto server, for module-scoped fixtures (no monkeypatch there)."""
    options = {"endpoint_url": endpoint, "region_name": "us-east-1"}
    options |= {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    services = {"ecr": "ecr", "lam": "lambda", "iam": "iam"}
    return SimpleNamespace(**{key: boto3.client(name, **options) for key, name in services.items()})


@pytest.fixture(scope="module")
def images(moto_server: str) -> Iterator[SimpleNamespace]:
    """The data-prep repository with two pushed images: ``old`` first, ``new`` a second later."""
    aws = clients(moto_server)
    aws.ecr.create_repository(repositoryName=REPOSITORY)
    run = uuid.uuid4().hex[:8]
    old = aws.ecr.put_image(
        repositoryName=REPOSITORY, imageManifest=manifest(f"old {run}"), imageTag=f"sha-old{run}"
    )["image"]["imageId"]["imageDigest"]
    time.sleep(1.1)  # moto records imagePushedAt in whole seconds
    new = aws.ecr.put_image(
        repositoryName=REPOSITORY, imageManifest=manifest(f"new {run}"), imageTag=f"sha-new{run}"
    )["image"]["imageId"]["imageDigest"]
    assert old != new
    uri = aws.ecr.describe_repositories(repositoryNames=[REPOSITORY])["repositories"][0][
        "repositoryUri"
    ]
    role = aws.iam.create_role(
        RoleName=f"lockgate-sync-test-{run}", AssumeRolePolicyDocument=json.dumps(ROLE_POLICY)
    )["Role"]["Arn"]
    yield SimpleNamespace(old=old, new=new, uri=uri, role=role, aws=aws)
    aws.ecr.delete_repository(repositoryName=REPOSITORY, force=True)


@pytest.fixture
def make_function(images: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """``make_function(digest, alias=True)``: an image function at ``digest`` (version 1,
    alias ``live`` -> 1 unless ``alias`` is False); its name."""
    # moto's Lambda reads the image from its ECR (and resolves its digest) only with this.
    monkeypatch.setenv("MOTO_LAMBDA_STUB_ECR", "false")

    def make(digest: str, alias: bool = True) -> str:
        name = f"lockgate-dev-fn-{uuid.uuid4().hex[:10]}"
        images.aws.lam.create_function(
            FunctionName=name,
            Role=images.role,
            PackageType="Image",
            Code={"ImageUri": f"{images.uri}@{digest}"},
            Publish=True,
        )
        if alias:
            images.aws.lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
        return name

    return make


def serving(lam: Any, name: str) -> tuple[str, str]:
    """The digest the ``live`` alias runs and the alias's version."""
    response = lam.get_function(FunctionName=name, Qualifier="live")
    digest = response["Code"]["ResolvedImageUri"].rpartition("@")[2]
    return digest, response["Configuration"]["Version"]


def versions(lam: Any, name: str) -> list[str]:
    listed = lam.list_versions_by_function(FunctionName=name)["Versions"]
    return [item["Version"] for item in listed if item["Version"] != "$LATEST"]


def test_a_pushed_digest_updates_the_function_publishes_a_version_and_moves_the_alias(
    images: SimpleNamespace, make_function: Callable[..., str]
) -> None:
    lam = images.aws.lam
    name = make_function(images.old)

    (result,) = sync_image(
        lam, images.aws.ecr, repository=REPOSITORY, functions=[name], digest=images.new
    )

    assert result.changed and result.version == "2"
    assert (result.previous_digest, result.digest) == (images.old, images.new)
    assert serving(lam, name) == (images.new, "2")
    assert lam.get_function(FunctionName=name)["Code"]["ImageUri"] == f"{images.uri}@{images.new}"
    assert versions(lam, name) == ["1", "2"]

    # At-least-once delivery: the same push again changes nothing.
    (again,) = sync_image(
        lam, images.aws.ecr, repository=REPOSITORY, functions=[name], digest=images.new
    )
    assert not again.changed and again.version == "2"
    assert "already runs" in again.reason
    assert versions(lam, name) == ["1", "2"]
    assert serving(lam, name) == (images.new, "2")


def test_an_older_push_delivered_late_does_not_roll_the_function_back(
    images: SimpleNamespace, make_function: Callable[..., str]
) -> None:
    lam = images.aws.lam
    name = make_function(images.new)

    (result,) = sync_image(
        lam, images.aws.ecr, repository=REPOSITORY, functions=[name], digest=images.old
    )

    assert not result.changed
    assert result.previous_digest == images.new and result.version == "1"
    assert "out of order" in result.reason
    assert serving(lam, name) == (images.new, "1")
    assert versions(lam, name) == ["1"]


def test_without_a_digest_the_newest_tagged_image_is_used_and_a_missing_alias_is_created(
    images: SimpleNamespace, make_function: Callable[..., str]
) -> None:
    lam = images.aws.lam
    # An untagged image pushed last is not what a sync picks: the lifecycle policy expires it.
    images.aws.ecr.put_image(repositoryName=REPOSITORY, imageManifest=manifest("untagged"))
    assert latest_digest(images.aws.ecr, REPOSITORY) == images.new
    name = make_function(images.old, alias=False)

    (result,) = sync_image(lam, images.aws.ecr, repository=REPOSITORY, functions=[name])

    assert result.changed and result.digest == images.new
    assert serving(lam, name) == (images.new, result.version)


def test_a_missing_function_fails_after_the_others_are_synced(
    images: SimpleNamespace, make_function: Callable[..., str]
) -> None:
    lam = images.aws.lam
    name = make_function(images.old)

    with pytest.raises(ImageSyncError) as caught:
        sync_image(
            lam,
            images.aws.ecr,
            repository=REPOSITORY,
            functions=["lockgate-dev-no-such-function", name],
            digest=images.new,
        )

    message = str(caught.value)
    assert message.startswith("lockgate-dev-no-such-function: Lambda refused GetFunction")
    assert "check LOCKGATE_SYNC_FUNCTIONS" in message and "\n" not in message
    assert [result.function for result in caught.value.results] == [name]
    assert serving(lam, name) == (images.new, "2")


def test_a_digest_that_is_not_in_the_repository_is_refused_before_any_change(
    images: SimpleNamespace, make_function: Callable[..., str]
) -> None:
    name = make_function(images.old)
    with pytest.raises(ImageSyncError, match=r"has no image sha256:0{12}.*describe-images"):
        sync_image(
            images.aws.lam,
            images.aws.ecr,
            repository=REPOSITORY,
            functions=[name],
            digest="sha256:" + "0" * 64,
        )
    assert serving(images.aws.lam, name) == (images.old, "1")


# -- the Lambda entrypoint -------------------------------------------------------------------


@pytest.fixture
def sync_env(
    aws_env: str, images: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[list[str]], None]]:
    """Configure the image-sync Lambda as the stack does; undo its cold start's logging."""
    monkeypatch.setenv("LOCKGATE_ENV", "dev")
    monkeypatch.setenv("LOCKGATE_SYNC_REPOSITORY", REPOSITORY)
    monkeypatch.setenv("LOCKGATE_SYNC_ALIAS", "live")
    monkeypatch.setattr(image_sync, "_started", False)
    monkeypatch.setattr(image_sync, "_clients", {})

    def use(functions: list[str]) -> None:
        monkeypatch.setenv("LOCKGATE_SYNC_FUNCTIONS", ",".join(functions))

    with restored_logging():
        yield use


def push_event(digest: str, **detail: str) -> dict[str, Any]:
    """The recorded push event, of ``digest`` (moto computes digests) to this run's repository."""
    event: dict[str, Any] = json.loads(EVENT.read_text(encoding="utf-8"))
    assert event["detail"]["repository-name"] == "lockgate-dev-data-prep"
    event["detail"].update({"repository-name": REPOSITORY, "image-digest": digest})
    event["detail"].update(detail)
    return event


def context() -> Any:
    return SimpleNamespace(aws_request_id="req-7", function_name="lockgate-dev-image-sync")


def test_the_handler_syncs_every_configured_function_and_logs_one_json_line_each(
    sync_env: Callable[[list[str]], None],
    images: SimpleNamespace,
    make_function: Callable[..., str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    data_prep, monitor = make_function(images.old), make_function(images.old)
    sync_env([data_prep, monitor])

    summary = image_sync.handler(push_event(images.new), context())

    assert summary["digest"] == images.new and summary["request_id"] == "req-7"
    assert summary["tag"].startswith("sha-")
    assert [(f["function"], f["changed"], f["version"]) for f in summary["functions"]] == [
        (data_prep, True, "2"),
        (monitor, True, "2"),
    ]
    for name in (data_prep, monitor):
        assert serving(images.aws.lam, name) == (images.new, "2")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    synced = [line for line in lines if line["event"].startswith("image_sync.")]
    assert [line["fields"]["function"] for line in synced] == [data_prep, monitor]
    assert all(line["event"] == "image_sync.updated" for line in synced)
    assert all(line["env"] == "dev" and line["pipeline"] == "deployment" for line in synced)

    # The same event delivered again: nothing changes, and the lines say so.
    again = image_sync.handler(push_event(images.new), context())
    assert [f["changed"] for f in again["functions"]] == [False, False]
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["event"] for line in lines] == ["image_sync.unchanged"] * 2
    assert versions(images.aws.lam, data_prep) == ["1", "2"]


@pytest.mark.parametrize(
    ("detail", "reason"),
    [
        ({"repository-name": "lockgate-dev-sagemaker"}, "a push to lockgate-dev-sagemaker"),
        ({"action-type": "DELETE"}, "an ECR DELETE with result SUCCESS"),
        ({"result": "FAILURE"}, "an ECR PUSH with result FAILURE"),
    ],
)
def test_the_handler_ignores_other_repositories_and_actions_and_says_why(
    sync_env: Callable[[list[str]], None],
    images: SimpleNamespace,
    make_function: Callable[..., str],
    capsys: pytest.CaptureFixture[str],
    detail: dict[str, str],
    reason: str,
) -> None:
    name = make_function(images.old)
    sync_env([name])

    summary = image_sync.handler(push_event(images.new, **detail), context())

    assert summary["ignored"].startswith(reason)
    assert serving(images.aws.lam, name) == (images.old, "1")
    (line,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert line["event"] == "image_sync.ignored" and reason in line["message"]


def test_the_handler_without_its_configuration_says_what_to_do(
    sync_env: Callable[[list[str]], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    from lockgate.errors import ConfigError

    monkeypatch.delenv("LOCKGATE_SYNC_FUNCTIONS", raising=False)
    with pytest.raises(ConfigError, match=r"LOCKGATE_SYNC_FUNCTIONS must be set.*lockgate aws"):
        image_sync.handler(push_event("sha256:" + "1" * 64), context())


# -- conflicts and waiting, scripted with Stubber ----------------------------------------------


FUNCTION = "lockgate-dev-data-prep"


class Script:
    """A Lambda client whose answers are scripted, each request checked against what the
    sync must send for ``FUNCTION`` at the ``new`` image."""

    def __init__(self, images: SimpleNamespace) -> None:
        self.client = boto3.client("lambda", config=Config(retries={"max_attempts": 0}))
        self.stubber = Stubber(self.client)
        self.image = f"{images.uri}@{images.new}"
        self.update = {"FunctionName": FUNCTION, "ImageUri": self.image, "Publish": True}
        code = {"RepositoryType": "ECR", "ResolvedImageUri": f"{images.uri}@{images.old}"}
        self.stubber.add_response(  # the function runs the old image
            "get_function",
            {"Configuration": {"Version": "1", "PackageType": "Image"}, "Code": code},
            {"FunctionName": FUNCTION, "Qualifier": "live"},
        )

    def conflict(self) -> None:
        message = f"An update is in progress for resource: {FUNCTION}"
        self.stubber.add_client_error(
            "update_function_code", "ResourceConflictException", message, 409, self.update
        )

    def updated(self, *looks: dict[str, str]) -> None:
        """Version 2 published; what each look at it finds."""
        self.stubber.add_response("update_function_code", {"Version": "2"}, self.update)
        for look in looks:
            query = {"FunctionName": FUNCTION, "Qualifier": "2"}
            self.stubber.add_response("get_function_configuration", look, query)


def sync(images: SimpleNamespace, script: Script, **options: Any) -> list[Any]:
    with script.stubber:
        return sync_image(
            script.client,
            images.aws.ecr,
            repository=REPOSITORY,
            functions=[FUNCTION],
            digest=images.new,
            **options,
        )


@pytest.mark.usefixtures("aws_env")  # credentials; Stubber answers every Lambda call
def test_an_update_in_progress_is_retried_with_exponential_backoff(images: SimpleNamespace) -> None:
    script = Script(images)
    script.conflict()
    script.conflict()
    script.updated(
        {"State": "Pending", "LastUpdateStatus": "InProgress"},
        {"State": "Active", "LastUpdateStatus": "Successful"},
    )
    alias = {"FunctionName": FUNCTION, "Name": "live", "FunctionVersion": "2"}
    script.stubber.add_response("update_alias", {"FunctionVersion": "2"}, alias)
    slept: list[float] = []

    (result,) = sync(images, script, sleep=slept.append)

    script.stubber.assert_no_pending_responses()  # 3 updates, 2 looks at the version, 1 alias
    assert result.changed and result.version == "2"
    # Backoff 1 s, 2 s for the two conflicts; then one wait while the version was updating.
    assert slept == [1.0, 2.0, image_sync.WAIT_DELAY]


@pytest.mark.usefixtures("aws_env")  # credentials; Stubber answers every Lambda call
def test_a_function_that_stays_busy_fails_with_what_to_do(images: SimpleNamespace) -> None:
    script = Script(images)
    for _ in range(3):
        script.conflict()
    slept: list[float] = []

    with pytest.raises(ImageSyncError) as caught:
        sync(images, script, retries=2, sleep=slept.append)

    script.stubber.assert_no_pending_responses()  # and no alias moved
    assert slept == [1.0, 2.0]
    assert str(caught.value) == (
        f"{FUNCTION}: Lambda function {FUNCTION} stayed busy with another update "
        f"(3 attempts of UpdateFunctionCode); wait for it (aws lambda wait function-updated-v2 "
        f"--function-name {FUNCTION}) and sync again"
    )


@pytest.mark.usefixtures("aws_env")  # credentials; Stubber answers every Lambda call
def test_a_failed_update_is_reported_with_lambdas_reason_and_the_alias_stays(
    images: SimpleNamespace,
) -> None:
    script = Script(images)
    script.updated(
        {
            "State": "Failed",
            "LastUpdateStatus": "Failed",
            "LastUpdateStatusReason": "Lambda does not have permission to access the ECR image",
            "LastUpdateStatusReasonCode": "ImageAccessDenied",
        }
    )

    with pytest.raises(ImageSyncError, match="permission to access the ECR image"):
        sync(images, script, sleep=lambda _seconds: None)

    script.stubber.assert_no_pending_responses()  # and no alias moved
