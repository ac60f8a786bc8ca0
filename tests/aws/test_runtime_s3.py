"""`lockgate up`'s runtime watching an S3 store (moto over HTTP): same events, same versions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from lockgate.aws.s3_store import S3Store
from lockgate.config import DatasetConfig
from lockgate.events.s3 import parse_s3_event
from lockgate.local.runtime import Runtime
from lockgate.pipelines.data.versions import list_versions, load_split


def test_runtime_dispatches_s3_uploads_under_a_prefix(
    bucket: str, churn_config: DatasetConfig, churn_csv: Callable[..., Path]
) -> None:
    store = S3Store(f"s3://{bucket}/team")
    store.put_file("raw/churn/jan 2026.csv", churn_csv(rows=500))
    runtime = Runtime(store, {"churn": churn_config})

    assert runtime.poll() is None  # first sighting: wait until the object is seen unchanged
    dispatch = runtime.poll()

    assert dispatch is not None and dispatch.result is not None
    (record,) = parse_s3_event(dispatch.event)
    assert (record.bucket, record.key) == (bucket, "team/raw/churn/jan 2026.csv")
    assert dispatch.event["Records"][0]["s3"]["object"]["key"] == "team/raw/churn/jan+2026.csv"
    assert [r.status for r in dispatch.result.prepared] == ["committed"]
    (manifest,) = list_versions(store, "churn")
    x, _ = load_split(store, manifest, "validation")
    assert x.shape == (75, manifest.n_features)
    assert runtime.poll() is None  # nothing new
