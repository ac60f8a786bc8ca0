"""`lockgate aws status` and `lockgate aws sync-image` as a user runs them, against moto.

An environment is laid out on moto's server the way its stacks would leave it (an ECR image
pushed after the one the functions run, the data-prep and monitor functions with their ``live``
aliases, a CloudWatch alarm, the monitoring schedule), then the real CLI reads it and brings
the functions to the newest image.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.aws.test_image_sync import ROLE_POLICY, manifest


def lockgate(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lockgate", "--config", str(config), *args],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
        check=False,
    )


def test_status_shows_a_lambda_behind_its_image_and_sync_brings_it_current(
    aws_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOTO_LAMBDA_STUB_ECR", "false")  # moto resolves the image's digest
    env = "s" + uuid.uuid4().hex[:8]
    ecr, lam, iam = boto3.client("ecr"), boto3.client("lambda"), boto3.client("iam")
    repository = f"lockgate-{env}-data-prep"
    uri = ecr.create_repository(repositoryName=repository)["repository"]["repositoryUri"]
    digests = []
    for which in ("old", "new"):
        pushed = ecr.put_image(
            repositoryName=repository, imageManifest=manifest(f"{which} {env}"), imageTag=which
        )
        digests.append(pushed["image"]["imageId"]["imageDigest"])
        time.sleep(1.1)  # moto records imagePushedAt in whole seconds
    old, new = digests
    role = iam.create_role(
        RoleName=f"lockgate-{env}-role", AssumeRolePolicyDocument=json.dumps(ROLE_POLICY)
    )["Role"]["Arn"]
    for short in ("data-prep", "monitor"):
        name = f"lockgate-{env}-{short}"
        lam.create_function(
            FunctionName=name,
            Role=role,
            PackageType="Image",
            Code={"ImageUri": f"{uri}@{old}"},
            Publish=True,
        )
        lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    boto3.client("cloudwatch").put_metric_alarm(
        AlarmName=f"lockgate-{env}-data-prep-errors",
        MetricName="Errors",
        Namespace="AWS/Lambda",
        Statistic="Sum",
        Period=300,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    boto3.client("scheduler").create_schedule(
        Name=f"lockgate-{env}-monitoring",
        ScheduleExpression="rate(14 days)",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={
            "Arn": f"arn:aws:lambda:us-east-1:123456789012:function:{name}:live",
            "RoleArn": role,
        },
    )
    config = tmp_path / "lockgate.toml"
    config.write_text(f'[envs.{env}.aws]\nregion = "us-east-1"\n')

    before = lockgate(config, "aws", "status", "--env", env)
    assert before.returncode == 0, before.stderr
    lines = {line.split()[1]: line for line in before.stdout.splitlines() if line.strip()}
    assert "behind" in lines[f"lockgate-{env}-data-prep"]
    assert f"sync-image --env {env}" in lines[f"lockgate-{env}-data-prep"]
    assert "rate(14 days)" in lines[f"lockgate-{env}-monitoring"]
    assert f"lockgate-{env}-data-prep-errors" in lines
    assert "not deployed" in lines[f"lockgate-{env}"]  # the stack itself: never deployed here

    synced = lockgate(config, "aws", "sync-image", "--env", env)
    assert synced.returncode == 0, synced.stderr
    assert synced.stdout.count("updated") == 2
    assert new in synced.stdout

    after = json.loads(lockgate(config, "aws", "status", "--env", env, "--json").stdout)
    for short in ("data-prep", "monitor"):
        function: dict[str, Any] = after["functions"][f"lockgate-{env}-{short}"]
        assert function["digest"] == new
        assert function["live_version"] == "2"
    assert after["latest_image"] == new

    again = lockgate(config, "aws", "sync-image", "--env", env)
    assert again.returncode == 0, again.stderr
    assert "updated" not in again.stdout and again.stdout.count("current") == 2
