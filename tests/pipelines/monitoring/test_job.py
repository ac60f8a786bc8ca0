"""One monitoring run end to end: a released churn package, captured traffic written as the
endpoint writes it, labels, and what the run leaves behind."""

from __future__ import annotations

import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.csv as pacsv
import pytest

from lockgate.config import GatesConfig, MonitorConfig
from lockgate.pipelines.deployment.promotion import Environment, promote
from lockgate.pipelines.monitoring.alerts import Alert
from lockgate.pipelines.monitoring.job import past_runs, run_monitoring
from lockgate.pipelines.monitoring.labels import Label, put_labels
from lockgate.pipelines.runs import Trigger, recent_runs
from lockgate.pipelines.training.package import (
    load_package,
    package_prefix,
    write_package_to_store,
)
from lockgate.sample.churn import CHURN_TARGET, generate_churn
from tests.packages import Prepared, make_package, prepare_churn
from tests.pipelines.deployment.conftest import MemoryRegistry

ENDPOINT = "lockgate-dev"
NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


class Told:
    """A notifier that remembers the alerts it was given."""

    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def notify(self, alert: Alert) -> str:
        self.alerts.append(alert)
        return "told the test"


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> tuple[Prepared, Path]:
    root = tmp_path_factory.mktemp("monitoring")
    prepared = prepare_churn(root, rows=3000)
    folder = make_package(prepared, root / "package", version=1)
    write_package_to_store(prepared.store, folder, package_prefix("churn", 1))
    env = Environment(
        name="dev",
        store=prepared.store,
        registry=MemoryRegistry(),
        registry_uri="memory://dev",
        work_dir=root / "work",
        gates=GatesConfig(),
    )
    promote(env, env, "churn", 1, by="tester", now=NOW - timedelta(days=30))
    return prepared, folder


@pytest.fixture
def store(released: tuple[Prepared, Path]) -> Any:
    """The released store with no capture, labels, reports or runs from other tests."""
    prepared, _ = released
    for prefix in ("monitoring/", "ledger/runs/", "ledger/requests/"):
        for info in prepared.store.list(prefix):
            prepared.store.delete(info.key)
    return prepared.store


def capture(
    store: Any, package_dir: Path, *, rows: int, seed: int, shift: float, at: datetime
) -> list[dict[str, Any]]:
    """Send ``rows`` generated rows as 50-row CSV requests, captured as the server captures
    them at ``at``; returns every predicted row with its inference id."""
    package = load_package(package_dir)
    table = generate_churn(rows, seed=seed, shift=shift).drop_columns([CHURN_TARGET])
    truth = generate_churn(rows, seed=seed, shift=shift).column(CHURN_TARGET).to_pylist()
    lines, predicted = [], []
    for start in range(0, rows, 50):
        chunk = table.slice(start, 50)
        buffer = io.BytesIO()
        pacsv.write_csv(chunk, buffer)
        body = buffer.getvalue().decode()
        records = chunk.to_pylist()
        labels = package.predict(records)
        proba = package.predict_proba(records)
        inference_id = uuid.uuid4().hex
        answer = {
            "predictions": [
                {
                    "customer_id": record["customer_id"],
                    "prediction": str(label),
                    "probabilities": dict(zip(package.classes or [], map(float, p), strict=True)),
                }
                for record, label, p in zip(records, labels, proba, strict=True)
            ]
        }
        for index, record in enumerate(records):
            predicted.append(
                {
                    "inference_id": inference_id,
                    "customer_id": record["customer_id"],
                    "truth": str(truth[start + index]),
                }
            )
        lines.append(
            json.dumps(
                {
                    "captureData": {
                        "endpointInput": {
                            "observedContentType": "text/csv",
                            "mode": "INPUT",
                            "data": body,
                            "encoding": "CSV",
                        },
                        "endpointOutput": {
                            "observedContentType": "application/json",
                            "mode": "OUTPUT",
                            "data": json.dumps(answer),
                            "encoding": "JSON",
                        },
                    },
                    "eventMetadata": {
                        "eventId": uuid.uuid4().hex,
                        "inferenceId": inference_id,
                        "inferenceTime": at.isoformat().replace("+00:00", "Z"),
                    },
                    "eventVersion": "0",
                }
            )
        )
    key = f"monitoring/capture/{ENDPOINT}/AllTraffic/{at:%Y/%m/%d/%H}/{uuid.uuid4().hex}.jsonl"
    store.put(key, ("\n".join(lines) + "\n").encode())
    return predicted


