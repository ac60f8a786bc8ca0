"""S3 events: recorded real-shaped events parse; built events parse back identically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lockgate.errors import EventError
from lockgate.events.s3 import ObjectEvent, build_s3_event, is_test_event, parse_s3_event

EVENTS = Path(__file__).parent.parent / "fixtures" / "events"


def recorded(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


def test_url_encoded_key_with_spaces_plus_and_unicode_is_decoded() -> None:
    (event,) = parse_s3_event(recorded("put_nested_unicode.json"))
    assert event.key == "raw/churn/2026/März export/customers a+b été.csv"
    assert event.bucket == "acme-lockgate-dev"
    assert event.created and not event.removed
    assert event.size == 1048576
    assert event.etag == "d41d8cd98f00b204e9800998ecf8427e"


def test_several_records_keep_their_order_and_kinds() -> None:
    events = parse_s3_event(recorded("multipart_two_records.json"))
    assert [e.key for e in events] == [
        "team-a/raw/churn/big file.csv.gz",
        "team-a/raw/churn/small.parquet",
    ]
    assert events[0].event_name == "ObjectCreated:CompleteMultipartUpload"
    assert events[0].etag is not None and events[0].etag.endswith("-88")
    assert events[1].event_name == "ObjectCreated:Copy"


def test_removed_record_has_no_size_or_etag() -> None:
    (event,) = parse_s3_event(recorded("removed.json"))
    assert event.removed and not event.created
    assert event.key == "raw/churn/old file.csv"
    assert event.size is None and event.etag is None


def test_s3_test_event_has_no_records() -> None:
    event = recorded("test_event.json")
    assert is_test_event(event)
    assert parse_s3_event(event) == []


def test_sqs_wrapped_event_from_a_dead_letter_queue_is_unwrapped() -> None:
    (event,) = parse_s3_event(recorded("sqs_wrapped.json"))
    assert event.key == "raw/churn/replayed file.jsonl"
    assert event.size == 512


def test_eventbridge_object_created_keys_are_not_decoded() -> None:
    (event,) = parse_s3_event(recorded("eventbridge_object_created.json"))
    assert event.key == "raw/churn/from eventbridge.csv"
    assert event.created


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"hello": 1}, "not an S3 event"),
        ({"Records": [{"eventSource": "aws:s3"}]}, "lacks"),
        ({"Records": ["x"]}, "not a JSON object"),
        ({"Records": [{"eventSource": "aws:sqs", "body": "{not json"}]}, "no JSON body"),
        ({"source": "aws.s3", "detail-type": "Object Restored", "detail": {}}, "EventBridge"),
        ([], "JSON object"),
    ],
)
def test_malformed_events_raise_event_error(event: Any, message: str) -> None:
    with pytest.raises(EventError, match=message):
        parse_s3_event(event)


def test_built_event_encodes_keys_as_aws_does() -> None:
    key = "raw/churn/März export/a+b c.csv"
    event = build_s3_event("bucket", [ObjectEvent("ObjectCreated:Put", "bucket", key, 3, "e")])
    raw_key = event["Records"][0]["s3"]["object"]["key"]
    assert raw_key == "raw/churn/M%C3%A4rz+export/a%2Bb+c.csv"
    assert event["Records"][0]["s3"]["bucket"]["arn"] == "arn:aws:s3:::bucket"
    assert event["Records"][0]["eventSource"] == "aws:s3"


keys = st.lists(
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20
    ).filter(lambda part: part not in (".", "..")),
    min_size=1,
    max_size=4,
).map("/".join)


@given(key=keys, removed=st.booleans())
def test_build_then_parse_round_trips_any_key(key: str, removed: bool) -> None:
    name = "ObjectRemoved:Delete" if removed else "ObjectCreated:Put"
    original = ObjectEvent(name, "b", key, None if removed else 10, None if removed else "abc")
    (parsed,) = parse_s3_event(json.loads(json.dumps(build_s3_event("b", [original]))))
    assert parsed.key == key
    assert parsed.removed == removed
    if not removed:
        assert (parsed.size, parsed.etag) == (10, "abc")
