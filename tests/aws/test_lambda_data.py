"""The data-prep Lambda entrypoint, called with recorded events against moto's S3 over HTTP."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from lockgate.aws import lambda_data
from lockgate.pipelines.runs import recent_runs
from lockgate.sample.churn import CHURN_COLUMNS
from lockgate.wiring import open_store
from tests.aws.lambda_logs import restored_logging

EVENTS = Path(__file__).parent.parent / "fixtures" / "events"
RECORDED_BUCKET = "acme-lockgate-dev"


def recorded(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


@pytest.fixture
def lambda_env(
    aws_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str], Any]]:
    """Configure the Lambda as the stack would: store URI and baked lockgate.toml in env vars.

    Each test is a cold start (JSON logs on its stdout); the logging set up then is undone.
    """
    config = tmp_path / "lockgate.toml"
    columns = ", ".join(f'{name} = "{kind}"' for name, kind in CHURN_COLUMNS.items())
    config.write_text(
        f'[datasets.churn]\ntarget = "churned"\ncolumns = {{ {columns} }}\n'
        "prep = { text_max_features = 16 }\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("LOCKGATE_CONFIG", str(config))
    client = boto3.client("s3")
    lambda_data._stores.clear()

    def use(store_uri: str) -> Any:
        bucket = store_uri.removeprefix("s3://").split("/", 1)[0]
        existing = [b["Name"] for b in client.list_buckets().get("Buckets", [])]
        if bucket in existing:
            for item in client.list_objects_v2(Bucket=bucket).get("Contents", []):
                client.delete_object(Bucket=bucket, Key=item["Key"])
        else:
            client.create_bucket(Bucket=bucket)
        monkeypatch.setenv("LOCKGATE_STORE", store_uri)
        return client

    with restored_logging():
        yield use


def context() -> Any:
    return SimpleNamespace(aws_request_id="req-1", function_name="lockgate-dev-data-prep")


def test_recorded_put_event_with_encoded_key_prepares_the_object(
    lambda_env: Callable[[str], Any],
    churn_csv: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    s3 = lambda_env(f"s3://{RECORDED_BUCKET}")
    key = "raw/churn/2026/März export/customers a+b été.csv"
    s3.upload_file(str(churn_csv(rows=800)), RECORDED_BUCKET, key)
    event = recorded("put_nested_unicode.json")

    first = lambda_data.handler(event, context())
    (prepared,) = first["prepared"]
    assert prepared["status"] == "committed"
    assert prepared["rows"]["total"] == 800
    manifest_key = f"processed/churn/{prepared['version']}/manifest.json"
    manifest = json.loads(s3.get_object(Bucket=RECORDED_BUCKET, Key=manifest_key)["Body"].read())
    assert manifest["sources"][0]["key"] == key
    log_line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert log_line["event"] == "data_prep" and log_line["request_id"] == "req-1"

    # At-least-once delivery: the same event again changes nothing.
    again = lambda_data.handler(event, context())
    assert again["prepared"][0]["status"] == "exists"
    versions = s3.list_objects_v2(Bucket=RECORDED_BUCKET, Prefix="processed/churn/")["Contents"]
    assert sum(item["Key"].endswith("manifest.json") for item in versions) == 1


def test_two_records_under_a_store_prefix_make_one_version(
    lambda_env: Callable[[str], Any], churn_csv: Callable[..., Path], tmp_path: Path
) -> None:
    s3 = lambda_env(f"s3://{RECORDED_BUCKET}/team-a")
    s3.upload_file(
        str(churn_csv("big.csv.gz", rows=600, seed=3, gzip=True)),
        RECORDED_BUCKET,
        "team-a/raw/churn/big file.csv.gz",
    )
    parquet = tmp_path / "small.parquet"
    pq.write_table(pacsv.read_csv(churn_csv("small.csv", rows=200, seed=4)), parquet)
    s3.upload_file(str(parquet), RECORDED_BUCKET, "team-a/raw/churn/small.parquet")

    result = lambda_data.handler(recorded("multipart_two_records.json"), context())
    (prepared,) = result["prepared"]
    assert prepared["status"] == "committed"
    assert prepared["rows"]["total"] == 800
    keys = [
        i["Key"]
        for i in s3.list_objects_v2(Bucket=RECORDED_BUCKET, Prefix="team-a/processed/")["Contents"]
    ]
    assert any(k.endswith("/train.safetensors") for k in keys)


def test_replayed_dead_letter_message_and_test_event(
    lambda_env: Callable[[str], Any], churn_csv: Callable[..., Path]
) -> None:
    s3 = lambda_env(f"s3://{RECORDED_BUCKET}")
    table = pacsv.read_csv(churn_csv(rows=300))
    lines = "\n".join(json.dumps(row, default=str) for row in table.to_pylist())
    s3.put_object(Bucket=RECORDED_BUCKET, Key="raw/churn/replayed file.jsonl", Body=lines.encode())
    result = lambda_data.handler(recorded("sqs_wrapped.json"), context())
    assert result["prepared"][0]["status"] == "committed"
    assert result["prepared"][0]["rows"]["total"] == 300
    assert lambda_data.handler(recorded("test_event.json"), context())["test_event"] is True


def test_bad_upload_is_quarantined_in_the_bucket(
    lambda_env: Callable[[str], Any], churn_csv: Callable[..., Path]
) -> None:
    s3 = lambda_env(f"s3://{RECORDED_BUCKET}")
    key = "raw/churn/2026/März export/customers a+b été.csv"
    s3.put_object(Bucket=RECORDED_BUCKET, Key=key, Body=b"\x00\x01garbage")
    result = lambda_data.handler(recorded("put_nested_unicode.json"), context())
    (prepared,) = result["prepared"]
    assert prepared["status"] == "all_quarantined"
    assert prepared["quarantined"] == [key]
    objects = [
        i["Key"]
        for i in s3.list_objects_v2(Bucket=RECORDED_BUCKET, Prefix="quarantine/")["Contents"]
    ]
    assert any(k.endswith("/error.json") for k in objects)
    assert any(k.endswith("customers a+b été.csv") for k in objects)
    assert s3.get_object(Bucket=RECORDED_BUCKET, Key=key)["Body"].read() == b"\x00\x01garbage"


def test_each_invocation_records_its_run_with_the_request_id_and_logs_json_lines(
    lambda_env: Callable[[str], Any],
    churn_csv: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    s3 = lambda_env(f"s3://{RECORDED_BUCKET}")
    key = "raw/churn/2026/März export/customers a+b été.csv"
    s3.upload_file(str(churn_csv(rows=500)), RECORDED_BUCKET, key)
    result = lambda_data.handler(recorded("put_nested_unicode.json"), context())

    (view,) = recent_runs(open_store(f"s3://{RECORDED_BUCKET}"), "data")
    assert view.state == "succeeded"
    assert view.record["trigger"] == {"kind": "lambda", "detail": f"req-1 {key}"}
    assert view.record["inputs"] == {"dataset": "churn", "raw_objects": 1, "raw_keys": [key]}
    assert view.record["outputs"]["version"] == result["prepared"][0]["version"]
    # CloudWatch Logs reads stdout: one JSON object per line, the run's id on its records.
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    ours = [line for line in lines if line.get("run_id") == view.run_id]
    assert {"run.started", "run.succeeded"} <= {line["event"] for line in ours}
    assert all(line["pipeline"] == "data" for line in ours)
    assert any(key in line["message"] for line in ours)  # the report lines too


def test_a_quarantined_upload_is_a_failed_run_even_without_a_lambda_context(
    lambda_env: Callable[[str], Any],
) -> None:
    s3 = lambda_env(f"s3://{RECORDED_BUCKET}")
    key = "raw/churn/2026/März export/customers a+b été.csv"
    s3.put_object(Bucket=RECORDED_BUCKET, Key=key, Body=b"\x00\x01garbage")
    lambda_data.handler(recorded("put_nested_unicode.json"), None)

    (view,) = recent_runs(open_store(f"s3://{RECORDED_BUCKET}"), "data")
    assert view.state == "failed"
    assert view.record["trigger"] == {"kind": "lambda", "detail": key}
    assert "were rejected" in view.record["error"]
    assert view.record["hint"].startswith("quarantine/churn/")
    assert f"error.json says why {key} was rejected" in view.record["hint"]
