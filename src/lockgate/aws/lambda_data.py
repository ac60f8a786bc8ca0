"""AWS Lambda entrypoint of the data pipeline (the data-prep image's CMD).

Configuration comes from the environment the stack sets: ``LOCKGATE_STORE``
(``s3://bucket/prefix``) and ``LOCKGATE_CONFIG`` (the project's lockgate.toml baked into the
image). An exception fails the invocation, so Lambda retries it and finally sends the event to
the dead-letter queue; the handler is idempotent, so a retry never duplicates a version.

A dataset whose raw objects total more than ``LOCKGATE_PROCESSING_MAX_BYTES`` is not prepared
here: a SageMaker Processing job running the same image prepares it (see
:mod:`lockgate.aws.processing`), and the invocation records its run as handed off.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from lockgate import logs
from lockgate.aws import processing
from lockgate.config import DatasetConfig, Settings, load_settings
from lockgate.pipelines.data import handle, prepare
from lockgate.pipelines.data.handler import shorten_keys, uploaded_keys
from lockgate.pipelines.data.prepare import PrepResult, raw_sources
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
    trigger = Trigger("lambda", detail)
    result = handle(
        event,
        store,
        settings.datasets,
        report=log.info,
        trigger=trigger,
        prepare_one=_preparation(store, settings, context),
    )
    summary = result.to_json()
    summary["request_id"] = request_id
    # One JSON line per invocation: CloudWatch Logs Insights can filter on its fields.
    print(json.dumps({"event": "data_prep", **summary}, default=str))
    return summary


def _preparation(
    store: Store, settings: Settings, context: Any
) -> Callable[[str, DatasetConfig, Trigger], PrepResult]:
    """Prepares a dataset here, or hands it to a Processing job when its raw objects are more
    than this Lambda prepares (``LOCKGATE_PROCESSING_MAX_BYTES``)."""
    limit = processing.max_bytes()
    image: list[str | None] = []  # the running image, asked of Lambda at the first hand-off

    def prepare_one(dataset: str, config: DatasetConfig, trigger: Trigger) -> PrepResult:
        if limit is None:
            return prepare(store, dataset, config, log.info, trigger=trigger)
        sources = raw_sources(store, dataset)
        if sum(info.size for info in sources) <= limit:
            return prepare(store, dataset, config, log.info, trigger=trigger)
        if not image:
            image.append(running_image(context))
        return processing.hand_off(
            store,
            dataset,
            config,
            sources,
            env=settings.env,
            config_path=str(settings.config_path),
            trigger=trigger,
            image=image[0],
        )

    return prepare_one


def running_image(context: Any, client: Any | None = None) -> str | None:
    """The image this function runs (``repository@sha256:...``), from Lambda itself.

    The stack's ``LOCKGATE_PROCESSING_IMAGE`` names the image of the last deploy; the workflow
    and image-sync move the function on without a deploy, and a Processing job must prepare
    with the same code as the Lambda. None (the job then takes the stack's image) when Lambda
    cannot say: no context, or the call refused.
    """
    arn = getattr(context, "invoked_function_arn", None)
    if not arn:
        return None
    try:
        lam = client if client is not None else boto3.client("lambda")
        resolved = str(lam.get_function(FunctionName=arn)["Code"]["ResolvedImageUri"])
    except (ClientError, BotoCoreError, KeyError) as exc:
        log.warning("the Processing job takes the stack's image: %s", exc)
        return None
    repository, digest = resolved.partition("@")[0], resolved.rpartition("@")[2]
    return f"{repository}@{digest}" if digest.startswith("sha256:") else None
