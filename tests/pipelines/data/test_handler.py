"""The data handler under at-least-once, unordered delivery, and concurrent runs."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lockgate.config import DatasetConfig
from lockgate.errors import EventError
from lockgate.events.s3 import ObjectEvent, build_s3_event
from lockgate.local.file_store import FileStore
from lockgate.pipelines.data import handle
from lockgate.pipelines.data.versions import list_versions
from lockgate.pipelines.runs import Trigger, recent_runs

FIXTURES = Path(__file__).parent.parent.parent / "fixtures" / "events"


def created(store: FileStore, *keys: str) -> dict[str, Any]:
    objects = [
        ObjectEvent(
            "ObjectCreated:Put", store.bucket, key, store.head(key).size, store.head(key).etag
        )
        for key in keys
    ]
    return build_s3_event(store.bucket, objects)


def test_duplicate_event_finds_the_version_committed(
    file_store: FileStore, churn_config: DatasetConfig, churn_csv: Callable[..., Path]
) -> None:
    file_store.put_file("raw/churn/a.csv", churn_csv(rows=600))
    event = created(file_store, "raw/churn/a.csv")
    first = handle(event, file_store, {"churn": churn_config})
    again = handle(json.loads(json.dumps(event)), file_store, {"churn": churn_config})
    assert [r.status for r in first.prepared] == ["committed"]
    assert [r.status for r in again.prepared] == ["exists"]
    assert again.prepared[0].version == first.prepared[0].version
    assert len(list_versions(file_store, "churn")) == 1


def test_out_of_order_events_prepare_the_files_present_now(
    file_store: FileStore, churn_config: DatasetConfig, churn_csv: Callable[..., Path]
) -> None:
    file_store.put_file("raw/churn/a.csv", churn_csv("a.csv", rows=500, seed=1))
    event_a = created(file_store, "raw/churn/a.csv")
    file_store.put_file("raw/churn/b.csv", churn_csv("b.csv", rows=500, seed=2))
    event_b = created(file_store, "raw/churn/b.csv")
    # b's event arrives first: the version already includes a and b.
    late = handle(event_b, file_store, {"churn": churn_config})
    early = handle(event_a, file_store, {"churn": churn_config})
    assert late.prepared[0].status == "committed"
    assert late.prepared[0].rows["total"] == 1000
    assert early.prepared[0].status == "exists"
    assert early.prepared[0].version == late.prepared[0].version


def test_one_event_with_many_records_prepares_each_dataset_once(
    file_store: FileStore, churn_config: DatasetConfig, churn_csv: Callable[..., Path]
) -> None:
    for name in ("a.csv", "b.csv", "c.csv"):
        file_store.put_file(f"raw/churn/{name}", churn_csv(name, rows=300))
    event = created(file_store, "raw/churn/a.csv", "raw/churn/b.csv", "raw/churn/c.csv")
    result = handle(event, file_store, {"churn": churn_config})
    assert [r.status for r in result.prepared] == ["committed"]
    assert result.prepared[0].rows["total"] == 900


def test_records_the_data_pipeline_does_not_own_are_ignored_with_a_reason(
    file_store: FileStore, churn_config: DatasetConfig
) -> None:
    file_store.put("raw/other/x.csv", b"a,b\n1,2\n")
    file_store.put("processed/churn/x.json", b"{}")
    event = created(file_store, "raw/other/x.csv", "processed/churn/x.json")
    event["Records"].append(
        build_s3_event(
            "someone-elses-bucket", [ObjectEvent("ObjectCreated:Put", "b", "raw/churn/z")]
        )["Records"][0]
    )
    event["Records"][-1]["s3"]["bucket"]["name"] = "someone-elses-bucket"
    removal = build_s3_event(
        file_store.bucket,
        [ObjectEvent("ObjectRemoved:Delete", file_store.bucket, "raw/churn/gone.csv")],
    )
    event["Records"].extend(removal["Records"])
    result = handle(event, file_store, {"churn": churn_config})
    assert result.prepared == []
    reasons = dict(result.ignored)
    assert "not configured" in reasons["raw/other/x.csv"]
    assert "not a raw upload" in reasons["processed/churn/x.json"]
    assert "outside this store" in reasons["raw/churn/z"]
    assert "removal" in reasons["raw/churn/gone.csv"]
    assert list(file_store.list("processed/churn/dv")) == []


def test_s3_test_event_does_nothing(file_store: FileStore, churn_config: DatasetConfig) -> None:
    event = json.loads((FIXTURES / "test_event.json").read_text())
    result = handle(event, file_store, {"churn": churn_config})
    assert result.test_event and result.prepared == [] and result.ignored == []
    assert result.to_json()["test_event"] is True


def test_malformed_event_is_an_error(file_store: FileStore, churn_config: DatasetConfig) -> None:
    with pytest.raises(EventError):
        handle({"Records": [{"nope": 1}]}, file_store, {"churn": churn_config})


def test_concurrent_runs_commit_exactly_one_version(
    file_store: FileStore, churn_config: DatasetConfig, churn_csv: Callable[..., Path]
) -> None:
    file_store.put_file("raw/churn/a.csv", churn_csv(rows=3000))
    event = created(file_store, "raw/churn/a.csv")
    statuses: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def run() -> None:
        try:
            barrier.wait(timeout=30)
            store = FileStore(
                file_store.uri
            )  # each worker its own adapter, like separate processes
            statuses.extend(
                r.status for r in handle(event, store, {"churn": churn_config}).prepared
            )
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert sorted(statuses).count("committed") == 1
    assert len(statuses) == 4
    (manifest,) = list_versions(file_store, "churn")
    from lockgate.pipelines.data.versions import load_split

    load_split(file_store, manifest, "train")  # every file still matches the manifest
    leftovers = [p for p in Path(file_store.root).rglob(".lockgate-tmp*")]
    assert leftovers == []


def test_an_upload_is_one_recorded_run_per_dataset_naming_its_keys(
    file_store: FileStore, churn_config: DatasetConfig, churn_csv: Callable[..., Path]
) -> None:
    names = ("a.csv", "b.csv", "c.csv", "d.csv")
    for seed, name in enumerate(names):
        file_store.put_file(f"raw/churn/{name}", churn_csv(name, rows=200, seed=seed))
    result = handle(
        created(file_store, *(f"raw/churn/{name}" for name in names)),
        file_store,
        {"churn": churn_config},
    )

    (view,) = recent_runs(file_store, "data")
    record = view.record
    assert view.state == "succeeded"
    assert record["trigger"] == {
        "kind": "upload",
        "detail": "raw/churn/a.csv, raw/churn/b.csv, raw/churn/c.csv and 1 more",
    }
    assert record["inputs"] == {
        "dataset": "churn",
        "raw_objects": 4,
        "raw_keys": [f"raw/churn/{name}" for name in names],
    }
    assert record["outputs"]["status"] == "committed"
    assert record["outputs"]["version"] == result.prepared[0].version
    assert record["outputs"]["rows"]["total"] == 800
    assert (record["outputs"]["quarantined"], record["outputs"]["quarantined_keys"]) == (0, [])


def test_a_quarantined_upload_is_a_failed_run_that_says_what_to_do(
    file_store: FileStore, churn_config: DatasetConfig
) -> None:
    file_store.put("raw/churn/broken.csv", b"\x00\x01garbage")
    event = created(file_store, "raw/churn/broken.csv")
    (prepared,) = handle(event, file_store, {"churn": churn_config}).prepared
    assert prepared.status == "all_quarantined"

    (view,) = recent_runs(file_store, "data")
    assert view.state == "failed"
    assert view.record["trigger"] == {"kind": "upload", "detail": "raw/churn/broken.csv"}
    assert view.record["error"] == "all 1 raw file(s) were rejected; see quarantine/churn/"
    (item,) = prepared.quarantined
    assert file_store.exists(item.location + "error.json")
    assert view.record["hint"] == (
        f"{item.location}error.json says why raw/churn/broken.csv was rejected. "
        "Fix the file(s) and upload them to raw/churn/ again"
    )
    assert view.record["outputs"]["quarantined"] == 1
    assert view.record["outputs"]["quarantined_keys"] == ["raw/churn/broken.csv"]


def test_the_caller_can_say_what_started_the_runs(
    file_store: FileStore, churn_config: DatasetConfig
) -> None:
    file_store.put("raw/churn/broken.csv", b"\x00\x01garbage")
    trigger = Trigger("lambda", "req-7 raw/churn/broken.csv")
    handle(
        created(file_store, "raw/churn/broken.csv"),
        file_store,
        {"churn": churn_config},
        trigger=trigger,
    )
    (view,) = recent_runs(file_store, "data")
    assert view.record["trigger"] == {"kind": "lambda", "detail": "req-7 raw/churn/broken.csv"}
