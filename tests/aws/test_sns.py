"""Alerts published to SNS: against moto's server (topic -> SQS queue), and scripted refusals."""

from __future__ import annotations

import json
import socket
import uuid
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber

from lockgate.aws.sns import (
    MESSAGE_LIMIT,
    SnsError,
    SnsNotifier,
    alert_message,
    sns_notifier,
    sns_subject,
)
from lockgate.errors import ConfigError
from lockgate.pipelines.monitoring.alerts import Alert, Notifier

ALERT = Alert(
    endpoint="churn-prod",
    env="prod",
    run="20261126T105608-4f2a",
    verdict="drift",
    drifted=("tenure", "monthly_charges"),
    violations=3,
    report="s3://lockgate-prod/monitoring/reports/churn-prod/20261126T105608-4f2a/report.html",
    time=datetime(2026, 11, 26, 10, 56, 8, tzinfo=UTC),
)
ARN = "arn:aws:sns:us-east-1:123456789012:lockgate-alerts"


def subscribed_queue(aws_env: str, topic_arn: str, fifo: bool = False) -> tuple[Any, str]:
    """An SQS queue subscribed to the topic: (sqs client, queue url)."""
    sqs = boto3.client("sqs", endpoint_url=aws_env)
    name = f"alerts-{uuid.uuid4().hex[:12]}" + (".fifo" if fifo else "")
    attributes = {"FifoQueue": "true"} if fifo else {}
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    boto3.client("sns", endpoint_url=aws_env).subscribe(
        TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn
    )
    return sqs, url


def received(sqs: Any, url: str) -> list[dict[str, Any]]:
    """The SNS envelopes that reached the queue."""
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    return [json.loads(message["Body"]) for message in messages.get("Messages", [])]


def test_an_alert_reaches_a_subscribed_queue_as_json(aws_env: str) -> None:
    sns = boto3.client("sns", endpoint_url=aws_env)
    topic_arn = sns.create_topic(Name=f"lockgate-alerts-{uuid.uuid4().hex[:8]}")["TopicArn"]
    sqs, url = subscribed_queue(aws_env, topic_arn)
    notifier: Notifier = SnsNotifier(sns, topic_arn)

    said = notifier.notify(ALERT)

    [envelope] = received(sqs, url)
    assert envelope["Subject"] == "lockgate prod: drift on churn-prod"
    assert json.loads(envelope["Message"]) == ALERT.as_dict()
    assert said == f"SNS topic {topic_arn.rsplit(':', 1)[1]}: published (message id " + (
        f"{envelope['MessageId']})"
    )


def test_a_fifo_topic_gets_a_group_and_a_deduplication_id(aws_env: str) -> None:
    sns = boto3.client("sns", endpoint_url=aws_env)
    topic_arn = sns.create_topic(
        Name=f"lockgate-alerts-{uuid.uuid4().hex[:8]}.fifo", Attributes={"FifoTopic": "true"}
    )["TopicArn"]
    sqs, url = subscribed_queue(aws_env, topic_arn, fifo=True)

    said = SnsNotifier(sns, topic_arn).notify(ALERT)

    assert ": published (message id " in said
    [envelope] = received(sqs, url)
    assert json.loads(envelope["Message"])["run_id"] == ALERT.run


def test_the_environment_builds_a_client_in_the_topics_region(aws_env: str) -> None:
    sns = boto3.client("sns", endpoint_url=aws_env, region_name="eu-west-1")
    topic_arn = sns.create_topic(Name=f"lockgate-alerts-{uuid.uuid4().hex[:8]}")["TopicArn"]
    assert ":eu-west-1:" in topic_arn

    said = sns_notifier(topic_arn).notify(ALERT)

    assert ": published (message id " in said


def test_a_missing_topic_is_reported_in_one_line_and_notify_does_not_raise(aws_env: str) -> None:
    notifier = SnsNotifier(boto3.client("sns", endpoint_url=aws_env), ARN + "-missing")

    with pytest.raises(SnsError) as error:
        notifier.publish("subject", "message")
    said = notifier.notify(ALERT)

    assert error.value.code == "NotFound"
    assert str(error.value) == (
        f"SNS refused to publish to {ARN}-missing (NotFound): check sns_topic_arn in [monitor] "
        "of lockgate.toml: the topic does not exist"
    )
    assert said == f"SNS topic lockgate-alerts-missing: not published: {error.value}"


@pytest.mark.parametrize(
    ("code", "hint"),
    [
        ("AuthorizationError", "allow sns:Publish on it"),
        ("KMSAccessDenied", "the topic's KMS key refused; allow kms:GenerateDataKey"),
        ("InvalidClientTokenId", "refresh the AWS credentials (aws sso login)"),
        ("InvalidParameter", "Invalid parameter: Message too long"),
    ],
)
def test_a_refusal_names_the_code_and_what_to_do(aws_env: str, code: str, hint: str) -> None:
    client = boto3.client("sns", endpoint_url=aws_env)
    with Stubber(client) as stub:
        stub.add_client_error(
            "publish",
            service_error_code=code,
            service_message="Invalid parameter: Message\ntoo long",
        )
        with pytest.raises(SnsError) as error:
            SnsNotifier(client, ARN).publish("subject", "message")

    assert str(error.value).startswith(f"SNS refused to publish to {ARN} ({code}): ")
    assert hint in str(error.value)
    assert "\n" not in str(error.value)


def test_an_unreachable_sns_is_reported_without_a_traceback(aws_env: str) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    client = boto3.client(
        "sns",
        endpoint_url=f"http://127.0.0.1:{port}",
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=1),
    )

    said = SnsNotifier(client, ARN).notify(ALERT)

    assert said.startswith(
        "SNS topic lockgate-alerts: not published: cannot reach SNS in us-east-1"
    )
    assert "check AWS_ENDPOINT_URL" in said


def test_missing_credentials_say_how_to_set_them(
    aws_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    for name in ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    client = boto3.session.Session().client("sns")

    with pytest.raises(SnsError) as error:
        SnsNotifier(client, ARN).publish("subject", "message")

    assert str(error.value).startswith(f"no AWS credentials to publish to {ARN}: set AWS_PROFILE")


@pytest.mark.parametrize(
    "arn",
    ["", "lockgate-alerts", "arn:aws:sqs:us-east-1:123456789012:q", "arn:aws:sns:us-east-1:12:t"],
)
def test_a_malformed_topic_arn_is_a_configuration_error(arn: str) -> None:
    with pytest.raises(ConfigError) as error:
        SnsNotifier(object(), arn)

    assert f"sns_topic_arn '{arn}' is not an SNS topic ARN; write arn:aws:sns:" in str(error.value)


def test_subjects_are_made_ascii_one_line_and_shorter_than_100() -> None:
    assert sns_subject("drift on café\nendpoint\t— prod") == "drift on cafe endpoint prod"
    long = sns_subject("lockgate prod: drift on " + "e" * 200)
    assert len(long) == 99
    assert long.endswith("...")
    assert sns_subject("\n\t") == "lockgate alert"


def test_a_huge_feature_list_is_shortened_to_fit_an_sns_message() -> None:
    features = tuple(f"feature_{n:05d}_" + "x" * 40 for n in range(10_000))
    alert = Alert("e", "prod", "r", "drift", features, 10_000, "report", ALERT.time)

    message = alert_message(alert)

    assert len(message.encode()) <= MESSAGE_LIMIT
    data = json.loads(message)
    assert data["drifted_features_total"] == 10_000
    assert data["drifted_features"] == list(features[:100])
    assert json.loads(alert_message(ALERT)) == ALERT.as_dict()
