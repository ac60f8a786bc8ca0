"""The environment's stacks deployed on moto's CloudFormation, with what moto supports.

moto 5.2's CloudFormation (measured) deploys S3 buckets (BucketEncryption and Tags only: it
drops versioning, public access block, ownership, lifecycle and notification configuration),
ECR repositories (ImageTagMutability only: it drops ScanOnPush, encryption, lifecycle and
repository policies), SQS, Logs, IAM, KMS, Events rules, SNS topics and Lambda functions,
versions and permissions (dropping PackageType, ImageConfig, DeadLetterConfig, EphemeralStorage
and LoggingConfig). What it cannot deploy is listed below with the reason; the smoke test
deploys the rest.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3
import pytest

from tests.aws.cfn import DIGEST, TEMPLATES, as_list, load, sub


@pytest.fixture(scope="module")
def env() -> dict[str, Any]:
    return load("environment.yaml")


# -- moto deploy smoke test --------------------------------------------------------------------

# What moto 5.2's CloudFormation cannot deploy (measured), removed from the copy it deploys.
MOTO_UNSUPPORTED_TYPES = {
    "AWS::Lambda::Alias": "no CloudFormation model; a Ref to the skipped alias fails the stack",
    "AWS::S3::BucketPolicy": "no CloudFormation model (skipped silently)",
    "AWS::Scheduler::Schedule": "no CloudFormation model (skipped silently)",
    "AWS::SageMaker::ModelPackageGroup": "no CloudFormation model (skipped silently)",
    "AWS::CloudWatch::Alarm": "no CloudFormation model (skipped silently)",
    "AWS::SNS::Subscription": "no CloudFormation model (skipped silently)",
}
MOTO_UNDEPLOYABLE = {
    "DataPrepS3Permission": "a permission on the live alias, which moto never created: "
    "ResourceNotFoundException",
}
# Refs to what was removed become the values AWS gives them.
ALIAS_ARN = (
    "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:lockgate-${EnvName}"
)
REF_STANDINS = {
    "DataPrepLiveAlias": sub(f"{ALIAS_ARN}-data-prep:live"),
    "MonitorLiveAlias": sub(f"{ALIAS_ARN}-monitor:live"),
    "MonitoringScheduleResource": sub("lockgate-${EnvName}-monitoring"),
}


def moto_deployable(template: dict[str, Any]) -> dict[str, Any]:
    """The environment template without what moto cannot deploy (see the lists above)."""
    removed = {
        k
        for k, r in template["Resources"].items()
        if r["Type"] in MOTO_UNSUPPORTED_TYPES or k in MOTO_UNDEPLOYABLE
    }

    def replace(node: Any) -> Any:
        if isinstance(node, dict):
            if node.get("Ref") in removed:
                return REF_STANDINS[node["Ref"]]
            return {k: replace(v) for k, v in node.items()}
        if isinstance(node, list):
            return [replace(v) for v in node]
        return node

    copy: dict[str, Any] = replace(template)
    for logical_id in removed:
        del copy["Resources"][logical_id]
    for resource in copy["Resources"].values():
        if "DependsOn" in resource:
            resource["DependsOn"] = [d for d in as_list(resource["DependsOn"]) if d not in removed]
    return copy


def deploy(cloudformation: Any, name: str, body: str, **parameters: str) -> dict[str, str]:
    cloudformation.create_stack(
        StackName=name,
        TemplateBody=body,
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )
    (stack,) = cloudformation.describe_stacks(StackName=name)["Stacks"]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


@pytest.mark.slow
def test_the_stacks_deploy_on_moto_with_what_moto_supports(
    aws_env: str, env: dict[str, Any]
) -> None:
    def client(service: str) -> Any:
        return boto3.client(service, endpoint_url=aws_env, region_name="us-east-1")

    name = f"t{uuid.uuid4().hex[:8]}"  # the moto server lives for the session
    cloudformation, ecr, lam = client("cloudformation"), client("ecr"), client("lambda")
    images = (TEMPLATES / "images.yaml").read_text()
    repos = deploy(cloudformation, f"lockgate-{name}-images", images, EnvName=name)
    described = ecr.describe_repositories(
        repositoryNames=[f"lockgate-{name}-data-prep", f"lockgate-{name}-sagemaker"]
    )["repositories"]
    assert {r["imageTagMutability"] for r in described} == {"IMMUTABLE"}
    uris = {repos["DataPrepRepositoryUri"], repos["SageMakerRepositoryUri"]}
    assert {r["repositoryUri"] for r in described} == uris
    docker = "application/vnd.docker"
    manifest = {
        "schemaVersion": 2,
        "mediaType": f"{docker}.distribution.manifest.v2+json",
        "config": {
            "mediaType": f"{docker}.container.image.v1+json",
            "size": 2,
            "digest": f"sha256:{DIGEST}",
        },
        "layers": [],
    }
    pushed = ecr.put_image(
        repositoryName=f"lockgate-{name}-data-prep",
        imageManifest=json.dumps(manifest),
        imageTag="sha-0a1b2c3",
    )
    image = f"{repos['DataPrepRepositoryUri']}@{pushed['image']['imageId']['imageDigest']}"

    template = moto_deployable(env)
    parameters = {
        "EnvName": name,
        "DataPrepImageUri": image,
        "LogRetentionDays": "30",
        "DeploymentId": "0123456789abcdef",
    }
    out = deploy(cloudformation, f"lockgate-{name}", json.dumps(template), **parameters)

    summaries = cloudformation.list_stack_resources(StackName=f"lockgate-{name}")
    created = {
        r["LogicalResourceId"]: r["ResourceStatus"] for r in summaries["StackResourceSummaries"]
    }
    assert created == dict.fromkeys(template["Resources"], "CREATE_COMPLETE")
    bucket = f"lockgate-{name}-123456789012-us-east-1"
    assert (out["BucketName"], out["StoreUri"]) == (bucket, f"s3://{bucket}/")
    encryption = client("s3").get_bucket_encryption(Bucket=bucket)
    (rule,) = encryption["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": out["DataKeyArn"],
    }
    assert client("kms").get_key_rotation_status(KeyId=out["DataKeyArn"])["KeyRotationEnabled"]
    dlq = client("sqs").get_queue_attributes(
        QueueUrl=out["DeadLetterQueueUrl"], AttributeNames=["All"]
    )["Attributes"]
    assert dlq["QueueArn"].endswith(f":lockgate-{name}-data-prep-dlq")
    assert out["DataKeyArn"].endswith(f"/{dlq['KmsMasterKeyId']}")
    groups = client("logs").describe_log_groups(logGroupNamePrefix=f"/aws/lambda/lockgate-{name}-")
    assert {g["logGroupName"]: g["retentionInDays"] for g in groups["logGroups"]} == {
        f"/aws/lambda/lockgate-{name}-{function}": 30
        for function in ("data-prep", "image-sync", "monitor")
    }

    def variables(function: str) -> dict[str, str]:
        config = lam.get_function_configuration(FunctionName=f"lockgate-{name}-{function}")
        return {k: str(v) for k, v in config["Environment"]["Variables"].items()}

    common = {"LOCKGATE_ENV": name, "LOCKGATE_STORE": f"s3://{bucket}/"}
    assert variables("data-prep") == {
        **common,
        "LOCKGATE_CONFIG": "/var/task/lockgate.toml",
        "LOCKGATE_DEPLOYMENT": "0123456789abcdef",
        "LOCKGATE_PROCESSING_MAX_BYTES": "1073741824",
        "LOCKGATE_PROCESSING_IMAGE": image,
        "LOCKGATE_PROCESSING_ROLE_ARN": out["SageMakerRoleArn"],
        "LOCKGATE_PROCESSING_INSTANCE_TYPE": "ml.m5.xlarge",
    }
    functions = f"lockgate-{name}-data-prep,lockgate-{name}-monitor"
    assert variables("image-sync")["LOCKGATE_SYNC_FUNCTIONS"] == functions
    assert variables("monitor")["LOCKGATE_SNS_TOPIC_ARN"] == out["AlertTopicArn"]
    assert lam.get_function(FunctionName=out["DataPrepFunctionName"])["Code"]["ImageUri"] == image
    for function in (out["DataPrepFunctionName"], out["MonitorFunctionName"]):
        versions = lam.list_versions_by_function(FunctionName=function)["Versions"]
        assert [v for v in versions if v["Version"] != "$LATEST"], f"{function}: no version"
    sync_rule = client("events").describe_rule(Name=f"lockgate-{name}-image-sync")
    assert json.loads(sync_rule["EventPattern"])["detail"]["repository-name"] == [
        f"lockgate-{name}-data-prep"
    ]
    policy = json.loads(lam.get_policy(FunctionName=out["ImageSyncFunctionName"])["Policy"])
    assert [s["Principal"] for s in policy["Statement"]] == [{"Service": "events.amazonaws.com"}]
