"""AWS Lambda entrypoint of the data pipeline (the data-prep image's CMD).

Configuration comes from the environment the stack sets: ``LOCKGATE_STORE``
(``s3://bucket/prefix``) and ``LOCKGATE_CONFIG`` (the project's lockgate.toml baked into the
image). An exception fails the invocation, so Lambda retries it and finally sends the event to
the dead-letter queue; the handler is idempotent, so a retry never duplicates a version.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

from lockgate import logs
from lockgate.config import load_settings
from lockgate.pipelines.data import handle
from lockgate.pipelines.data.handler import shorten_keys, uploaded_keys
from lockgate.pipelines.runs import Trigger
from lockgate.ports.store import Store
from lockgate.wiring import lean_arrow_memory, open_store

log = logging.getLogger("lockgate.aws.lambda_data")

_stores: dict[str, Store] = {}


def _cold_start() -> None:
    """Once per execution environment: lockgate's records as JSON lines on stdout, where
    CloudWatch Logs takes each line as one event; Arrow's memory kept lean."""
    logs.configure(
        json_stream=sys.stdout,
        terminal_level=None,
        pipeline="data",
        env=os.environ.get("LOCKGATE_ENV"),  # the stack sets it; records and runs carry it
    )
    lean_arrow_memory()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Prepare the datasets named by an S3 notification (or its SQS/EventBridge wrapping)."""
    if not _stores:
        _cold_start()
    settings = load_settings()
    uri = settings.store_uri
    store = _stores.get(uri)
    if store is None:
        store = _stores[uri] = open_store(uri)  # reused while the execution environment is warm
    request_id = getattr(context, "aws_request_id", None)
    detail = " ".join(
        part for part in (request_id, shorten_keys(uploaded_keys(event, store))) if part
    )
    result = handle(
        event, store, settings.datasets, report=log.info, trigger=Trigger("lambda", detail)
    )
    summary = result.to_json()
    summary["request_id"] = request_id
    # One JSON line per invocation: CloudWatch Logs Insights can filter on its fields.
    print(json.dumps({"event": "data_prep", **summary}, default=str))
    return summary