def monitor(store: Any, tmp_path: Path, **kwargs: Any):  # type: ignore[no-untyped-def]
    config = kwargs.pop("config", MonitorConfig())
    return run_monitoring(
        store,
        "dev",
        ENDPOINT,
        config,
        window=kwargs.pop("window", timedelta(days=1)),
        work_dir=tmp_path,
        now=kwargs.pop("now", NOW),
        **kwargs,
    )


def test_traffic_like_the_training_data_is_ok(
    released: tuple[Prepared, Path], store: Any, tmp_path: Path
) -> None:
    capture(store, released[1], rows=2000, seed=21, shift=0.0, at=NOW - timedelta(hours=2))
    told = Told()
    result = monitor(store, tmp_path, notifiers=[told])

    assert result.verdict == "ok" and result.exit_code == 0
    assert result.rows == 2000 and result.drifted == []
    assert told.alerts == []
    prefix = f"monitoring/reports/{ENDPOINT}/{result.run}/"
    assert json.loads(store.get(prefix + "constraint_violations.json")) == {"violations": []}
    report = json.loads(store.get(prefix + "report.json"))
    assert report["verdict"] == "ok" and report["requests"] == 40
    assert report["release"]["version"] == 1
    tested = {item["feature"] for item in report["data_drift"]["features"]}
    assert {"monthly_charges", "contract", "region", "last_ticket_text"} <= tested
    assert report["prediction_drift"]["feature"] == "prediction"
    assert b"<html" in store.get(prefix + "report.html")
    (run,) = past_runs(store)
    assert run["pipeline"] == "monitoring" and run["verdict"] == "ok" and run["rows"] == 2000


def test_shifted_traffic_is_drift_with_model_monitor_violations_and_an_alert(
    released: tuple[Prepared, Path], store: Any, tmp_path: Path
) -> None:
    capture(store, released[1], rows=2000, seed=22, shift=0.8, at=NOW - timedelta(hours=1))
    told = Told()
    requests: list[dict[str, Any]] = []
    config = MonitorConfig(retrain_on_drift=True)

    def retrain(request: dict[str, Any]) -> str:
        requests.append(request)
        return "retrain requested"

    result = monitor(store, tmp_path, config=config, notifiers=[told], retrain=retrain)

    assert result.verdict == "drift" and result.exit_code == 3
    assert {"monthly_charges", "contract", "region"} <= set(result.drifted)
    assert "plan" not in result.drifted  # the generator does not drift plans
    violations = json.loads(
        store.get(f"monitoring/reports/{ENDPOINT}/{result.run}/constraint_violations.json")
    )["violations"]
    drift = [v for v in violations if v["constraint_check_type"] == "baseline_drift_check"]
    assert {v["feature_name"] for v in drift} == set(result.drifted)
    assert all(
        set(v) == {"feature_name", "constraint_check_type", "description"} for v in violations
    )
    (alert,) = told.alerts
    assert alert.verdict == "drift" and alert.endpoint == ENDPOINT
    assert requests == [{"reason": "drift", "env": "dev", "run": result.run, "dataset": "churn"}]
    assert "retrain requested" in result.alerts


def test_labels_joined_by_inference_id_measure_the_model(
    released: tuple[Prepared, Path], store: Any, tmp_path: Path
) -> None:
    predicted = capture(
        store, released[1], rows=2000, seed=23, shift=0.0, at=NOW - timedelta(hours=3)
    )
    # Wrong labels for every row: the model looks far worse than at release.
    labels = [
        Label(
            row["inference_id"],
            "0" if row["truth"] == "1" else "1",
            {"customer_id": row["customer_id"]},
        )
        for row in predicted
    ]
    labels.append(Label("no-such-request", "1", {}))
    put_labels(store, ENDPOINT, labels, NOW - timedelta(minutes=30))
    result = monitor(store, tmp_path)

    report = json.loads(store.get(f"monitoring/reports/{ENDPOINT}/{result.run}/report.json"))
    quality = report["model_quality"]
    assert quality["labels"] == 2000 and quality["unknown_labels"] == 1
    assert quality["metrics"]["roc_auc"] < 0.5 < quality["release_metrics"]["roc_auc"]
    assert "roc_auc" in quality["degraded"]
    assert result.verdict == "violations" and result.exit_code == 3
    violations = json.loads(
        store.get(f"monitoring/reports/{ENDPOINT}/{result.run}/constraint_violations.json")
    )["violations"]
    assert any(
        v["constraint_check_type"] == "model_quality_check" and v["feature_name"] == "roc_auc"
        for v in violations
    )


