"""S3 object events, exactly as AWS sends them, both ways: parse what arrives, build what
``lockgate up`` dispatches locally so the handlers cannot tell the two apart.

Shapes understood:

* S3 event notifications (``{"Records": [{"eventSource": "aws:s3", ...}]}``), keys URL-encoded
  (``red+flower.jpg``), several records per event, ``ObjectRemoved:*`` records without size or
  ETag; the ``s3:TestEvent`` S3 sends when a notification is configured (no ``Records``);
* the same notification wrapped in SQS messages (``eventSource: aws:sqs``, JSON in ``body``),
  as a dead-letter queue replays it;
* EventBridge ``Object Created`` / ``Object Deleted`` events (``source: aws.s3``), whose keys
  are not encoded.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus, unquote_plus

from lockgate.errors import EventError

CREATED = "ObjectCreated"
REMOVED = "ObjectRemoved"


@dataclass(frozen=True)
class ObjectEvent:
    """One object that was created or removed."""

    event_name: str
    """As AWS names it, e.g. ``ObjectCreated:Put`` or ``ObjectRemoved:Delete``."""
    bucket: str
    key: str
    """Decoded key, as the object is named in the bucket."""
    size: int | None = None
    etag: str | None = None
    sequencer: str | None = None
    event_time: str | None = None

    @property
    def created(self) -> bool:
        return self.event_name.startswith(CREATED)

    @property
    def removed(self) -> bool:
        return self.event_name.startswith(REMOVED)


def is_test_event(event: Mapping[str, Any]) -> bool:
    """Whether this is the ``s3:TestEvent`` S3 sends when a notification is set up."""
    return event.get("Event") == "s3:TestEvent"


def parse_s3_event(event: Mapping[str, Any]) -> list[ObjectEvent]:
    """The object events in ``event``; empty for ``s3:TestEvent``.

    Raises:
        EventError: the event is not an S3 notification, its SQS wrapping, or an EventBridge
            S3 event; or a record lacks the bucket or key.
    """
    if not isinstance(event, Mapping):
        raise EventError(f"an S3 event is a JSON object, got {type(event).__name__}")
    if is_test_event(event):
        return []
    if event.get("source") == "aws.s3" and "detail" in event:
        return [_from_eventbridge(event)]
    records = event.get("Records")
    if not isinstance(records, list):
        raise EventError(
            "not an S3 event: it has neither 'Records' nor the EventBridge 'source: aws.s3' shape"
        )
    out: list[ObjectEvent] = []
    for index, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise EventError(f"record {index} is not a JSON object")
        if record.get("eventSource") == "aws:sqs":
            try:
                body = json.loads(record["body"])
            except (KeyError, TypeError, ValueError) as exc:
                raise EventError(f"SQS record {index} has no JSON body: {exc}") from None
            out.extend(parse_s3_event(body))
            continue
        out.append(_from_record(record, index))
    return out


def _from_record(record: Mapping[str, Any], index: int) -> ObjectEvent:
    try:
        s3 = record["s3"]
        bucket = s3["bucket"]["name"]
        obj = s3["object"]
        key = unquote_plus(obj["key"])
        name = record["eventName"]
    except (KeyError, TypeError) as exc:
        raise EventError(f"S3 record {index} lacks {exc}; is it an S3 notification?") from None
    etag = obj.get("eTag")
    return ObjectEvent(
        event_name=str(name),
        bucket=str(bucket),
        key=key,
        size=obj.get("size"),
        etag=str(etag).strip('"') if etag else None,
        sequencer=obj.get("sequencer"),
        event_time=record.get("eventTime"),
    )


def _from_eventbridge(event: Mapping[str, Any]) -> ObjectEvent:
    detail = event["detail"]
    kind = {"Object Created": CREATED + ":Put", "Object Deleted": REMOVED + ":Delete"}
    try:
        name = kind[event["detail-type"]]
        obj = detail["object"]
        return ObjectEvent(
            event_name=name,
            bucket=str(detail["bucket"]["name"]),
            key=str(obj["key"]),
            size=obj.get("size"),
            etag=obj.get("etag"),
            sequencer=obj.get("sequencer"),
            event_time=event.get("time"),
        )
    except (KeyError, TypeError) as exc:
        raise EventError(f"EventBridge S3 event lacks {exc}") from None


def build_s3_event(
    bucket: str,
    objects: Iterable[ObjectEvent],
    *,
    region: str = "us-east-1",
    now: datetime | None = None,
) -> dict[str, Any]:
    """An S3 notification event with one record per object, shaped as AWS sends it."""
    when = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.") + "000Z"
    records = []
    for sequence, obj in enumerate(objects):
        body: dict[str, Any] = {
            "key": quote_plus(obj.key, safe="/"),
            "sequencer": obj.sequencer or f"{sequence:016X}",
        }
        if obj.created:
            body["size"] = obj.size if obj.size is not None else 0
            body["eTag"] = obj.etag or ""
        records.append(
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": region,
                "eventTime": obj.event_time or when,
                "eventName": obj.event_name,
                "userIdentity": {"principalId": "lockgate"},
                "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                "responseElements": {"x-amz-request-id": "lockgate", "x-amz-id-2": "lockgate"},
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "lockgate-local",
                    "bucket": {
                        "name": bucket,
                        "ownerIdentity": {"principalId": "lockgate"},
                        "arn": f"arn:aws:s3:::{bucket}",
                    },
                    "object": body,
                },
            }
        )
    return {"Records": records}
