"""The monitoring Lambda entrypoint against a store on moto's S3 (and SNS, SQS) over HTTP.

The released churn model and the captured traffic are the monitoring job's own test setup
(tests/pipelines/monitoring/test_job.py), copied from its folder store into the bucket.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from lockgate.aws import lambda_monitor
from lockgate.pipelines.ledger import Ledger
from lockgate.pipelines.monitoring.job import REQUESTS, TRAINING
from lockgate.pipelines.runs import recent_runs
from lockgate.ports.store import Store
from lockgate.wiring import open_store
from tests.aws.lambda_logs import restored_logging
from tests.packages import Prepared
from tests.pipelines.monitoring.test_job import ENDPOINT, NOW, capture
from tests.pipelines.monitoring.test_job import released as released  # the module's fixture

SCHEDULE_ARN = "arn:aws:scheduler:us-east-1:123456789012:schedule/default/lockgate-dev-monitoring"


def scheduler_input(execution_id: str = "d32c5kddcf5bb8c3") -> dict[str, Any]:
    """What the schedule's target input becomes once Scheduler fills in its placeholders."""
    return {
        "schedule": SCHEDULE_ARN,
        "scheduled_time": NOW.isoformat().replace("+00:00", "Z"),
        "execution_id": execution_id,
    }


def context() -> Any:
    return SimpleNamespace(aws_request_id="req-9", function_name="lockgate-dev-monitor")


@pytest.fixture
def monitor_env(
    bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Store]]:
    """Configure the function as the stack does: ``use(config_text, copy_from=None)`` writes
    lockgate.toml, sets the environment and returns the bucket's store (filled from
    ``copy_from``, a released folder store). The cold start's logging is undone after."""
    monkeypatch.setenv("LOCKGATE_ENV", "dev")
    monkeypatch.setenv("LOCKGATE_STORE", f"s3://{bucket}/")
    monkeypatch.delenv(lambda_monitor.SNS_TOPIC_ENV, raising=False)
    monkeypatch.setattr(lambda_monitor, "_stores", {})

    def use(config_text: str = "", copy_from: Store | None = None) -> Store:
        config = tmp_path / "lockgate.toml"
        config.write_text(config_text, encoding="utf-8")
        monkeypatch.setenv("LOCKGATE_CONFIG", str(config))
        store = open_store(f"s3://{bucket}/")
        if copy_from is not None:
            for info in copy_from.list(""):
                if not info.key.startswith(("ledger/runs/", "monitoring/")):
                    store.put(info.key, copy_from.get(info.key))
        return store

    with restored_logging():
        yield use


def alert_queue(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, str]:
    """An SNS topic (set as the environment's alert topic) with an SQS queue subscribed."""
    sns = boto3.client("sns", endpoint_url=aws_env)
    sqs = boto3.client("sqs", endpoint_url=aws_env)
    topic = sns.create_topic(Name="lockgate-dev-alerts")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="lockgate-dev-alerts-test")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    monkeypatch.setenv(lambda_monitor.SNS_TOPIC_ENV, topic)
    return sqs, queue_url


def test_a_scheduled_run_writes_the_report_records_the_run_alerts_and_requests_a_retrain(
    monitor_env: Callable[..., Store],
    released: tuple[Prepared, Path],
    aws_env: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    prepared, package_dir = released
    store = monitor_env("[monitor]\nretrain_on_drift = true\n", copy_from=prepared.store)
    capture(store, package_dir, rows=1000, seed=31, shift=0.8, at=NOW - timedelta(hours=2))
    sqs, queue_url = alert_queue(aws_env, monkeypatch)

    summary = lambda_monitor.handler(scheduler_input(), context())

    assert summary["verdict"] == "drift" and summary["rows"] == 1000
    assert summary["env"] == "dev" and summary["endpoint"] == ENDPOINT
    prefix = f"monitoring/reports/{ENDPOINT}/{summary['run']}/"
    assert summary["report"] == prefix + "report.html"
    report = json.loads(store.get(prefix + "report.json"))
    assert report["verdict"] == "drift" and report["env"] == "dev"
    assert report["window"]["end"] == NOW.isoformat()  # the window ends when the run was due
    assert b"<html" in store.get(prefix + "report.html")

    (view,) = recent_runs(store, "monitoring")
    assert view.state == "succeeded" and view.run_id == summary["run"]
    assert view.record["env"] == "dev"
    assert view.record["trigger"] == {
        "kind": "schedule",
        "detail": "lockgate-dev-monitoring d32c5kddcf5bb8c3 req-9",
    }

    # The environment's SNS topic was told, and the retrain request is in the ledger.
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    (envelope,) = [json.loads(message["Body"]) for message in messages]
    alert = json.loads(envelope["Message"])
    assert alert["verdict"] == "drift" and alert["run_id"] == summary["run"]
    assert envelope["Subject"] == f"lockgate dev: drift on {ENDPOINT}"
    (request,) = [entry.record for entry in Ledger(store).entries(REQUESTS, TRAINING)]
    assert request == {"reason": "drift", "env": "dev", "run": summary["run"], "dataset": "churn"}
    assert any("retrain requested" in line for line in summary["alerts"])
    assert any("SNS topic lockgate-dev-alerts: published" in line for line in summary["alerts"])

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[-1]["event"] == "monitoring" and lines[-1]["run"] == summary["run"]
    ours = [line for line in lines[:-1] if line.get("run_id") == summary["run"]]
    assert {"run.started", "run.succeeded"} <= {line["event"] for line in ours}
    assert all(line["pipeline"] == "monitoring" and line["env"] == "dev" for line in ours)


def test_an_environment_with_nothing_released_is_skipped_not_failed(
    monitor_env: Callable[..., Store],
) -> None:
    """The schedule runs from the first deploy on; a failure would be retried, dead-lettered
    and alarmed before the environment's first promotion."""
    store = monitor_env()

    summary = lambda_monitor.handler(scheduler_input(), context())

    assert summary["verdict"] == "skipped"
    assert "nothing is released to dev" in summary["reason"]
    assert recent_runs(store, "monitoring") == []
    assert Ledger(store).entries(REQUESTS, TRAINING) == []


def test_an_eventbridge_scheduled_event_and_the_monitor_config_are_honoured(
    monitor_env: Callable[..., Store],
    released: tuple[Prepared, Path],
) -> None:
    prepared, package_dir = released
    store = monitor_env("[monitor]\nmin_rows = 5000\n", copy_from=prepared.store)
    capture(store, package_dir, rows=200, seed=32, shift=0.0, at=NOW - timedelta(hours=1))
    event = {
        "version": "0",
        "id": "89d1a02d-5ec7-412e-82f5-13505f849b41",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": NOW.isoformat().replace("+00:00", "Z"),
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/lockgate-dev-monitoring"],
        "detail": {},
    }

    summary = lambda_monitor.handler(event, None)

    assert summary["verdict"] == "no_data" and summary["rows"] == 200
    assert "fewer than monitor.min_rows (5000)" in summary["messages"][-1]
    assert summary["alerts"] == []
    (view,) = recent_runs(store, "monitoring")
    assert view.record["trigger"]["detail"] == (
        "lockgate-dev-monitoring 89d1a02d-5ec7-412e-82f5-13505f849b41"
    )
