"""The Store contract, run against every adapter (local folder, S3 on a moto server).

The first part is the contract itself: each test takes the parametrized ``store`` fixture and
must pass for every adapter. The second part covers what only one adapter has: S3's URI,
multipart uploads, conditional-write conflicts and error messages, and ``open_store``.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from lockgate.errors import ConfigError, ObjectNotFound, StoreError
from lockgate.ports.store import Store
from lockgate.wiring import open_store

MIB = 1024 * 1024


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def keys(store: Store, prefix: str = "") -> list[str]:
    return [info.key for info in store.list(prefix)]


# -- bytes in, bytes out ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"", b"customer_id,churned\n1,0\n2,1\n", bytes(range(256)) * 4096],
    ids=["empty", "csv", "binary-1MiB"],
)
def test_put_then_get_returns_the_same_bytes(store: Store, data: bytes) -> None:
    info = store.put("raw/churn/data.csv", data)

    assert store.get("raw/churn/data.csv") == data
    assert (info.key, info.size) == ("raw/churn/data.csv", len(data))
    head = store.head("raw/churn/data.csv")
    assert (head.key, head.size, head.etag) == (info.key, info.size, info.etag)


def test_put_replaces_the_object(store: Store) -> None:
    first = store.put("raw/churn/data.csv", b"old")
    second = store.put("raw/churn/data.csv", b"new and longer")

    assert store.get("raw/churn/data.csv") == b"new and longer"
    head = store.head("raw/churn/data.csv")
    assert head.size == len(b"new and longer")
    assert head.etag == second.etag != first.etag
    assert keys(store) == ["raw/churn/data.csv"]


def test_etag_follows_the_content(store: Store) -> None:
    a = store.put("raw/a.csv", b"same bytes")
    b = store.put("processed/v1/b.csv", b"same bytes")
    c = store.put("raw/c.csv", b"other bytes")

    assert a.etag == b.etag
    assert c.etag != a.etag
    assert store.head("raw/a.csv").etag == a.etag
    assert re.fullmatch(r"[0-9a-f]{32}", a.etag)  # unquoted, unlike S3's ETag header


def test_head_reports_when_the_object_was_written_in_utc(store: Store) -> None:
    store.put("raw/a.csv", b"x")

    written = store.head("raw/a.csv").last_modified

    assert written.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - written) < timedelta(minutes=5)


@pytest.mark.parametrize("read", ["get", "head", "get_file"])
def test_reading_a_missing_key_raises_object_not_found(
    store: Store, read: str, tmp_path: Path
) -> None:
    store.put("raw/churn/present.csv", b"x")
    calls: dict[str, Callable[[], object]] = {
        "get": lambda: store.get("raw/churn/missing.csv"),
        "head": lambda: store.head("raw/churn/missing.csv"),
        "get_file": lambda: store.get_file("raw/churn/missing.csv", tmp_path / "out.csv"),
    }

    with pytest.raises(ObjectNotFound, match=re.escape("raw/churn/missing.csv")) as raised:
        calls[read]()

    assert raised.value.key == "raw/churn/missing.csv"
    assert not store.exists("raw/churn/missing.csv")
    assert store.exists("raw/churn/present.csv")


# -- keys and listing ------------------------------------------------------------------------


def test_list_is_a_string_prefix_in_key_order(store: Store) -> None:
    written = [
        "raw/b.csv",
        "raw/ab.csv",
        "rawdata.csv",
        "raw/a/x.csv",
        "raw/ä.csv",
        "raw/Z.csv",
        "processed/v1/manifest.json",
        "raw/a.csv",
    ]
    for key in written:
        store.put(key, key.encode())

    # "." < "/" < "b": S3 orders keys by their UTF-8 bytes, and so must every store.
    assert keys(store, "raw/a") == ["raw/a.csv", "raw/a/x.csv", "raw/ab.csv"]
    assert keys(store, "raw/") == [
        "raw/Z.csv",
        "raw/a.csv",
        "raw/a/x.csv",
        "raw/ab.csv",
        "raw/b.csv",
        "raw/ä.csv",
    ]
    assert keys(store, "raw") == [*keys(store, "raw/"), "rawdata.csv"]
    assert keys(store) == sorted(written)
    assert keys(store, "raw/a/") == ["raw/a/x.csv"]
    assert keys(store, "nothing/") == []


def test_list_reports_what_head_reports(store: Store) -> None:
    store.put("a/b/c/d.txt", b"deep")
    store.put("a/b.txt", b"shallow!")
    store.put("a/b/c.txt", b"")

    listed = {info.key: info for info in store.list("a/b")}

    assert list(listed) == ["a/b.txt", "a/b/c.txt", "a/b/c/d.txt"]
    for key, info in listed.items():
        head = store.head(key)
        assert (info.size, info.etag) == (head.size, head.etag)
        assert info.size == len(store.get(key))


@pytest.mark.parametrize(
    "key",
    [
        "raw/churn/März 2026/a+b c.csv",
        "raw/with space.csv",
        "raw/plus+sign.csv",
        "raw/percent%20stays.csv",
        "raw/日本語/データ.jsonl",
        "raw/q?x=1&y=2#frag.csv",
    ],
)
def test_keys_with_spaces_plus_and_unicode_are_kept_as_written(store: Store, key: str) -> None:
    store.put(key, b"data")

    assert store.get(key) == b"data"
    assert store.head(key).key == key
    assert keys(store, "raw/") == [key]
    store.delete(key)
    assert not store.exists(key)


@pytest.mark.parametrize(
    "key", ["../x", "/abs", "", "raw//x.csv", "raw/./x.csv", "raw/../x", "raw/"]
)
@pytest.mark.parametrize("operation", ["put", "put_if_absent", "get", "delete"])
def test_invalid_keys_are_refused(store: Store, key: str, operation: str) -> None:
    calls: dict[str, Callable[[], object]] = {
        "put": lambda: store.put(key, b"x"),
        "put_if_absent": lambda: store.put_if_absent(key, b"x"),
        "get": lambda: store.get(key),
        "delete": lambda: store.delete(key),
    }

    with pytest.raises(StoreError, match="not a valid object key") as raised:
        calls[operation]()

    assert not isinstance(raised.value, ObjectNotFound)
    assert keys(store) == []


@pytest.mark.parametrize("prefix", ["../", ".lockgate-meta/", "./"])
def test_list_shows_only_the_stores_objects(
    request: pytest.FixtureRequest, store: Store, prefix: str
) -> None:
    store.put("raw/a.csv", b"x")

    assert keys(store, prefix) == []


def test_an_object_that_was_written_is_listed(request: pytest.FixtureRequest, store: Store) -> None:
    try:
        store.put("raw/.lockgate-notes.txt", b"x")
    except StoreError:
        return  # refusing the name is fine; keeping an object list() cannot see is not

    assert keys(store, "raw/") == ["raw/.lockgate-notes.txt"]


def test_a_key_ending_in_json_can_also_be_a_prefix(
    request: pytest.FixtureRequest, store: Store
) -> None:
    store.put("report", b"1")
    store.put("report.json/part-0", b"2")

    assert keys(store) == ["report", "report.json/part-0"]
    assert store.get("report.json/part-0") == b"2"


# -- delete ----------------------------------------------------------------------------------


def test_delete_is_idempotent(store: Store) -> None:
    store.put("raw/a.csv", b"x")
    store.put("raw/b.csv", b"y")

    store.delete("raw/a.csv")
    store.delete("raw/a.csv")
    store.delete("never/written.csv")

    with pytest.raises(ObjectNotFound):
        store.get("raw/a.csv")
    assert keys(store) == ["raw/b.csv"]


def test_deleting_a_name_that_is_only_a_prefix_changes_nothing(
    request: pytest.FixtureRequest, store: Store
) -> None:
    store.put("raw/a.csv", b"x")

    store.delete("raw")

    assert store.get("raw/a.csv") == b"x"


def test_a_name_can_be_written_once_nothing_is_under_it(
    request: pytest.FixtureRequest, store: Store
) -> None:
    store.put("models/churn/v1", b"package")
    store.delete("models/churn/v1")

    store.put("models/churn", b"now an object")

    assert store.get("models/churn") == b"now an object"


# -- put_if_absent ---------------------------------------------------------------------------


def test_put_if_absent_writes_only_the_first_time(store: Store) -> None:
    assert store.put_if_absent("ledger/runs/1.json", b"first") is True
    written = store.head("ledger/runs/1.json")

    assert store.put_if_absent("ledger/runs/1.json", b"second") is False

    assert store.get("ledger/runs/1.json") == b"first"
    assert store.head("ledger/runs/1.json").etag == written.etag
    store.delete("ledger/runs/1.json")
    assert store.put_if_absent("ledger/runs/1.json", b"third") is True
    assert store.get("ledger/runs/1.json") == b"third"


def test_put_if_absent_has_exactly_one_winner_among_racing_writers(store: Store) -> None:
    writers = 8
    start = threading.Barrier(writers, timeout=30)

    def claim(writer: int) -> bool:
        start.wait()
        return store.put_if_absent("ledger/lock", f"writer {writer}".encode())

    with ThreadPoolExecutor(writers) as pool:
        won = list(pool.map(claim, range(writers)))

    assert won.count(True) == 1
    assert store.get("ledger/lock") == f"writer {won.index(True)}".encode()


def test_put_if_absent_never_claims_an_object_that_is_not_there(
    request: pytest.FixtureRequest, store: Store
) -> None:
    store.put("runs/1/metrics.json", b"{}")

    try:
        won = store.put_if_absent("runs/1", b"x")
    except StoreError:
        return  # a folder store may refuse a name that prefixes other objects, as put does

    assert won is True
    assert store.get("runs/1") == b"x"


def test_etag_matches_the_content_after_concurrent_puts(
    request: pytest.FixtureRequest, store: Store
) -> None:
    writers = 4
    for round_ in range(40):
        key = f"raw/{round_}.csv"
        start = threading.Barrier(writers, timeout=30)

        def write(writer: int, key: str = key, start: threading.Barrier = start) -> None:
            start.wait()
            store.put(key, bytes([writer]) * (100 + writer))

        with ThreadPoolExecutor(writers) as pool:
            list(pool.map(write, range(writers)))

        content = store.get(key)
        reference = store.put(f"check/{round_}", content).etag  # equal content, equal ETag
        assert store.head(key).etag == reference, f"round {round_}"


# -- files -----------------------------------------------------------------------------------


def test_big_file_round_trips_and_reports_progress(store: Store, tmp_path: Path) -> None:
    data = os.urandom(11 * MIB + 123)
    source = tmp_path / "upload" / "big.bin"
    source.parent.mkdir()
    source.write_bytes(data)
    uploaded: list[int] = []

    info = store.put_file("raw/big/big.bin", source, progress=uploaded.append)

    assert sum(uploaded) == len(data)
    assert info.size == len(data)
    assert store.head("raw/big/big.bin").etag == info.etag

    dest = tmp_path / "download" / "nested" / "copy.bin"
    downloaded: list[int] = []
    got = store.get_file("raw/big/big.bin", dest, progress=downloaded.append)

    assert dest.read_bytes() == data
    assert sum(downloaded) == len(data)
    assert (got.size, got.etag) == (len(data), info.etag)
    assert [path.name for path in dest.parent.iterdir()] == ["copy.bin"]


@pytest.mark.parametrize("failure", [OSError, KeyboardInterrupt])
def test_failed_get_file_leaves_the_destination_whole_and_no_temp_file(
    store: Store, tmp_path: Path, failure: type[BaseException]
) -> None:
    data = os.urandom(6 * MIB)  # several S3 parts: the download is under way when it fails
    store.put("raw/x.bin", data)
    dest = tmp_path / "download" / "x.bin"
    dest.parent.mkdir()
    dest.write_bytes(b"the previous download")

    def interrupted(moved: int) -> None:
        raise failure("disk full, or Ctrl-C")

    with pytest.raises(failure):
        store.get_file("raw/x.bin", dest, progress=interrupted)

    assert [path.name for path in dest.parent.iterdir()] == ["x.bin"]
    assert dest.read_bytes() in (b"the previous download", data)


@pytest.mark.parametrize("failure", [OSError, KeyboardInterrupt])
def test_failed_put_file_leaves_the_previous_object(
    store: Store, tmp_path: Path, failure: type[BaseException]
) -> None:
    store.put("raw/x.bin", b"previous version")
    source = tmp_path / "x.bin"
    source.write_bytes(os.urandom(6 * MIB))

    def interrupted(moved: int) -> None:
        raise failure("disk full, or Ctrl-C")

    with pytest.raises(failure):
        store.put_file("raw/x.bin", source, progress=interrupted)

    assert store.get("raw/x.bin") == b"previous version"
    assert keys(store) == ["raw/x.bin"]


def test_get_file_of_a_missing_key_creates_nothing(store: Store, tmp_path: Path) -> None:
    dest = tmp_path / "download" / "x.bin"
    dest.parent.mkdir()

    with pytest.raises(ObjectNotFound):
        store.get_file("raw/missing.bin", dest)

    assert list(dest.parent.iterdir()) == []


# -- choosing an adapter ---------------------------------------------------------------------


def test_open_store_lists_the_valid_schemes_for_an_unknown_one() -> None:
    with pytest.raises(ConfigError) as raised:
        open_store("gs://bucket/team")

    assert "file://" in str(raised.value)
    assert "s3://" in str(raised.value)


def test_open_store_opens_a_folder(tmp_path: Path) -> None:
    opened = open_store((tmp_path / "store").as_uri())
    opened.put("raw/a.csv", b"x")

    assert (tmp_path / "store" / "raw" / "a.csv").read_bytes() == b"x"


def test_open_store_refuses_a_relative_folder_uri() -> None:
    with pytest.raises(ConfigError, match="file:///"):
        open_store("file:relative/store")


def test_open_store_opens_s3_through_the_environment(s3_store: Store, bucket: str) -> None:
    s3_store.put("raw/a.csv", b"x")

    opened = open_store(f"s3://{bucket}/team")

    assert (opened.bucket, opened.prefix) == (bucket, "team/")
    assert opened.get("raw/a.csv") == b"x"


def test_open_store_reports_a_bad_s3_uri_as_config() -> None:
    with pytest.raises(ConfigError, match="bucket"):
        open_store("s3://")


# -- S3 only ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "bucket", "prefix"),
    [
        ("s3://ml-data", "ml-data", ""),
        ("s3://ml-data/", "ml-data", ""),
        ("s3://ml-data/team", "ml-data", "team/"),
        ("s3://ml-data/team/churn/", "ml-data", "team/churn/"),
    ],
)
def test_s3_uri_gives_the_bucket_and_prefix(uri: str, bucket: str, prefix: str) -> None:
    from lockgate.aws.s3_store import S3Store

    store = S3Store(uri, client=object())

    assert (store.bucket, store.prefix) == (bucket, prefix)
    assert store.event_key(bucket, f"{prefix}raw/a.csv") == "raw/a.csv"


@pytest.mark.parametrize(
    "uri", ["s3://", "s3:///team", "s3://ml data/team", "s3://ml-data/a//b", "file:///ml-data"]
)
def test_s3_store_refuses_a_bad_uri(uri: str) -> None:
    from lockgate.aws.s3_store import S3Store

    with pytest.raises(StoreError, match="s3://"):
        S3Store(uri, client=object())


def test_s3_store_sees_only_objects_under_its_prefix(
    s3_store: Store, bucket: str, aws_env: str
) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=aws_env)
    for name in ["outside.csv", "teamwork/raw/a.csv", "team/raw/", "team/raw/a.csv"]:
        client.put_object(Bucket=bucket, Key=name, Body=b"x")

    s3_store.put("raw/b.csv", b"y")

    assert keys(s3_store) == ["raw/a.csv", "raw/b.csv"]  # the "team/raw/" folder marker is not
    assert client.get_object(Bucket=bucket, Key="team/raw/b.csv")["Body"].read() == b"y"
    with pytest.raises(ObjectNotFound):
        s3_store.get("outside.csv")


def test_s3_uploads_big_files_in_parts(s3_store: Store, tmp_path: Path) -> None:
    big = os.urandom(11 * MIB)
    small = b"a,b\n1,2\n"
    (tmp_path / "big.bin").write_bytes(big)
    (tmp_path / "small.csv").write_bytes(small)

    big_info = s3_store.put_file("raw/big.bin", tmp_path / "big.bin")
    small_info = s3_store.put_file("raw/small.csv", tmp_path / "small.csv")

    # S3's ETag is the MD5 of a single-part object; of a multipart one, the MD5 of the parts'
    # MD5s plus the part count: 11 MiB in 5 MiB parts is 3.
    assert big_info.etag.endswith("-3")
    assert big_info.etag != md5(big)
    assert small_info.etag == md5(small)
    assert s3_store.put("raw/put.csv", small).etag == md5(small)


MISSING_BUCKET = "lockgate-no-such-bucket"


@pytest.mark.parametrize(
    "operation",
    ["get", "head", "exists", "put", "put_if_absent", "list", "delete", "put_file", "get_file"],
)
def test_s3_store_on_a_missing_bucket_says_what_to_check(
    aws_env: str, operation: str, tmp_path: Path
) -> None:
    from lockgate.aws.s3_store import S3Store

    store = S3Store(f"s3://{MISSING_BUCKET}/team/")
    (tmp_path / "a.csv").write_bytes(b"x")
    calls: dict[str, Callable[[], object]] = {
        "get": lambda: store.get("raw/a.csv"),
        "head": lambda: store.head("raw/a.csv"),
        "exists": lambda: store.exists("raw/a.csv"),
        "put": lambda: store.put("raw/a.csv", b"x"),
        "put_if_absent": lambda: store.put_if_absent("raw/a.csv", b"x"),
        "list": lambda: keys(store, "raw/"),
        "delete": lambda: store.delete("raw/a.csv"),
        "put_file": lambda: store.put_file("raw/a.csv", tmp_path / "a.csv"),
        "get_file": lambda: store.get_file("raw/a.csv", tmp_path / "b.csv"),
    }

    with pytest.raises(StoreError) as raised:
        calls[operation]()

    message = str(raised.value)
    assert not isinstance(raised.value, ObjectNotFound)
    assert f"bucket '{MISSING_BUCKET}' does not exist" in message
    assert "AWS_ENDPOINT_URL" in message
    assert "\n" not in message


def test_s3_store_says_when_the_endpoint_cannot_be_reached(
    aws_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lockgate.aws.s3_store import S3Store

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")

    with pytest.raises(StoreError, match=r"cannot reach S3.*AWS_ENDPOINT_URL"):
        S3Store("s3://ml-data/team/").get("raw/a.csv")


def test_s3_store_says_when_there_are_no_credentials(
    aws_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lockgate.aws.s3_store import S3Store

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(name, raising=False)

    with pytest.raises(StoreError, match=r"no AWS credentials.*AWS_PROFILE"):
        S3Store("s3://ml-data/team/").get("raw/a.csv")


def _stubbed_store(monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config
    from botocore.stub import Stubber

    from lockgate.aws import s3_store

    monkeypatch.setattr(s3_store, "CONFLICT_BACKOFF", 0)
    client = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",  # the stub answers; nothing is sent
        config=Config(signature_version=UNSIGNED),
    )
    return s3_store.S3Store("s3://ml-data/team", client=client), Stubber(client)


def test_s3_put_if_absent_writes_again_after_a_conflict(monkeypatch: pytest.MonkeyPatch) -> None:
    # moto never answers 409, so S3's answer to a write raced by a delete is stubbed here.
    store, stub = _stubbed_store(monkeypatch)
    expected = {"Bucket": "ml-data", "Key": "team/ledger/lock", "Body": b"me", "IfNoneMatch": "*"}
    stub.add_client_error(
        "put_object", "ConditionalRequestConflict", http_status_code=409, expected_params=expected
    )
    stub.add_response("put_object", {"ETag": '"abc"'}, expected)

    with stub:
        assert store.put_if_absent("ledger/lock", b"me") is True
        stub.assert_no_pending_responses()


def test_s3_put_if_absent_gives_up_on_endless_conflicts(monkeypatch: pytest.MonkeyPatch) -> None:
    from lockgate.aws.s3_store import CONFLICT_ATTEMPTS

    store, stub = _stubbed_store(monkeypatch)
    for _ in range(CONFLICT_ATTEMPTS):
        stub.add_client_error("put_object", "ConditionalRequestConflict", http_status_code=409)

    with stub, pytest.raises(StoreError, match="try again"):
        store.put_if_absent("ledger/lock", b"me")
    stub.assert_no_pending_responses()
