"""The local event runtime: polls raw/ and dispatches the S3 events AWS would send."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from lockgate.config import DatasetConfig
from lockgate.events.s3 import parse_s3_event
from lockgate.local.file_store import FileStore
from lockgate.local.runtime import Dispatch, Runtime
from lockgate.pipelines.data.versions import list_versions
from lockgate.ports.store import ObjectInfo

ROWS = 300
WAIT = 30.0


@pytest.fixture
def runtime(file_store: FileStore, churn_config: DatasetConfig) -> Runtime:
    return Runtime(file_store, {"churn": churn_config})


@pytest.fixture
def upload(file_store: FileStore, churn_csv: Callable[..., Path]) -> Callable[..., ObjectInfo]:
    """``upload(key, seed=7)`` puts a churn CSV (customers drawn with ``seed``) at ``key``."""

    def put(key: str, seed: int = 7) -> ObjectInfo:
        return file_store.put_file(key, churn_csv(f"churn-{seed}.csv", rows=ROWS, seed=seed))

    return put


def dispatch_now(runtime: Runtime) -> Dispatch:
    """Two polls: the first sees the objects, the second finds them unchanged and dispatches."""
    assert runtime.poll() is None
    dispatch = runtime.poll()
    assert dispatch is not None
    return dispatch


def committed(dispatch: Dispatch) -> str:
    """The version the dispatch committed."""
    assert dispatch.error is None, dispatch.error
    assert dispatch.result is not None
    (prepared,) = dispatch.result.prepared
    assert prepared.status == "committed", prepared.message
    assert prepared.version is not None
    return prepared.version


def test_nothing_is_dispatched_from_an_empty_store(runtime: Runtime) -> None:
    assert runtime.poll() is None
    assert runtime.poll() is None


def test_an_object_is_dispatched_on_the_second_poll_that_sees_it_unchanged(
    runtime: Runtime, file_store: FileStore, upload: Callable[..., ObjectInfo]
) -> None:
    info = upload("raw/churn/churn.csv")

    assert runtime.poll() is None
    dispatch = runtime.poll()

    assert dispatch is not None
    assert dispatch.keys == ["raw/churn/churn.csv"]
    version = committed(dispatch)
    assert file_store.exists(f"processed/churn/{version}/manifest.json")
    (event,) = parse_s3_event(dispatch.event)
    assert event.created
    assert event.etag == info.etag
    assert event.size == info.size


def test_an_object_changing_between_polls_waits_until_it_is_stable(
    runtime: Runtime, upload: Callable[..., ObjectInfo]
) -> None:
    upload("raw/churn/churn.csv", seed=7)
    assert runtime.poll() is None
    final = upload("raw/churn/churn.csv", seed=8)  # still being written, say

    assert runtime.poll() is None
    dispatch = runtime.poll()

    assert dispatch is not None
    (event,) = parse_s3_event(dispatch.event)
    assert event.etag == final.etag


def test_keys_with_spaces_unicode_and_plus_are_url_encoded_and_round_trip(
    runtime: Runtime, file_store: FileStore, upload: Callable[..., ObjectInfo]
) -> None:
    keys = ["raw/churn/2026/März été.csv", "raw/churn/a+b.csv", "raw/churn/my file.csv"]
    for seed, key in enumerate(keys, start=1):
        upload(key, seed=seed)

    dispatch = dispatch_now(runtime)

    event = json.loads(json.dumps(dispatch.event))  # JSON, as a Lambda receives it
    raw_keys = sorted(record["s3"]["object"]["key"] for record in event["Records"])
    assert raw_keys == [
        "raw/churn/2026/M%C3%A4rz+%C3%A9t%C3%A9.csv",
        "raw/churn/a%2Bb.csv",
        "raw/churn/my+file.csv",
    ]
    parsed = parse_s3_event(event)
    assert sorted(item.key for item in parsed) == sorted(keys)
    assert {item.bucket for item in parsed} == {file_store.bucket}
    assert {item.key: item.etag for item in parsed} == {
        key: file_store.head(key).etag for key in keys
    }
    committed(dispatch)
    (manifest,) = list_versions(file_store, "churn")
    assert sorted(source.key for source in manifest.sources) == sorted(keys)


def test_unchanged_objects_are_not_dispatched_again(
    runtime: Runtime, upload: Callable[..., ObjectInfo]
) -> None:
    upload("raw/churn/churn.csv", seed=7)
    committed(dispatch_now(runtime))
    assert runtime.poll() is None
    assert runtime.poll() is None

    upload("raw/churn/churn-02.csv", seed=8)
    dispatch = dispatch_now(runtime)

    assert dispatch.keys == ["raw/churn/churn-02.csv"]
    assert [item.key for item in parse_s3_event(dispatch.event)] == ["raw/churn/churn-02.csv"]


def test_a_changed_object_is_dispatched_again_and_makes_a_new_version(
    runtime: Runtime, file_store: FileStore, upload: Callable[..., ObjectInfo]
) -> None:
    upload("raw/churn/churn.csv", seed=7)
    first = committed(dispatch_now(runtime))

    changed = upload("raw/churn/churn.csv", seed=8)
    dispatch = dispatch_now(runtime)

    assert dispatch.keys == ["raw/churn/churn.csv"]
    second = committed(dispatch)
    assert second != first
    versions = {manifest.version: manifest for manifest in list_versions(file_store, "churn")}
    assert set(versions) == {first, second}
    assert [source.etag for source in versions[second].sources] == [changed.etag]


def test_a_handler_failure_is_reported_and_the_runtime_keeps_going(
    runtime: Runtime, file_store: FileStore, upload: Callable[..., ObjectInfo]
) -> None:
    # An object named "processed" where the version folder should be: every write under
    # processed/ fails, as a denied write to S3 would.
    upload("raw/churn/churn.csv", seed=7)
    blocker = file_store.root / "processed"
    blocker.write_text("not a folder", encoding="utf-8")

    failed = dispatch_now(runtime)

    assert failed.result is None
    assert failed.error is not None
    assert failed.error.startswith("StoreError: "), failed.error
    assert "processed/churn/" in failed.error
    assert failed.keys == ["raw/churn/churn.csv"]

    blocker.unlink()
    upload("raw/churn/churn-02.csv", seed=8)
    recovered = dispatch_now(runtime)

    assert recovered.keys == ["raw/churn/churn-02.csv"]
    committed(recovered)
    (manifest,) = list_versions(file_store, "churn")
    assert sorted(source.key for source in manifest.sources) == [
        "raw/churn/churn-02.csv",
        "raw/churn/churn.csv",
    ]
