"""AWS Lambda entrypoint of the data pipeline (the data-prep image's CMD).

Configuration comes from the environment the stack sets: ``LOCKGATE_STORE``
(``s3://bucket/prefix``) and ``LOCKGATE_CONFIG`` (the project's lockgate.toml baked into the
image). An exception fails the invocation, so Lambda retries it and finally sends the event to
the dead-letter queue; the handler is idempotent, so a retry never duplicates a version.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from lockgate.config import load_settings
from lockgate.pipelines.data import handle
from lockgate.ports.store import Store
from lockgate.wiring import lean_arrow_memory, open_store

log = logging.getLogger("lockgate.aws.lambda_data")
logging.getLogger("lockgate").setLevel(logging.INFO)

_stores: dict[str, Store] = {}


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Prepare the datasets named by an S3 notification (or its SQS/EventBridge wrapping)."""
    settings = load_settings()
    uri = settings.store_uri
    store = _stores.get(uri)
    if store is None:
        lean_arrow_memory()
        store = _stores[uri] = open_store(uri)  # reused while the execution environment is warm
    result = handle(event, store, settings.datasets, report=log.info)
    summary = result.to_json()
    summary["request_id"] = getattr(context, "aws_request_id", None)
    # One JSON line per invocation: CloudWatch Logs Insights can filter on its fields.
    print(json.dumps({"event": "data_prep", **summary}, default=str))
    return summary
