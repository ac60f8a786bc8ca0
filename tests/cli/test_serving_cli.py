"""`lockgate serve`, `predict` and hot swaps by `promote`, with real servers on 127.0.0.1."""

from __future__ import annotations

import csv
import io
import json
import signal
import urllib.request
from pathlib import Path

import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from lockgate.cli.serving import start_endpoint
from lockgate.local.file_store import FileStore
from lockgate.pipelines.data.versions import latest_version
from lockgate.pipelines.training.package import package_prefix, write_package_to_store
from tests.cli.conftest import ROWS, Project, assert_ok, describe, run_cli
from tests.cli.fragile_models import BREAK_HERE, BreaksOnTheEndpoint
from tests.cli.test_deployment_cli import TRAIN_TOML, train_version
from tests.packages import Prepared, make_package

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def publish(project: Project, version: int, model: object) -> None:
    """Put a package of ``model`` in dev's store as ``version``, as training would."""
    store = FileStore(project.store("dev").as_uri())
    prepared = Prepared(store, latest_version(store, "churn"), project.csv)
    folder = make_package(
        prepared, project.root / "built" / str(version), model=model, version=version
    )
    write_package_to_store(store, folder, package_prefix("churn", version))


def assert_same_predictions(out: str, expected: list[dict[str, str]]) -> None:
    """Same rows, ids and labels; probabilities equal up to float32 rounding (a batch of
    another size may round the last digit differently)."""
    table = list(csv.DictReader(io.StringIO(out)))
    assert [(r["customer_id"], r["prediction"]) for r in table] == [
        (r["customer_id"], r["prediction"]) for r in expected
    ]
    for got, want in zip(table, expected, strict=True):
        assert float(got["p_1"]) == pytest.approx(float(want["p_1"]), abs=1e-5)


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - loopback
        return response.status, response.read().decode()


def test_serve_predict_hot_swap_and_a_swap_that_fails(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server unpickles the test's failing model class, so it must import `tests`.
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    for name in ("LOCKGATE_CONFIG", "LOCKGATE_ENV", "LOCKGATE_STORE"):
        monkeypatch.delenv(name, raising=False)
    root = project.root
    config = root / "lockgate.toml"
    config.write_text(config.read_text() + TRAIN_TOML)
    train_version(project)
    assert_ok(run_cli(["promote", "churn", "1", "--to", "dev"], root))

    state = root / ".lockgate" / "dev" / "endpoint.json"
    monkeypatch.setenv(BREAK_HERE, "1")  # for the server only: see fragile_models
    endpoint = start_endpoint(config, "dev", state, root / "endpoint.log")
    monkeypatch.delenv(BREAK_HERE)
    try:
        status, version = get(endpoint.url + "/version")
        assert status == 200 and json.loads(version)["version"] == 1

        out = assert_ok(run_cli(["predict", "data/churn.csv", "--env", "dev"], root)).stdout
        table = list(csv.DictReader(io.StringIO(out)))
        assert len(table) == ROWS
        assert set(table[0]) == {"customer_id", "prediction", "p_0", "p_1"}
        with project.csv.open() as handle:
            ids = [row["customer_id"] for row in csv.DictReader(handle)]
        assert [row["customer_id"] for row in table] == ids  # echoed back, in order
        # Smaller requests (by rows and by bytes) give the same answer, row for row.
        small = ["predict", "data/churn.csv", "--env", "dev", "--batch", "7", "--max-bytes", "4096"]
        assert_same_predictions(assert_ok(run_cli(small, root)).stdout, table)
        # A spreadsheet's "CSV UTF-8" starts with a byte-order mark; it is not a column name.
        (root / "bom.csv").write_bytes(b"\xef\xbb\xbf" + project.csv.read_bytes())
        bom = assert_ok(run_cli(["predict", "bom.csv", "--env", "dev"], root)).stdout
        assert_same_predictions(bom, table)
        (root / "empty.csv").write_text("customer_id,tenure_months\n")
        empty = run_cli(["predict", "empty.csv", "--env", "dev"], root)
        assert empty.returncode == 1 and "empty.csv has no rows to predict" in empty.stderr

        with project.csv.open() as handle:
            rows = [row for _, row in zip(range(3), csv.DictReader(handle), strict=False)]
        for row in rows:
            del row["churned"], row["customer_id"]  # records may leave the id out
        (root / "rows.jsonl").write_text("\n".join(json.dumps(row) for row in rows))
        out = assert_ok(run_cli(["predict", "rows.jsonl", "--env", "dev"], root)).stdout
        assert len(list(csv.DictReader(io.StringIO(out)))) == 3
        del rows[1]["tenure_months"]
        (root / "rows.jsonl").write_text("\n".join(json.dumps(row) for row in rows))
        refused = run_cli(["predict", "rows.jsonl", "--env", "dev"], root)
        assert refused.returncode == 1, describe(refused)
        assert (
            "the endpoint refused the rows (HTTP 400): row 2 has no column 'tenure_months'"
            in refused.stderr
        )

        # A package that predicts here but fails its warm-up on the endpoint: the release is
        # marked failed, v1 keeps serving.
        publish(project, 2, BreaksOnTheEndpoint(LogisticRegression(max_iter=500)))
        failed = run_cli(["promote", "churn", "2", "--to", "dev"], root)
        assert failed.returncode == 1, describe(failed)
        assert "release #1 of dev failed on the endpoint and is marked failed" in failed.stderr
        assert "churn version 1 (release #0) serves" in failed.stderr
        assert json.loads(get(endpoint.url + "/version")[1])["version"] == 1
        history = assert_ok(run_cli(["history", "--env", "dev"], root)).stdout
        assert "release #1 failed:" in history

        # A good one is hot-swapped in without a restart.
        publish(project, 3, HistGradientBoostingClassifier(max_iter=30, random_state=0))
        out = assert_ok(run_cli(["promote", "churn", "3", "--to", "dev"], root)).stdout
        assert f"endpoint: serving at {endpoint.url}" in out
        assert json.loads(get(endpoint.url + "/version")[1])["version"] == 3
        assert endpoint.process.poll() is None
        metrics = get(endpoint.url + "/metrics")[1]
        assert 'version="3"' in metrics
        assert_ok(run_cli(["predict", "data/churn.csv", "--env", "dev"], root))
    finally:
        endpoint.process.send_signal(signal.SIGTERM)
        code = endpoint.process.wait(30)

    assert code == 0, endpoint.log.read_text()
    assert not state.exists()
    capture = sorted(
        (project.store("dev") / "monitoring" / "capture" / "lockgate-dev").rglob("*.jsonl")
    )
    records = [json.loads(line) for path in capture for line in path.read_text().splitlines()]
    # Two CSV files (one request each at 500 rows a batch), one jsonl file, after the swap one more.
    assert len(records) >= 3
    assert {
        record["captureData"]["endpointInput"]["observedContentType"] for record in records
    } >= {
        "text/csv",
        "application/json",
    }
    serving = project.store("dev") / "ledger" / "serving" / "dev"
    counts = [json.loads(path.read_text())["record"] for path in sorted(serving.glob("*.json"))]
    assert {record["version"] for record in counts} >= {1, 3}
    assert all(record["errors"] == 0 for record in counts)


def test_predict_reports_a_bad_file_in_one_line(project: Project) -> None:
    bad = project.root / "rows.txt"
    bad.write_text("x")
    result = run_cli(["predict", "rows.txt", "--url", "http://127.0.0.1:9"], project.root)
    assert result.returncode == 1, describe(result)
    assert "predict reads .csv (with a header row) or .jsonl files" in result.stderr
