"""AWS Lambda entrypoint of the monitoring pipeline, started by EventBridge Scheduler.

The schedule ``lockgate-<env>-monitoring`` invokes the function with an input of its own
making; the handler reads these keys when present (Scheduler fills the placeholders in)::

    {"schedule": "<aws.scheduler.schedule-arn>",
     "scheduled_time": "<aws.scheduler.scheduled-time>",
     "execution_id": "<aws.scheduler.execution-id>"}

An EventBridge rule's ``Scheduled Event`` works too (its ``resources`` and ``time``). The window
read ends at the scheduled time, so a retried invocation judges the same traffic.

Configuration comes from the environment the stack sets: ``LOCKGATE_ENV``, ``LOCKGATE_STORE``,
``LOCKGATE_CONFIG`` (the project's lockgate.toml, whose ``[monitor]`` table applies) and
``LOCKGATE_SNS_TOPIC_ARN`` (the environment's alert topic, told of violations besides what
``[monitor]`` names). A run that fails is recorded failed and fails the invocation. An
environment with nothing released yet is skipped (no run, no failure, no alarm).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from lockgate import logs
from lockgate.aws.sns import sns_notifier
from lockgate.config import MonitorConfig, load_settings
from lockgate.durations import parse_duration
from lockgate.errors import ConfigError
from lockgate.pipelines.deployment.releases import read_history
from lockgate.pipelines.ledger import Ledger
from lockgate.pipelines.monitoring.alerts import Notifier, WebhookNotifier
from lockgate.pipelines.monitoring.job import run_monitoring
from lockgate.pipelines.monitoring.retrain import ledger_requests
from lockgate.pipelines.runs import Trigger
from lockgate.ports.store import Store
from lockgate.wiring import open_store

log = logging.getLogger("lockgate.aws.lambda_monitor")

SNS_TOPIC_ENV = "LOCKGATE_SNS_TOPIC_ARN"

_stores: dict[str, Store] = {}


def _cold_start() -> None:
    """Once per execution environment: lockgate's records as JSON lines on stdout."""
    logs.configure(
        json_stream=sys.stdout,
        terminal_level=None,
        pipeline="monitoring",
        env=os.environ.get("LOCKGATE_ENV"),
    )


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """One monitoring run of ``LOCKGATE_ENV``'s endpoint; a JSON-ready summary of it.

    Raises:
        LockgateError: nothing is released in the environment, its baseline is missing, or
            the configuration is invalid; the run is recorded failed with what to do.
    """
    if not _stores:
        _cold_start()
    settings = load_settings()
    env = settings.env
    uri = settings.store_uri
    store = _stores.get(uri)
    if store is None:
        store = _stores[uri] = open_store(uri)  # reused while the execution environment is warm
    config = settings.file.monitor
    seconds = parse_duration(config.window, "monitor.window")
    if seconds is None:
        raise ConfigError("monitor.window is empty in lockgate.toml; give a duration like 14d")
    request_id = getattr(context, "aws_request_id", None)
    if read_history(Ledger(store), env).current() is None:
        # Every environment is scheduled from its first deploy, before its first promotion:
        # a failed invocation here would be retried, dead-lettered and alarmed for nothing.
        message = f"nothing is released to {env} yet: no monitoring run until a promotion"
        log.info(message)
        skipped = {"env": env, "verdict": "skipped", "reason": message, "request_id": request_id}
        print(json.dumps({"event": "monitoring", **skipped}))
        return skipped
    schedule, scheduled = _schedule(event)
    detail = " ".join(part for part in (schedule, request_id) if part)
    # Under /tmp: the package copy is reused while warm; each run's HTML copy is not kept.
    work_dir = Path(tempfile.gettempdir()) / "lockgate" / env / "monitoring"
    try:
        result = run_monitoring(
            store,
            env,
            settings.endpoint_name(env),
            config,
            window=timedelta(seconds=seconds),
            work_dir=work_dir,
            now=scheduled,
            trigger=Trigger("schedule", detail),
            notifiers=notifiers(config, os.environ.get(SNS_TOPIC_ENV)),
            retrain=ledger_requests(store, env, f"run `lockgate --env {env} train`"),
            say=log.info,
        )
    finally:
        shutil.rmtree(work_dir / "reports", ignore_errors=True)
    summary = {
        "env": env,
        "endpoint": settings.endpoint_name(env),
        "run": result.run,
        "verdict": result.verdict,
        "rows": result.rows,
        "drifted": result.drifted,
        "violations": result.violations,
        "report": result.prefix + "report.html",
        "messages": result.messages,
        "alerts": result.alerts,
        "request_id": request_id,
    }
    # One JSON line per invocation: CloudWatch Logs Insights can filter on its fields.
    print(json.dumps({"event": "monitoring", **summary}, default=str))
    return summary


def notifiers(config: MonitorConfig, topic_arn: str | None) -> list[Notifier]:
    """The webhook of ``[monitor]``, and the SNS topics of the environment and ``[monitor]``."""
    found: list[Notifier] = []
    if config.webhook_url:
        found.append(WebhookNotifier(config.webhook_url))
    topics = [topic.strip() for topic in (topic_arn, config.sns_topic_arn) if topic]
    for topic in dict.fromkeys(topics):  # the same topic named twice is told once
        found.append(sns_notifier(topic))
    return found


def _schedule(event: Mapping[str, Any]) -> tuple[str | None, datetime | None]:
    """The schedule's name (with the execution id) and the time it was due, where given."""
    if event.get("detail-type") == "Scheduled Event":
        resources = event.get("resources") or [None]
        arn, execution, due = resources[0], event.get("id"), event.get("time")
    else:
        arn, execution, due = (
            event.get("schedule"),
            event.get("execution_id"),
            event.get("scheduled_time"),
        )
    name = str(arn).rsplit("/", 1)[-1] if arn else None
    detail = " ".join(str(part) for part in (name, execution) if part) or None
    scheduled = None
    if due:
        try:
            scheduled = datetime.fromisoformat(str(due).replace("Z", "+00:00"))
        except ValueError:
            log.warning("ignored the event's scheduled time '%s': not an ISO 8601 time", due)
        else:
            if scheduled.tzinfo is None:
                scheduled = scheduled.replace(tzinfo=UTC)
            scheduled = scheduled.astimezone(UTC)
    return detail, scheduled