def test_too_little_traffic_gives_no_verdict_and_the_window_is_respected(
    released: tuple[Prepared, Path], store: Any, tmp_path: Path
) -> None:
    capture(store, released[1], rows=50, seed=24, shift=0.0, at=NOW - timedelta(minutes=10))
    capture(store, released[1], rows=2000, seed=25, shift=0.8, at=NOW - timedelta(days=3))
    first = monitor(store, tmp_path)  # the shifted traffic is three days old: outside
    assert first.verdict == "no_data" and first.rows == 50 and first.exit_code == 0
    assert "fewer than monitor.min_rows (100)" in first.messages[-1]
    second = monitor(store, tmp_path, window=timedelta(days=4), now=NOW + timedelta(seconds=1))
    assert second.verdict == "drift"
    report = json.loads(store.get(f"monitoring/reports/{ENDPOINT}/{second.run}/report.json"))
    assert [run["verdict"] for run in report["history"]] == ["no_data", "drift"]


def test_a_run_without_a_release_says_what_to_do(tmp_path: Path) -> None:
    from lockgate.errors import LockgateError
    from lockgate.local.file_store import FileStore

    empty = FileStore((tmp_path / "store").as_uri())
    with pytest.raises(LockgateError, match="nothing is released to dev"):
        monitor(empty, tmp_path)
    (view,) = recent_runs(empty, "monitoring")
    assert view.state == "failed" and view.record["env"] == "dev"
    assert view.record["error"].startswith("nothing is released to dev")
    assert view.record["hint"] == (
        "promote a model to dev (lockgate promote MODEL VERSION --to dev) first"
    )
    assert past_runs(empty) == []  # a failed run is no monitoring run for the schedule


def test_the_drifted_share_can_be_weighted_by_the_models_feature_importance(
    released: tuple[Prepared, Path], store: Any, tmp_path: Path
) -> None:
    from lockgate.config import DriftConfig

    capture(store, released[1], rows=1000, seed=26, shift=0.8, at=NOW - timedelta(hours=1))
    config = MonitorConfig(drift=DriftConfig(weight_by_importance=True))
    result = monitor(store, tmp_path, config=config)
    drift = json.loads(store.get(f"monitoring/reports/{ENDPOINT}/{result.run}/report.json"))[
        "data_drift"
    ]
    # The logistic model's coefficients weigh the columns; the weighted share differs.
    assert drift["weighted_share"] is not None
    assert 0.0 < drift["weighted_share"] <= 1.0
    assert drift["weighted_share"] != drift["share"]


def test_the_run_record_has_the_reports_run_id_its_trigger_and_its_verdict(
    released: tuple[Prepared, Path], store: Any, tmp_path: Path
) -> None:
    capture(store, released[1], rows=500, seed=26, shift=0.8, at=NOW - timedelta(hours=1))
    result = monitor(store, tmp_path, trigger=Trigger("schedule", "rate(14 days)"))

    (view,) = recent_runs(store, "monitoring")
    record = view.record
    assert view.state == "succeeded"  # the run worked; what it found is its verdict
    assert view.run_id == record["run"] == result.run
    assert record["trigger"] == {"kind": "schedule", "detail": "rate(14 days)"}
    assert record["env"] == "dev" and record["endpoint"] == ENDPOINT
    assert record["outputs"] == {"report": f"monitoring/reports/{ENDPOINT}/{result.run}/"}
    assert store.exists(record["outputs"]["report"] + "report.json")
    assert record["inputs"]["release"]["version"] == 1
    assert record["inputs"]["window"]["end"] == NOW.isoformat()
    assert (record["verdict"], record["rows"]) == ("drift", 500)
    assert record["drifted"] == result.drifted and record["violations"] == result.violations
    assert record["share"] > 0
    # Only the finished run counts as a past run (not its start record).
    assert [run["run"] for run in past_runs(store)] == [result.run]


def test_a_failed_run_is_left_out_of_the_next_reports_history(
    released: tuple[Prepared, Path], store: Any, tmp_path: Path
) -> None:
    class Broken:
        def notify(self, alert: Alert) -> str:
            raise RuntimeError("the notifier's own bug")

    capture(store, released[1], rows=500, seed=27, shift=0.8, at=NOW - timedelta(hours=1))
    first = monitor(store, tmp_path)
    with pytest.raises(RuntimeError):
        monitor(store, tmp_path, notifiers=[Broken()])
    second = monitor(store, tmp_path, now=NOW + timedelta(seconds=1))

    runs = recent_runs(store, "monitoring")
    assert [view.state for view in runs] == ["succeeded", "failed", "succeeded"]
    assert runs[1].record["error"] == "RuntimeError: the notifier's own bug"
    report = json.loads(store.get(f"monitoring/reports/{ENDPOINT}/{second.run}/report.json"))
    assert [run["run"] for run in report["history"]] == [first.run, second.run]
