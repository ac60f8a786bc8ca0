"""Deploying an environment: change sets against moto's CloudFormation over HTTP.

moto creates the images stack's ECR repositories from the real template, so the first deploy
(repositories, then "push an image") runs end to end, through the real CLI too. What moto's
CloudFormation cannot do -- a failed resource, a rollback, a stack left busy -- comes from a
client whose answers botocore's Stubber scripts.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from lockgate.aws.environment import deploy, deployment_id, store_snippet
from lockgate.aws.stack import StackError, Stacks, template_body
from lockgate.config_aws import AwsConfig
from lockgate.errors import ConfigError


def offline_client(service: str) -> Any:
    """A client whose answers a Stubber scripts: it sends nothing."""
    return boto3.client(
        service,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",  # noqa: S106 - a stubbed client sends nothing
    )


def new_env() -> str:
    return "t" + uuid.uuid4().hex[:8]


@pytest.fixture
def session(aws_env: str) -> Any:
    return boto3.session.Session(region_name="us-east-1")


def test_the_first_deploy_creates_the_repositories_and_asks_for_an_image(session: Any) -> None:
    env = new_env()
    said: list[str] = []
    outcome = deploy(session, env, AwsConfig(), say=said.append)

    assert outcome.environment is None
    assert outcome.images.status == "CREATE_COMPLETE"
    assert any("Add AWS::ECR::Repository DataPrepRepository" in line for line in said)
    repositories = session.client("ecr").describe_repositories(
        repositoryNames=[f"lockgate-{env}-data-prep", f"lockgate-{env}-sagemaker"]
    )["repositories"]
    # moto keeps the tag mutability; it drops the scan setting (the template tests check it).
    assert {r["imageTagMutability"] for r in repositories} == {"IMMUTABLE"}
    # moto's change sets leave the stack without outputs; deploy then asks ECR for the URI.
    uri = next(r["repositoryUri"] for r in repositories if r["repositoryName"].endswith("-prep"))
    assert outcome.next_step is not None
    assert uri in outcome.next_step
    assert f"lockgate aws deploy --env {env}" in outcome.next_step


def test_deploying_an_unchanged_template_changes_nothing(session: Any) -> None:
    stacks = Stacks(session.client("cloudformation"), poll_seconds=0.05)
    env = new_env()
    name = f"lockgate-{env}-images"
    body = template_body("images")
    first = stacks.deploy(name, body, {"EnvName": env})
    said: list[str] = []
    again = stacks.deploy(name, body, {"EnvName": env}, say=said.append)

    assert first.changed
    assert not again.changed
    assert said == [f"{name}: no changes"]
    assert again.outputs == first.outputs


@pytest.mark.parametrize("env", ["Prod", "team_a", "a-very-long-env", "9lives"])
def test_an_environment_name_aws_cannot_take_is_refused_before_any_call(env: str) -> None:
    with pytest.raises(ConfigError, match="lower-case letter"):
        deploy(_FakeSession({}), env, AwsConfig())


def test_cli_deploy_then_status_against_moto(aws_env: str, tmp_path: Path) -> None:
    """`lockgate aws deploy` and `status` as a user runs them, boto3 pointed at moto."""
    env = new_env()
    config = tmp_path / "lockgate.toml"
    config.write_text(f'[envs.{env}.aws]\nregion = "us-east-1"\n')
    environ = dict(os.environ)

    def lockgate(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "lockgate", "--config", str(config), *args],
            capture_output=True,
            text=True,
            env=environ,
            timeout=120,
            check=False,
        )

    deployed = lockgate("aws", "deploy", "--env", env)
    assert deployed.returncode == 0, deployed.stderr
    assert "next:" in deployed.stdout
    assert f"lockgate-{env}-data-prep" in deployed.stdout

    status = lockgate("aws", "status", "--env", env)
    assert status.returncode == 0, status.stderr
    assert f"lockgate-{env}-images" in status.stdout
    assert "CREATE_COMPLETE" in status.stdout
    assert f"lockgate-{env} " in status.stdout and "not deployed" in status.stdout

    bad = lockgate("aws", "deploy", "--env", env, "--image-digest", "latest")
    assert bad.returncode == 1
    assert "sha256:" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_the_environment_stack_is_deployed_pinned_to_the_newest_digest() -> None:
    """Once an image is pushed, deploy passes its digest; the change set is what CloudFormation
    gets (moto's CloudFormation cannot create the whole environment stack: see
    tests/aws/test_templates.py)."""
    client = offline_client("cloudformation")
    ecr = offline_client("ecr")
    digest = "sha256:" + "ab" * 32
    uri = "123456789012.dkr.ecr.us-east-1.amazonaws.com/lockgate-dev-data-prep"
    stub, ecr_stub = Stubber(client), Stubber(ecr)
    images = {
        "StackName": "lockgate-dev-images",
        "StackStatus": "CREATE_COMPLETE",
        "CreationTime": "2026-11-26T10:00:00Z",
        "Outputs": [{"OutputKey": "DataPrepRepositoryUri", "OutputValue": uri}],
    }
    stub.add_response("describe_stacks", {"Stacks": [images]}, {"StackName": ANY})
    stub.add_response("create_change_set", {"Id": "cs"}, _change_set_request("UPDATE"))
    stub.add_response(
        "describe_change_set",
        {"Status": "FAILED", "StatusReason": "The submitted information didn't contain changes."},
        {"StackName": ANY, "ChangeSetName": ANY},
    )
    stub.add_response("delete_change_set", {}, {"StackName": ANY, "ChangeSetName": ANY})
    stub.add_response("describe_stacks", {"Stacks": [images]}, {"StackName": ANY})
    ecr_stub.add_response(
        "describe_images",
        {
            "imageDetails": [
                {
                    "imageDigest": "sha256:" + "00" * 32,
                    "imageTags": ["sha-old"],
                    "imagePushedAt": "2026-11-20T10:00:00Z",
                },
                {
                    "imageDigest": digest,
                    "imageTags": ["sha-new"],
                    "imagePushedAt": "2026-11-25T10:00:00Z",
                },
            ]
        },
        {"repositoryName": "lockgate-dev-data-prep"},
    )
    stub.add_client_error(
        "describe_stacks",
        service_error_code="ValidationError",
        service_message="Stack with id lockgate-dev does not exist",
    )
    sent: dict[str, Any] = {}
    client.meta.events.register("provide-client-params.cloudformation.CreateChangeSet", _keep(sent))
    stub.add_response("create_change_set", {"Id": "cs2"}, _change_set_request("CREATE"))
    stub.add_response(
        "describe_change_set",
        {"Status": "CREATE_COMPLETE", "Changes": []},
        {"StackName": ANY, "ChangeSetName": ANY},
    )
    stub.add_response("execute_change_set", {}, {"StackName": ANY, "ChangeSetName": ANY})
    done = {**images, "StackName": "lockgate-dev", "Outputs": []}
    stub.add_response("describe_stacks", {"Stacks": [done]}, {"StackName": ANY})
    stub.add_response("describe_stacks", {"Stacks": [done]}, {"StackName": ANY})

    session = _FakeSession({"cloudformation": client, "ecr": ecr})
    with stub, ecr_stub:
        outcome = deploy(
            session,
            "dev",
            AwsConfig(parameters={"DataPrepMemorySize": "3008"}),
            monitoring_schedule="cron(0 6 ? * MON *)",
            stacks=Stacks(client, poll_seconds=0),
        )
    assert outcome.image_uri == f"{uri}@{digest}"
    parameters = {p["ParameterKey"]: p["ParameterValue"] for p in sent["Parameters"]}
    assert re.fullmatch(r"[0-9a-f]{16}", parameters.pop("DeploymentId"))
    assert parameters == {
        "EnvName": "dev",
        "DataPrepImageUri": f"{uri}@{digest}",
        "DataPrepMemorySize": "3008",
        "MonitoringSchedule": "cron(0 6 ? * MON *)",
        "EndpointName": "lockgate-dev",
    }
    assert sent["Capabilities"] == ["CAPABILITY_NAMED_IAM"]


def _keep(sent: dict[str, Any]) -> Any:
    def handler(params: dict[str, Any], **_kwargs: Any) -> None:
        sent.update(params)

    return handler


def _change_set_request(kind: str) -> dict[str, Any]:
    return {
        "StackName": ANY,
        "ChangeSetName": ANY,
        "ChangeSetType": kind,
        "TemplateBody": ANY,
        "Parameters": ANY,
        "Capabilities": ["CAPABILITY_NAMED_IAM"],
        "Tags": ANY,
    }


class _FakeSession:
    def __init__(self, clients: dict[str, Any]) -> None:
        self.clients = clients
        self.region_name = "us-east-1"

    def client(self, name: str) -> Any:
        return self.clients[name]


def test_a_failed_update_names_the_resource_and_cloudformations_reason() -> None:
    client = offline_client("cloudformation")
    stub = Stubber(client)
    stack = {
        "StackName": "lockgate-dev",
        "StackStatus": "UPDATE_COMPLETE",
        "CreationTime": "2026-11-26T10:00:00Z",
    }
    stub.add_response("describe_stacks", {"Stacks": [stack]}, {"StackName": "lockgate-dev"})
    stub.add_response("create_change_set", {"Id": "cs"}, _change_set_request("UPDATE"))
    stub.add_response(
        "describe_change_set",
        {
            "Status": "CREATE_COMPLETE",
            "Changes": [
                {
                    "Type": "Resource",
                    "ResourceChange": {
                        "Action": "Modify",
                        "LogicalResourceId": "DataPrepFunction",
                        "ResourceType": "AWS::Lambda::Function",
                        "Replacement": "False",
                    },
                }
            ],
        },
        {"StackName": ANY, "ChangeSetName": ANY},
    )
    stub.add_response("execute_change_set", {}, {"StackName": ANY, "ChangeSetName": ANY})
    rolled_back = {**stack, "StackStatus": "UPDATE_ROLLBACK_COMPLETE"}
    stub.add_response("describe_stacks", {"Stacks": [rolled_back]}, {"StackName": ANY})
    stub.add_response(
        "describe_stack_events",
        {
            "StackEvents": [
                {
                    "StackId": "id",
                    "EventId": "2",
                    "StackName": "lockgate-dev",
                    "Timestamp": "2026-11-26T10:01:00Z",
                    "LogicalResourceId": "lockgate-dev",
                    "ResourceType": "AWS::CloudFormation::Stack",
                    "ResourceStatus": "UPDATE_ROLLBACK_IN_PROGRESS",
                },
                {
                    "StackId": "id",
                    "EventId": "1",
                    "StackName": "lockgate-dev",
                    "Timestamp": "2026-11-26T10:00:30Z",
                    "LogicalResourceId": "DataPrepFunction",
                    "ResourceType": "AWS::Lambda::Function",
                    "ResourceStatus": "UPDATE_FAILED",
                    "ResourceStatusReason": "Source image ... does not exist",
                },
                {
                    "StackId": "id",
                    "EventId": "0",
                    "StackName": "lockgate-dev",
                    "Timestamp": "2026-11-26T10:00:00Z",
                    "LogicalResourceId": "lockgate-dev",
                    "ResourceType": "AWS::CloudFormation::Stack",
                    "ResourceStatus": "UPDATE_IN_PROGRESS",
                    "ResourceStatusReason": "User Initiated",
                },
                {  # a failure of an earlier deploy: not this one's reason
                    "StackId": "id",
                    "EventId": "-1",
                    "StackName": "lockgate-dev",
                    "Timestamp": "2026-11-25T10:00:00Z",
                    "LogicalResourceId": "AlertTopic",
                    "ResourceType": "AWS::SNS::Topic",
                    "ResourceStatus": "UPDATE_FAILED",
                    "ResourceStatusReason": "an old failure",
                },
            ]
        },
        {"StackName": "lockgate-dev"},
    )
    said: list[str] = []
    with stub, pytest.raises(StackError) as raised:
        Stacks(client, poll_seconds=0).deploy(
            "lockgate-dev", "{}", {"EnvName": "dev"}, say=said.append
        )
    assert "UPDATE_ROLLBACK_COMPLETE" in str(raised.value)
    assert "DataPrepFunction (AWS::Lambda::Function): Source image" in str(raised.value)
    assert said == ["lockgate-dev: Modify AWS::Lambda::Function DataPrepFunction"]


def test_a_first_change_set_never_run_does_not_block_the_next_deploy() -> None:
    """A refused or interrupted first deploy leaves the stack in REVIEW_IN_PROGRESS; the next
    deploy makes a CREATE change set again. (moto leaves such a stack in REVIEW_IN_PROGRESS
    even after executing the second change set, so CloudFormation's answers are scripted.)"""
    client = offline_client("cloudformation")
    stub = Stubber(client)
    stack = {
        "StackName": "lockgate-dev-images",
        "StackStatus": "REVIEW_IN_PROGRESS",
        "CreationTime": "2026-11-26T10:00:00Z",
    }
    stub.add_response("describe_stacks", {"Stacks": [stack]}, {"StackName": ANY})
    stub.add_response("create_change_set", {"Id": "cs"}, _change_set_request("CREATE"))
    stub.add_response(
        "describe_change_set",
        {"Status": "CREATE_COMPLETE", "Changes": []},
        {"StackName": ANY, "ChangeSetName": ANY},
    )
    stub.add_response("execute_change_set", {}, {"StackName": ANY, "ChangeSetName": ANY})
    done = {**stack, "StackStatus": "CREATE_COMPLETE"}
    stub.add_response("describe_stacks", {"Stacks": [done]}, {"StackName": ANY})
    stub.add_response("describe_stacks", {"Stacks": [done]}, {"StackName": ANY})
    with stub:
        result = Stacks(client, poll_seconds=0).deploy(
            "lockgate-dev-images", "{}", {"EnvName": "dev"}
        )
        stub.assert_no_pending_responses()
    assert result.changed and result.status == "CREATE_COMPLETE"


def test_a_stack_whose_first_create_failed_must_be_deleted_first() -> None:
    client = offline_client("cloudformation")
    stub = Stubber(client)
    stub.add_response(
        "describe_stacks",
        {
            "Stacks": [
                {
                    "StackName": "lockgate-dev",
                    "StackStatus": "ROLLBACK_COMPLETE",
                    "CreationTime": "2026-11-26T10:00:00Z",
                }
            ]
        },
        {"StackName": "lockgate-dev"},
    )
    with stub, pytest.raises(StackError, match="delete-stack --stack-name lockgate-dev"):
        Stacks(client).deploy("lockgate-dev", "{}", {})


@pytest.mark.parametrize("owned", ["EnvName", "DataPrepImageUri", "MonitoringSchedule"])
def test_parameters_deploy_sets_itself_cannot_be_overridden(owned: str) -> None:
    with pytest.raises(ConfigError, match=f"parameters sets {owned}"):
        deploy(_FakeSession({}), "dev", AwsConfig(parameters={owned: "x"}))


def test_the_deployment_id_follows_every_change_of_template_or_parameter() -> None:
    """It makes a deploy that changes only configuration publish new Lambda versions."""
    body = template_body("environment")
    parameters = {"EnvName": "dev", "DataPrepMemorySize": "3008"}
    first = deployment_id(body, parameters)
    assert deployment_id(body, dict(reversed(parameters.items()))) == first
    assert deployment_id(body, {**parameters, "DataPrepMemorySize": "4096"}) != first
    assert deployment_id(body + "\n# changed", parameters) != first


def test_the_snippet_names_the_store_the_stack_made() -> None:
    snippet = store_snippet("dev", {"StoreUri": "s3://lockgate-dev-1-us-east-1/"})
    assert '[envs.dev]\nstore = "s3://lockgate-dev-1-us-east-1/"' in snippet
    assert 'compute = "sagemaker"' in snippet
