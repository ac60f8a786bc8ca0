"""The CloudFormation templates: static assertions on what moto ignores.

cfn-lint and checkov (``make infra-lint``) check the templates against the resource schemas and
security rules. These tests assert what lockgate relies on and a user would notice: an upload
under ``raw/`` reaches the ``live`` alias, images are pinned by digest, monitoring runs every 14
days, no image in use can expire, every handler gets its configuration, no policy grants
everything, and every checkov skip says why.

The moto deploy smoke test is in test_templates_moto.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.aws.cfn import (
    ALL_TEMPLATES,
    DIGEST,
    REPOSITORY,
    STORE,
    as_list,
    evaluate,
    load,
    of_type,
    statements,
    sub,
)


@pytest.fixture(scope="module")
def env() -> dict[str, Any]:
    return load("environment.yaml")


def test_an_upload_under_raw_invokes_the_live_alias_of_data_prep(env: dict[str, Any]) -> None:
    res = env["Resources"]
    (config,) = res["Bucket"]["Properties"]["NotificationConfiguration"]["LambdaConfigurations"]
    assert config["Event"] == "s3:ObjectCreated:*"
    assert config["Filter"] == {"S3Key": {"Rules": [{"Name": "prefix", "Value": "raw/"}]}}
    assert config["Function"] == {"Ref": "DataPrepLiveAlias"}
    assert res["DataPrepLiveAlias"]["Type"] == "AWS::Lambda::Alias"
    assert res["DataPrepLiveAlias"]["Properties"] == {
        "Name": "live",
        "FunctionName": {"Ref": "DataPrepFunction"},
        "FunctionVersion": {"Fn::GetAtt": ["DataPrepVersion", "Version"]},
    }


def test_the_bucket_waits_for_the_permission_s3_checks_and_the_permission_needs_no_bucket(
    env: dict[str, Any],
) -> None:
    bucket = env["Resources"]["Bucket"]
    assert "DataPrepS3Permission" in as_list(bucket["DependsOn"])
    assert env["Resources"]["DataPrepS3Permission"]["Properties"] == {
        "Action": "lambda:InvokeFunction",
        "FunctionName": {"Ref": "DataPrepLiveAlias"},
        "Principal": "s3.amazonaws.com",
        # the name the bucket gets, not a reference to it (that would be a circular dependency)
        "SourceArn": sub(f"arn:${{AWS::Partition}}:s3:::{STORE}"),
        "SourceAccount": {"Ref": "AWS::AccountId"},
    }
    assert bucket["Properties"]["BucketName"] == sub(STORE)


def test_the_bucket_is_versioned_encrypted_private_and_tls_only(env: dict[str, Any]) -> None:
    props = env["Resources"]["Bucket"]["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": {"Fn::GetAtt": ["DataKey", "Arn"]},
    }
    assert list(props["PublicAccessBlockConfiguration"].values()) == [True] * 4
    (deny,) = env["Resources"]["BucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert (deny["Effect"], deny["Principal"], deny["Action"]) == ("Deny", "*", "s3:*")
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert len(deny["Resource"]) == 2  # the bucket and its objects
    assert env["Resources"]["DataKey"]["Properties"]["EnableKeyRotation"] is True


# -- images pinned by digest -------------------------------------------------------------------


def test_every_function_runs_the_data_prep_image_pinned_by_digest(env: dict[str, Any]) -> None:
    functions = of_type(env, "AWS::Lambda::Function")
    for function in functions.values():
        props = function["Properties"]
        assert props["PackageType"] == "Image"
        assert props["Code"] == {"ImageUri": {"Ref": "DataPrepImageUri"}}
        assert "Runtime" not in props and "Handler" not in props
    assert {k: f["Properties"].get("ImageConfig") for k, f in functions.items()} == {
        "DataPrepFunction": None,  # the image's CMD: lockgate.aws.lambda_data.handler
        "ImageSyncFunction": {"Command": ["lockgate.aws.image_sync.handler"]},
        "MonitorFunction": {"Command": ["lockgate.aws.lambda_monitor.handler"]},
    }


def test_the_image_parameter_accepts_a_digest_and_rejects_a_tag(env: dict[str, Any]) -> None:
    pattern = env["Parameters"]["DataPrepImageUri"]["AllowedPattern"]
    assert re.fullmatch(pattern, f"{REPOSITORY}@sha256:{DIGEST}")
    for tag in ("latest", "sha-0a1b2c3", f"sha256:{DIGEST}"):
        assert not re.fullmatch(pattern, f"{REPOSITORY}:{tag}"), tag
    for digest in (DIGEST[:-1], DIGEST.upper(), DIGEST + "0"):
        assert not re.fullmatch(pattern, f"{REPOSITORY}@sha256:{digest}"), digest
    assert not re.fullmatch(pattern, f"@sha256:{DIGEST}")


def test_a_new_digest_publishes_a_new_version_behind_each_live_alias(env: dict[str, Any]) -> None:
    res = env["Resources"]
    for function in ("DataPrep", "Monitor"):
        version = res[f"{function}Version"]["Properties"]
        assert version["FunctionName"] == {"Ref": f"{function}Function"}
        # the digest's hex: Lambda checks it, and a new value replaces the version resource,
        # which publishes a new version
        uri = f"{REPOSITORY}@sha256:{DIGEST}"
        assert evaluate(version["CodeSha256"], {"DataPrepImageUri": uri}) == DIGEST
        # a new deployment (configuration only) replaces it too, and the function's own
        # configuration differs, so Lambda has something new to publish
        assert "${DeploymentId}" in version["Description"]["Fn::Sub"]
        variables = res[f"{function}Function"]["Properties"]["Environment"]["Variables"]
        assert variables["LOCKGATE_DEPLOYMENT"] == {"Ref": "DeploymentId"}
        alias = res[f"{function}LiveAlias"]["Properties"]
        assert alias["Name"] == "live"
        assert alias["FunctionVersion"] == {"Fn::GetAtt": [f"{function}Version", "Version"]}


def test_repositories_scan_on_push_keep_tags_immutable_and_expire_only_untagged_images() -> None:
    images = load("images.yaml")
    repos = of_type(images, "AWS::ECR::Repository").values()
    assert {r["Properties"]["RepositoryName"]["Fn::Sub"] for r in repos} == {
        "lockgate-${EnvName}-data-prep",
        "lockgate-${EnvName}-sagemaker",
    }
    days = str(images["Parameters"]["UntaggedImageExpiryDays"]["Default"])
    for repo in repos:
        props = repo["Properties"]
        assert props["ImageTagMutability"] == "IMMUTABLE"
        assert props["ImageScanningConfiguration"] == {"ScanOnPush": True}
        assert props["EncryptionConfiguration"]["EncryptionType"] == "KMS"
        text = props["LifecyclePolicy"]["LifecyclePolicyText"]["Fn::Sub"]
        rules = json.loads(text.replace("${UntaggedImageExpiryDays}", days))["rules"]
        assert rules
        for rule in rules:
            assert rule["selection"]["tagStatus"] == "untagged"
            assert not {"tagPrefixList", "tagPatternList"} & set(rule["selection"])
    outputs = "DataPrepRepositoryUri SageMakerRepositoryUri DataPrepRepositoryName"
    assert set(images["Outputs"]) >= {*outputs.split(), "SageMakerRepositoryName"}


# -- monitoring, image sync, alarms ------------------------------------------------------------


def test_monitoring_runs_every_14_days_through_the_monitor_live_alias(env: dict[str, Any]) -> None:
    assert env["Parameters"]["MonitoringSchedule"]["Default"] == "rate(14 days)"
    (schedule,) = of_type(env, "AWS::Scheduler::Schedule").values()
    props = schedule["Properties"]
    assert props["Name"] == sub("lockgate-${EnvName}-monitoring")
    assert props["ScheduleExpression"] == {"Ref": "MonitoringSchedule"}
    assert props["FlexibleTimeWindow"] == {"Mode": "OFF"}
    target = props["Target"]
    assert target["Arn"] == {"Ref": "MonitorLiveAlias"}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["JobsDeadLetterQueue", "Arn"]}}
    assert json.loads(target["Input"])["detail-type"] == "Scheduled Event"
    # the schedule's role may start the monitor's live alias and nothing else
    role = target["RoleArn"]["Fn::GetAtt"][0]
    invokes = [
        s["Resource"]
        for _, _, s in statements({role: env["Resources"][role]})
        if "lambda:InvokeFunction" in as_list(s["Action"])
    ]
    assert invokes == [{"Ref": "MonitorLiveAlias"}]


def test_a_push_to_the_data_prep_repository_starts_image_sync(env: dict[str, Any]) -> None:
    rule = env["Resources"]["ImageSyncRule"]["Properties"]
    assert rule["EventPattern"] == {
        "source": ["aws.ecr"],
        "detail-type": ["ECR Image Action"],
        "detail": {
            "action-type": ["PUSH"],
            "result": ["SUCCESS"],
            "repository-name": [sub("lockgate-${EnvName}-data-prep")],
        },
    }
    assert [t["Arn"] for t in rule["Targets"]] == [{"Fn::GetAtt": ["ImageSyncFunction", "Arn"]}]
    permission = env["Resources"]["ImageSyncPermission"]["Properties"]
    assert permission["Principal"] == "events.amazonaws.com"
    assert permission["SourceArn"] == {"Fn::GetAtt": ["ImageSyncRule", "Arn"]}


def test_alarms_watch_data_prep_its_queue_and_the_endpoint_and_alert_the_topic(
    env: dict[str, Any],
) -> None:
    alarms = [a["Properties"] for a in of_type(env, "AWS::CloudWatch::Alarm").values()]
    watched = {
        (a["Namespace"], a["MetricName"], d["Name"]): d["Value"]
        for a in alarms
        for d in a["Dimensions"]
    }
    assert watched["AWS/Lambda", "Errors", "FunctionName"] == {"Ref": "DataPrepFunction"}
    assert watched["AWS/Lambda", "Throttles", "FunctionName"] == {"Ref": "DataPrepFunction"}
    queues = [
        d["Value"]
        for a in alarms
        for d in a["Dimensions"]
        if a["MetricName"] == "ApproximateNumberOfMessagesVisible"
    ]
    assert {"Fn::GetAtt": ["DataPrepDeadLetterQueue", "QueueName"]} in queues
    for metric in ("Invocation5XXErrors", "ModelLatency"):
        assert watched["AWS/SageMaker", metric, "VariantName"] == "AllTraffic"
        endpoint = watched["AWS/SageMaker", metric, "EndpointName"]["Fn::If"]
        assert endpoint[1:] == [sub("lockgate-${EnvName}"), {"Ref": "EndpointName"}]
    assert all(a["AlarmActions"] == [{"Ref": "AlertTopic"}] for a in alarms)
    topic = env["Resources"]["AlertTopic"]["Properties"]
    assert topic["TopicName"] == sub("lockgate-${EnvName}-alerts")
    assert topic["KmsMasterKeyId"] == {"Ref": "DataKey"}
    assert env["Resources"]["AlertEmailSubscription"]["Condition"] == "HasAlertEmail"


# -- configuration the handlers read -----------------------------------------------------------

COMMON = {
    "LOCKGATE_ENV": {"Ref": "EnvName"},
    "LOCKGATE_STORE": sub(f"s3://{STORE}/"),
    "LOCKGATE_CONFIG": "/var/task/lockgate.toml",
}
CONTRACT_OUTPUTS = """StoreUri BucketName DataPrepFunctionName MonitorFunctionName
ImageSyncFunctionName SageMakerRoleArn ModelPackageGroupName AlertTopicArn DeadLetterQueueUrl
MonitoringScheduleName""".split()


def test_every_function_gets_the_environment_its_handler_reads(env: dict[str, Any]) -> None:
    res = env["Resources"]

    def variables(function: str) -> dict[str, Any]:
        found: dict[str, Any] = res[function]["Properties"]["Environment"]["Variables"]
        return found

    deployment = {"LOCKGATE_DEPLOYMENT": {"Ref": "DeploymentId"}}
    assert variables("DataPrepFunction") == {
        **COMMON,
        **deployment,
        "LOCKGATE_PROCESSING_MAX_BYTES": {"Ref": "LambdaMaxObjectBytes"},
        "LOCKGATE_PROCESSING_IMAGE": {"Ref": "DataPrepImageUri"},
        "LOCKGATE_PROCESSING_ROLE_ARN": {"Fn::GetAtt": ["SageMakerRole", "Arn"]},
        "LOCKGATE_PROCESSING_INSTANCE_TYPE": {"Ref": "ProcessingInstanceType"},
    }
    assert variables("ImageSyncFunction") == {
        **COMMON,
        "LOCKGATE_SYNC_FUNCTIONS": sub("lockgate-${EnvName}-data-prep,lockgate-${EnvName}-monitor"),
        "LOCKGATE_SYNC_ALIAS": "live",
        "LOCKGATE_SYNC_REPOSITORY": sub("lockgate-${EnvName}-data-prep"),
    }
    assert variables("MonitorFunction") == {
        **COMMON,
        **deployment,
        "LOCKGATE_SNS_TOPIC_ARN": {"Ref": "AlertTopic"},
    }
    assert env["Parameters"]["LambdaMaxObjectBytes"]["Default"] == 1073741824
    assert env["Parameters"]["ProcessingInstanceType"]["Default"] == "ml.m5.xlarge"
    data_prep = res["DataPrepFunction"]["Properties"]
    dlq = {"TargetArn": {"Fn::GetAtt": ["DataPrepDeadLetterQueue", "Arn"]}}
    assert data_prep["DeadLetterConfig"] == dlq
    assert (data_prep["MemorySize"], data_prep["Timeout"]) == (
        {"Ref": "DataPrepMemorySize"},
        {"Ref": "DataPrepTimeout"},
    )
    assert res["DataPrepLogGroup"]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert set(env["Outputs"]) >= set(CONTRACT_OUTPUTS)


# -- least privilege and the checkov skips -----------------------------------------------------

# Actions that have no resource type: "*" is the only Resource IAM accepts for them.
RESOURCELESS = {"ecr:GetAuthorizationToken", "cloudwatch:PutMetricData"}
ACCOUNT_ROOT = {"AWS": sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:root")}


@pytest.mark.parametrize("name", ALL_TEMPLATES)
def test_no_policy_allows_every_action_or_any_action_on_every_resource(name: str) -> None:
    found = statements(load(name)["Resources"])
    assert found
    for owner, kind, statement in found:
        where = f"{name}: {owner} {statement.get('Sid', '')}"
        assert "NotAction" not in statement and "NotResource" not in statement, where
        if statement["Effect"] != "Allow":
            continue
        principal = statement.get("Principal", {})
        assert principal != "*" and "*" not in as_list(principal.get("AWS", [])), where
        actions = as_list(statement["Action"])
        wildcard = any(a == "*" or a.endswith(":*") for a in actions)
        if kind == "KeyPolicy":
            # "*" in a key policy is the key itself; kms:* is for the account only, the
            # statement AWS requires so that IAM policies can grant use of the key
            assert not wildcard or (actions, statement["Principal"]) == (["kms:*"], ACCOUNT_ROOT)
            continue
        assert not wildcard, where
        if "*" in as_list(statement.get("Resource", [])):
            assert set(actions) <= RESOURCELESS, where


def test_data_prep_may_pass_only_the_sagemaker_role_and_only_to_sagemaker(
    env: dict[str, Any],
) -> None:
    role = {"DataPrepRole": env["Resources"]["DataPrepRole"]}
    by_sid = {s["Sid"]: s for _, _, s in statements(role) if "Sid" in s}
    passing = by_sid["PassSageMakerRoleToSageMakerOnly"]
    assert passing["Action"] == "iam:PassRole"
    assert passing["Resource"] == {"Fn::GetAtt": ["SageMakerRole", "Arn"]}
    assert passing["Condition"] == {
        "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
    }
    jobs = by_sid["RunProcessingJobs"]["Resource"]["Fn::Sub"]
    assert jobs.endswith(":processing-job/lockgate-${EnvName}-*")
    assert by_sid["ReadWriteStore"]["Resource"] == sub(f"arn:${{AWS::Partition}}:s3:::{STORE}/*")


GENERIC = re.compile(
    r"^(not (needed|required|applicable)|n/?a|false positive|accepted( risk)?|by design|todo|"
    r"skip(ped)?|ignored?|won'?t fix)\b",
    re.IGNORECASE,
)


@pytest.mark.parametrize("name", ALL_TEMPLATES)
def test_every_checkov_skip_names_a_check_and_says_specifically_why(name: str) -> None:
    for logical_id, resource in load(name)["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert set(skip) == {"id", "comment"}, logical_id
            assert re.fullmatch(r"CKV_AWS_\d+", skip["id"]), (logical_id, skip["id"])
            comment = " ".join(skip["comment"].split())
            assert len(comment) >= 25, (logical_id, skip["id"], comment)
            assert not GENERIC.match(comment), (logical_id, skip["id"], comment)
            assert len(set(comment.lower().split())) >= 8, (logical_id, skip["id"], comment)


def test_the_image_sync_role_allows_every_call_the_handler_makes(env: dict[str, Any]) -> None:
    """Each ``_call(client, "<service>", "<operation>", ...)`` of image_sync.py, and each
    ``self._call("<operation>", ...)`` (Lambda), is an action the image-sync role grants."""
    source = (Path(__file__).parents[2] / "src/lockgate/aws/image_sync.py").read_text()
    calls = set(re.findall(r'_call\(\s*\w+,\s*"(\w+)",\s*"(\w+)"', source))
    calls |= {("lambda", op) for op in re.findall(r'self\._call\(\s*"(\w+)"', source)}
    assert ("ecr", "describe_images") in calls and ("lambda", "update_function_code") in calls
    role = env["Resources"]["ImageSyncRole"]
    granted = {
        action
        for _, _, statement in statements({"ImageSyncRole": role})
        if statement["Effect"] == "Allow"
        for action in as_list(statement["Action"])
    }
    needed = {f"{service}:{''.join(p.title() for p in op.split('_'))}" for service, op in calls}
    assert needed <= granted, f"not granted: {sorted(needed - granted)}"
