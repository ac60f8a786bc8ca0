"""Data capture: SageMaker-shaped JSON lines in the store, written off the request path."""

from __future__ import annotations

import json
import random
import re
import uuid
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from lockgate.errors import StoreError
from lockgate.local.file_store import FileStore
from lockgate.ports.store import ObjectInfo
from lockgate.serving.app import create_app
from lockgate.serving.capture import Capture
from tests.cli.conftest import wait_until
from tests.serving.conftest import Packages, Sample, metric_values, serving

PREFIX = "monitoring/capture/churn-dev/AllTraffic/"
KEY = re.compile(
    re.escape(PREFIX) + r"\d{4}/\d{2}/\d{2}/\d{2}/\d{2}-\d{2}-\d{3}-[0-9a-f-]{36}\.jsonl$"
)


def capturing(package: Path, store: FileStore, **options: Any) -> FastAPI:
    """An app serving ``package`` that captures to ``store`` as endpoint churn-dev."""
    return create_app(package, store=store, endpoint_name="churn-dev", **options)


def captured(store: FileStore, prefix: str = PREFIX) -> list[dict[str, Any]]:
    lines = []
    for info in store.list(prefix):
        assert KEY.match(info.key), info.key
        lines += [json.loads(line) for line in store.get(info.key).decode().splitlines()]
    return lines


def test_answered_requests_are_captured_as_sagemaker_writes_them(
    packages: Packages, sample: Sample, file_store: FileStore
) -> None:
    # Only the shutdown flushes.
    app = capturing(packages.logistic, file_store, capture_flush_seconds=3600.0)
    with serving(app) as server:
        body = sample.csv(2)
        as_csv = server.predict(body, "text/csv")
        as_json = server.call(
            "POST",
            "/invocations",
            json.dumps(sample.records(1)).encode(),
            {"Content-Type": "application/json", "X-Amzn-SageMaker-Inference-Id": "order-7"},
        )
        assert server.predict(b"", "text/csv").status == 400  # refused: not captured
        assert list(file_store.list("monitoring/")) == []  # buffered, not on the request path

    records = sorted(
        captured(file_store), key=lambda r: r["captureData"]["endpointInput"]["encoding"]
    )
    assert len(records) == 2
    first, second = records
    assert first["captureData"] == {
        "endpointInput": {
            "observedContentType": "text/csv",
            "mode": "INPUT",
            "data": body.decode(),
            "encoding": "CSV",
        },
        "endpointOutput": {
            "observedContentType": "text/csv",
            "mode": "OUTPUT",
            "data": as_csv.body.decode(),
            "encoding": "CSV",
        },
    }
    assert first["eventMetadata"]["inferenceId"] == as_csv.headers["x-inference-id"]
    assert first["eventVersion"] == "0"
    assert uuid.UUID(first["eventMetadata"]["eventId"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", first["eventMetadata"]["inferenceTime"])
    assert second["eventMetadata"]["inferenceId"] == "order-7"
    output = second["captureData"]["endpointOutput"]
    assert (output["observedContentType"], output["encoding"]) == ("application/json", "JSON")
    assert json.loads(output["data"]) == as_json.json()


def test_capture_is_flushed_while_the_server_runs(
    packages: Packages, sample: Sample, file_store: FileStore
) -> None:
    app = capturing(packages.logistic, file_store, capture_flush_seconds=0.05)
    with serving(app) as server:
        reply = server.predict(sample.csv(1), "text/csv")
        found = wait_until(lambda: captured(file_store), 30.0, "a capture file")
        assert found[0]["eventMetadata"]["inferenceId"] == reply.headers["x-inference-id"]


def test_zero_percent_captures_nothing(
    packages: Packages, sample: Sample, file_store: FileStore
) -> None:
    app = capturing(packages.logistic, file_store, capture_percent=0.0)
    with serving(app) as server:
        for _ in range(5):
            assert server.predict(sample.csv(1), "text/csv").status == 200
    assert list(file_store.list("monitoring/")) == []


def test_a_share_of_requests_is_captured(file_store: FileStore) -> None:
    random.seed(5)
    capture = Capture(file_store, "churn-dev", percent=25.0)
    for number in range(400):
        capture.offer(f"id-{number}", "text/csv", b"1,2\n", "text/csv", b"0\n")
    capture.close()
    assert 50 < len(captured(file_store)) < 150


class FlakyStore(FileStore):
    """A folder store that can be switched off."""

    down = False

    def put(self, key: str, data: bytes) -> ObjectInfo:
        if self.down:
            raise StoreError("the store is unreachable")
        return super().put(key, data)


def test_a_store_that_is_down_costs_records_not_requests(
    packages: Packages, sample: Sample, tmp_path: Path
) -> None:
    store = FlakyStore((tmp_path / "store").as_uri())
    store.down = True
    capture = Capture(store, "churn-dev", max_records=3, flush_seconds=3600.0)
    for number in range(5):
        capture.offer(f"id-{number}", "text/csv", b"1,2\n", "text/csv", b"0\n")
    assert capture.dropped == 2
    capture.flush()  # fails: the records stay buffered
    assert list(store.list("monitoring/")) == []
    store.down = False
    capture.flush()
    assert [r["eventMetadata"]["inferenceId"] for r in captured(store)] == ["id-0", "id-1", "id-2"]

    store.down = True
    app = capturing(packages.logistic, store)
    app.state.service.capture.max_records = 1
    with serving(app) as server:
        for _ in range(3):
            assert server.predict(sample.csv(1), "text/csv").status == 200
        metrics = metric_values(server.call("GET", "/metrics").body.decode())
    assert metrics["lockgate_capture_dropped_total"] == 2
