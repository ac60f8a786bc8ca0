"""The ledger on every store adapter: append-only, numbered, race-safe, queryable by time."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from lockgate.local.file_store import FileStore
from lockgate.pipelines.ledger import Ledger, LedgerConflict


def test_records_are_numbered_and_read_back_in_order(file_store: FileStore) -> None:
    ledger = Ledger(file_store)
    first = ledger.append("releases", "prod", {"model": "churn", "version": 1})
    second = ledger.append("releases", "prod", {"model": "churn", "version": 2})
    assert (first.seq, second.seq) == (0, 1)
    assert [e.record["version"] for e in ledger.entries("releases", "prod")] == [1, 2]
    assert ledger.latest("releases", "prod") == second
    assert ledger.entries("releases", "staging") == []
    assert [i.key for i in file_store.list("ledger/")] == [first.key, second.key]


def test_what_was_current_at_a_time(file_store: FileStore) -> None:
    ledger = Ledger(file_store)
    t0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    ledger.append("releases", "prod", {"version": 1}, now=t0)
    ledger.append("releases", "prod", {"version": 2}, now=t0 + timedelta(days=2))
    assert ledger.at("releases", "prod", t0 - timedelta(seconds=1)) is None
    assert ledger.at("releases", "prod", t0 + timedelta(days=1)).record["version"] == 1  # type: ignore[union-attr]
    assert ledger.at("releases", "prod", datetime(2026, 11, 5)).record["version"] == 2  # type: ignore[union-attr]


def test_a_conditional_append_on_a_stale_tail_is_refused(file_store: FileStore) -> None:
    ledger = Ledger(file_store)
    ledger.append("releases", "prod", {"version": 1}, after=None)
    with pytest.raises(LedgerConflict, match="moved on"):
        ledger.append("releases", "prod", {"version": 2}, after=None)
    ledger.append("releases", "prod", {"version": 2}, after=0)
    assert len(ledger.entries("releases", "prod")) == 2


def test_of_racing_promotions_exactly_one_wins(file_store: FileStore) -> None:
    ledger = Ledger(file_store)
    start = threading.Barrier(6, timeout=30)
    won: list[int] = []
    refused: list[str] = []

    def promote(version: int) -> None:
        start.wait()
        try:
            Ledger(FileStore(file_store.uri)).append(
                "releases", "prod", {"version": version}, after=None
            )
            won.append(version)
        except LedgerConflict as exc:
            refused.append(str(exc))

    threads = [threading.Thread(target=promote, args=(v,)) for v in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(won) == 1 and len(refused) == 5
    (entry,) = ledger.entries("releases", "prod")
    assert entry.record["version"] == won[0]


def test_unconditional_appends_from_many_writers_all_land(file_store: FileStore) -> None:
    start = threading.Barrier(5, timeout=30)

    def log(writer: int) -> None:
        start.wait()
        Ledger(FileStore(file_store.uri)).append("runs", "data", {"writer": writer})

    threads = [threading.Thread(target=log, args=(w,)) for w in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    entries = Ledger(file_store).entries("runs", "data")
    assert sorted(e.record["writer"] for e in entries) == [0, 1, 2, 3, 4]
    assert [e.seq for e in entries] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(("kind", "scope"), [("", "prod"), ("releases", "a/b"), (".x", "prod")])
def test_stream_names_must_be_key_parts(file_store: FileStore, kind: str, scope: str) -> None:
    with pytest.raises(ValueError, match="cannot be part of a key"):
        Ledger(file_store).append(kind, scope, {})


def test_the_ledger_lives_in_an_s3_store_too(bucket: str) -> None:
    from lockgate.aws.s3_store import S3Store

    ledger = Ledger(S3Store(f"s3://{bucket}/prod-env"))
    ledger.append("releases", "prod", {"version": 1}, after=None)
    with pytest.raises(LedgerConflict):
        ledger.append("releases", "prod", {"version": 9}, after=None)
    ledger.append("releases", "prod", {"version": 2}, after=0)
    assert [e.record["version"] for e in ledger.entries("releases", "prod")] == [1, 2]
