"""``lockgate demo``: the lifecycle on generated data, in a workspace a user can explore after."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import pytest

from tests.cli.conftest import assert_ok, data_versions, run_cli

pytestmark = pytest.mark.slow

DEMO = ["demo", "--workspace", "W", "--rows", "500", "--trials", "2", "--workers", "1"]
STATUS = re.compile(r"^(committed|exists) churn (dv-[0-9a-f]{16})", re.MULTILINE)


def test_demo_commits_a_version_and_quarantines_the_broken_export(tmp_path: Path) -> None:
    out = assert_ok(run_cli(DEMO, tmp_path, timeout=300)).stdout

    workspace = tmp_path / "W"
    assert (workspace / "lockgate.toml").is_file()
    (status,) = STATUS.findall(out)
    assert status[0] == "committed"
    (manifest,) = data_versions(workspace)
    assert manifest["version"] == status[1]
    assert manifest["rows"]["total"] == 2 * 500
    assert sorted(source["key"] for source in manifest["sources"]) == [
        "raw/churn/churn-2026-01.csv",
        "raw/churn/churn-2026-02.csv.gz",
    ]
    (quarantined,) = manifest["quarantined"]
    assert quarantined["key"] == "raw/churn/churn-broken-export.csv"
    assert quarantined["rule"] == "missing_column"
    folder = workspace / ".lockgate" / "dev" / "store" / quarantined["location"]
    broken = workspace / "data" / "churn-broken-export.csv"
    assert (folder / broken.name).read_bytes() == broken.read_bytes()
    error = json.loads((folder / "error.json").read_text(encoding="utf-8"))
    assert error["file"] == "raw/churn/churn-broken-export.csv"
    assert error["rule"] == "missing_column"
    assert "registered churn version 1 (pending approval)" in out
    package = workspace / ".lockgate" / "dev" / "store" / "models" / "churn" / "1"
    assert json.loads((package / "package.json").read_text())["data_version"] == status[1]
    (report,) = (workspace / ".lockgate" / "dev" / "reports").glob("*.html")
    assert str(report) in out.replace("\n", "")

    # Deployment: approved for staging, released to dev and staging, both endpoints answered.
    assert "churn version 1 approved for staging by demo-reviewer" in out
    assert "released churn version 1 to dev as release #0" in out
    assert "released churn version 1 to staging as release #0" in out
    urls = re.findall(r"endpoint lockgate-(dev|staging) serving at (http://127\.0\.0\.1:\d+)", out)
    assert [env for env, _ in urls] == ["dev", "staging"]
    assert re.search(r"C7-\d+\s+│\s+[01] \(0\.\d\d\)\s+│\s+[01] \(0\.\d\d\)", out), out
    assert re.search(r"0\s+│\s+\S+ \S+\s+│\s+promote\s+│\s+churn v1\s+│.*demo-reviewer", out)
    staging = workspace / ".lockgate" / "staging"
    assert (staging / "store" / "models" / "churn" / "1" / "package.json").read_bytes() == (
        package / "package.json"
    ).read_bytes()
    # Monitoring: the unshifted month is clean, the shifted one drifts, each with a report.
    verdicts = re.findall(r"^(ok|drift|violations|no_data) run (\S+): (\d+) row", out, re.MULTILINE)
    assert [verdict for verdict, _, _ in verdicts] == ["ok", "drift"], out
    drifted = re.search(r"^drift run \S+: .*drifted: (.*)$", out, re.MULTILINE)
    assert drifted is not None and "monthly_charges" in drifted.group(1)
    reports = staging / "store" / "monitoring" / "reports" / "lockgate-staging"
    for _, run, _ in verdicts:
        assert {path.name for path in (reports / run).iterdir()} == {
            "constraint_violations.json",
            "report.json",
            "report.html",
        }
    # The monitoring commands, in the workspace the demo leaves.
    listed = assert_ok(run_cli(["monitor", "reports", "--env", "staging"], workspace)).stdout
    assert all(run in listed for _, run, _ in verdicts) and "monthly_charges" in listed
    schedule = assert_ok(run_cli(["monitor", "schedule", "--env", "staging"], workspace)).stdout
    assert "schedule: rate(14 days) (every 14 days)" in schedule
    assert re.search(r"next run: 20\d\d-\d\d-\d\dT", schedule), schedule
    again = run_cli(["monitor", "run", "--env", "staging", "--window", "1h"], workspace)
    assert again.returncode == 3, again.stdout + again.stderr  # the shifted month is in the hour
    assert re.search(r"^drift run ", again.stdout, re.MULTILINE)
    # Ground truth for the captured rows, joined by inference id (and customer id).
    captured = sorted((staging / "store" / "monitoring" / "capture").rglob("*.jsonl"))
    truth = ["inference_id,customer_id,churned"]
    for path in captured:
        for line in path.read_text().splitlines():
            record = json.loads(line)
            answer = json.loads(record["captureData"]["endpointOutput"]["data"])
            inference_id = record["eventMetadata"]["inferenceId"]
            truth += [
                f"{inference_id},{p['customer_id']},{p['prediction']}"
                for p in answer["predictions"]
            ]
    truth.append("not-a-request,C-0,1")
    (workspace / "truth.csv").write_text("\n".join(truth) + "\n")
    stored = assert_ok(run_cli(["labels", "put", "truth.csv", "--env", "staging"], workspace))
    assert f"stored {len(truth) - 1} label(s) for lockgate-staging" in stored.stdout
    labelled = run_cli(["monitor", "run", "--env", "staging", "--window", "1h"], workspace)
    runs = sorted(reports.iterdir(), key=lambda path: path.name)
    report = json.loads((runs[-1] / "report.json").read_text())
    quality = report["model_quality"]
    assert quality["labels"] == len(truth) - 2 and quality["unknown_labels"] == 1, labelled.stdout
    assert quality["metrics"]["accuracy"] == 1.0  # the labels were the predictions themselves
    # The demo stopped what it started: no state file left, the ports no longer answer.
    for env, url in urls:
        assert not (workspace / ".lockgate" / env / "endpoint.json").exists()
        with pytest.raises(OSError):
            urllib.request.urlopen(url + "/ping", timeout=5)  # noqa: S310 - loopback

    # It ends with status and a summary table: one row per stage, and the total.
    assert "7. status: what ran, what serves, what is next" in out
    summary = out[out.index("summary") :]
    for stage in ("sample data", "upload", "data pipeline", "training", "deployment"):
        assert re.search(rf"^ {stage} .* \d+\.\ds\s*$", summary, re.MULTILINE), summary
    assert re.search(r"unshifted traffic: ok; shifted traffic: drift", summary), summary
    assert re.search(r"^ total\s+\d+\.\ds", summary, re.MULTILINE), summary
    # Every pipeline recorded its runs, with the demo (or the upload) as their trigger, and
    # `lockgate status` / `lockgate logs` in the workspace show them.
    state = json.loads(assert_ok(run_cli(["status", "--json"], workspace)).stdout)
    pipelines = state["pipelines"]
    assert [run["trigger"]["kind"] for run in pipelines["data"]] == ["upload"]
    assert pipelines["data"][0]["outputs"]["version"] == status[1]
    assert {run["trigger"]["kind"] for run in pipelines["training"]} == {"demo"}
    assert {run["env"] for run in pipelines["deployment"]} == {"dev", "staging"}
    assert all(run["state"] == "succeeded" for runs in pipelines.values() for run in runs)
    logged = assert_ok(run_cli(["logs", "--pipeline", "training", "--json"], workspace)).stdout
    training_run = pipelines["training"][0]["run_id"]
    assert any(json.loads(line)["run_id"] == training_run for line in logged.splitlines())


def test_demo_run_again_finds_the_version_exists(tmp_path: Path) -> None:
    first = assert_ok(run_cli(DEMO, tmp_path, timeout=300)).stdout
    second = assert_ok(run_cli(DEMO, tmp_path, timeout=300)).stdout

    ((_, version),) = STATUS.findall(first)
    assert STATUS.findall(second) == [("exists", version)]
    assert len(data_versions(tmp_path / "W")) == 1


def test_demo_fresh_starts_from_an_empty_workspace(tmp_path: Path) -> None:
    assert_ok(run_cli(DEMO, tmp_path, timeout=300))
    stray = tmp_path / "W" / "notes.txt"
    stray.write_text("left from last time", encoding="utf-8")

    out = assert_ok(run_cli([*DEMO, "--fresh"], tmp_path, timeout=300)).stdout

    assert not stray.exists()
    assert [status for status, _ in STATUS.findall(out)] == ["committed"]
    assert len(data_versions(tmp_path / "W")) == 1
