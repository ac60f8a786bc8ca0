"""Serving records: what the deployment gates read to tell how a package served."""

from __future__ import annotations

from datetime import datetime

from lockgate.local.file_store import FileStore
from lockgate.pipelines.deployment.served import SERVING, served
from lockgate.pipelines.ledger import Ledger
from lockgate.pipelines.training.package import package_sha256
from lockgate.serving.app import create_app
from tests.cli.conftest import wait_until
from tests.serving.conftest import TOKEN, Packages, Sample, serving


def records(store: FileStore, env: str = "staging") -> list[dict[str, object]]:
    return [entry.record for entry in Ledger(store).entries(SERVING, env)]


def test_a_stopped_server_records_its_requests_and_errors(
    packages: Packages, sample: Sample, file_store: FileStore
) -> None:
    app = create_app(
        packages.fragile,
        release={"seq": 4, "env": "staging"},
        store=file_store,
        env="staging",
        endpoint_name="churn-staging",
        capture_percent=0.0,
        server_id="test-server",
    )
    with serving(app) as server:
        for _ in range(3):
            assert server.predict(sample.csv(1), "text/csv").status == 200
        assert server.predict(b"", "text/csv").status == 400
        failing = sample.records(1)
        failing[0]["tenure_months"] = 1e9
        assert server.predict(failing).status == 500
        assert records(file_store) == []  # stats_interval is a minute: nothing yet

    last = records(file_store)[-1]
    sha256 = package_sha256(packages.fragile)
    assert {key: value for key, value in last.items() if key not in ("since", "until")} == {
        "server_id": "test-server",
        "endpoint": "churn-staging",
        "package_sha256": sha256,
        "model": "churn",
        "version": 3,
        "release_seq": 4,
        "requests": 5,
        "errors": 1,
        "rejected": 1,
    }
    since = datetime.fromisoformat(str(last["since"]))
    until = datetime.fromisoformat(str(last["until"]))
    assert since <= until and since.tzinfo is not None
    summary = served(Ledger(file_store), "staging", sha256)
    assert (summary.requests, summary.errors) == (3, 1)  # requests: those answered with 200
    assert (summary.first_seen, summary.last_seen) == (since, until)


def test_records_are_written_every_interval_while_counts_change(
    packages: Packages, sample: Sample, file_store: FileStore
) -> None:
    app = create_app(
        packages.logistic, store=file_store, env="staging", capture_percent=0.0, stats_interval=0.05
    )
    with serving(app) as server:
        assert server.predict(sample.csv(1), "text/csv").status == 200
        wait_until(
            lambda: any(r["requests"] == 1 for r in records(file_store)), 30.0, "a record of 1"
        )
        assert server.predict(sample.csv(1), "text/csv").status == 200
        wait_until(
            lambda: any(r["requests"] == 2 for r in records(file_store)), 30.0, "a record of 2"
        )
    assert served(Ledger(file_store), "staging", package_sha256(packages.logistic)).requests == 2


def test_a_swap_records_the_package_swapped_out_and_a_rollback_counts_on(
    packages: Packages, sample: Sample, file_store: FileStore
) -> None:
    app = create_app(
        packages.logistic,
        release={"seq": 1},
        token=TOKEN,
        store=file_store,
        env="staging",
        capture_percent=0.0,
    )
    first, second = package_sha256(packages.logistic), package_sha256(packages.boosted)
    with serving(app) as server:
        for _ in range(2):
            assert server.predict(sample.csv(1), "text/csv").status == 200
        assert server.swap(packages.boosted, {"seq": 2}, TOKEN).status == 200
        swapped_out = wait_until(
            lambda: [r for r in records(file_store) if r["package_sha256"] == first],
            30.0,
            "the record of the package swapped out",
        )
        assert (swapped_out[-1]["requests"], swapped_out[-1]["release_seq"]) == (2, 1)
        assert server.predict(sample.csv(1), "text/csv").status == 200
        assert server.swap(packages.logistic, {"seq": 3}, TOKEN).status == 200  # a rollback
        assert server.predict(sample.csv(1), "text/csv").status == 200

    assert served(Ledger(file_store), "staging", first).requests == 3
    assert served(Ledger(file_store), "staging", second).requests == 1
