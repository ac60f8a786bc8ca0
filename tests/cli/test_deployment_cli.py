"""`lockgate models`, `approve`, `reject`, `promote`, `rollback`, `history` as a user runs them."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from lockgate.cli.serving import start_endpoint
from tests.cli.conftest import Project, assert_ok, assert_user_error, describe, run_cli

pytestmark = pytest.mark.slow

TRAIN_TOML = """
[train]
trials = 2
seed = 5
[train.families.logistic]
C = [0.01, 10.0, "log"]
"""


def train_version(project: Project, csv_name: str | None = None, seed: int = 11) -> None:
    """Upload (another) churn export, prepare it and train: one more registered version."""
    path = project.write_csv(csv_name, seed=seed) if csv_name else project.csv
    assert_ok(run_cli(["put", str(path.relative_to(project.root))], project.root))
    assert_ok(run_cli(["data", "prep"], project.root))
    assert_ok(run_cli(["train"], project.root, {"LOCKGATE_USER": "trainer"}, timeout=300))


@pytest.fixture
def trained(project: Project) -> Project:
    config = project.root / "lockgate.toml"
    config.write_text(config.read_text() + TRAIN_TOML)
    train_version(project)
    return project


def test_the_way_to_prod_through_the_gates(trained: Project) -> None:
    root = trained.root
    user = {"LOCKGATE_USER": "trainer"}

    listing = assert_ok(run_cli(["models"], root)).stdout
    assert re.search(r"churn\s+│?\s*1\s+│?\s*logistic\s+│?\s*roc_auc=0\.\d{4}", listing), listing
    assert "pending approval" in listing

    # dev has no manual gate: straight in.
    out = assert_ok(run_cli(["promote", "churn", "1", "--to", "dev"], root, user)).stdout
    assert "released churn version 1 to dev as release #0" in out
    assert "endpoint: not running; serve it with `lockgate serve --env dev`" in out

    # staging wants an approval: refused, one line per failing gate, nothing copied.
    refused = run_cli(["promote", "churn", "1", "--to", "staging"], root, user)
    assert refused.returncode == 1, describe(refused)
    assert "churn version 1 cannot be promoted to staging:" in refused.stderr
    assert "needs an approval for staging: lockgate approve churn 1 --env staging" in refused.stderr
    assert not (trained.store("staging") / "models").exists()

    assert_ok(run_cli(["approve", "churn", "1", "--env", "staging", "--by", "trainer"], root))
    out = assert_ok(run_cli(["promote", "churn", "1", "--to", "staging"], root, user)).stdout
    assert "released churn version 1 to staging as release #0" in out
    copied = trained.store("staging") / "models" / "churn" / "1" / "package.json"
    original = trained.store("dev") / "models" / "churn" / "1" / "package.json"
    assert copied.read_bytes() == original.read_bytes()

    # prod: the trainer's own approval is not enough, nor a release nobody sent a request to.
    assert_ok(run_cli(["approve", "churn", "1", "--env", "prod", "--by", "trainer"], root))
    refused = run_cli(["promote", "churn", "1", "--to", "prod"], root, user)
    assert refused.returncode == 1, describe(refused)
    assert "approved by trainer, who trained it; someone else must approve" in refused.stderr
    assert "served in staging: " in refused.stderr
    assert "0 of the 1 requests required" in refused.stderr

    staging = trained.root / ".lockgate" / "staging"
    endpoint = start_endpoint(
        root / "lockgate.toml", "staging", staging / "endpoint.json", root / "staging.log"
    )
    try:
        assert_ok(run_cli(["predict", "data/churn.csv", "--env", "staging"], root))
    finally:
        assert endpoint.stop() == 0  # the serving record is written on the way out
    assert_ok(
        run_cli(["approve", "churn", "1", "--env", "prod", "--by", "alice", "--note", "ok"], root)
    )
    assert_ok(run_cli(["promote", "churn", "1", "--to", "prod"], root, user))

    history = assert_ok(run_cli(["history", "--env", "prod"], root)).stdout
    assert re.search(r"0\s+│?\s*\S+ \S+\s+│?\s*promote\s+│?\s*churn v1", history), history
    assert "alice" in history and "serving" in history
    record = json.loads(
        (trained.store("prod") / "ledger" / "releases" / "prod" / ("0" * 12 + ".json")).read_text()
    )["record"]
    assert record["by"] == "trainer" and record["trained_by"] == "trainer"
    assert [a["by"] for a in record["approvals"]] == ["trainer", "alice"]

    listing = assert_ok(run_cli(["models"], root)).stdout
    assert listing.count("serving (#0)") == 3

    card = assert_ok(run_cli(["models", "show", "churn", "1"], root)).stdout
    assert "trained by          trainer" in card
    assert "approved for prod by alice" in card
    assert "promote to staging (release #0)" in card


def test_rollback_and_history_at_a_time(trained: Project) -> None:
    root = trained.root
    train_version(trained, "more.csv", seed=23)
    assert_ok(run_cli(["promote", "churn", "1", "--to", "dev"], root))
    between = datetime.now(UTC)
    assert_ok(run_cli(["promote", "churn", "2", "--to", "dev"], root))

    out = assert_ok(run_cli(["rollback", "--env", "dev", "--note", "v2 is off"], root)).stdout
    assert "rolled back churn version 1 to dev as release #2" in out
    history = assert_ok(run_cli(["history", "--env", "dev"], root)).stdout
    assert re.search(r"2\s+│?\s*\S+ \S+\s+│?\s*rollback\s+│?\s*churn v1", history), history

    at = assert_ok(run_cli(["history", "--env", "dev", "--at", between.isoformat()], root)).stdout
    assert "churn version 1 served in dev at" in at
    before = (between - timedelta(days=1)).isoformat(timespec="seconds")
    assert (
        "nothing served in dev"
        in assert_ok(run_cli(["history", "--env", "dev", "--at", before], root)).stdout
    )


def test_a_rejected_version_cannot_be_promoted(trained: Project) -> None:
    root = trained.root
    assert_ok(run_cli(["reject", "churn", "1", "--by", "bob", "--note", "leaks the label"], root))
    refused = run_cli(["promote", "churn", "1", "--to", "dev"], root)
    assert refused.returncode == 1, describe(refused)
    assert "rejected for every environment by bob: leaks the label" in refused.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["promote", "churn", "9", "--to", "dev"], "no churn version 9"),
        (["promote", "churn", "1", "--to", "qa"], "no environment 'qa'"),
        (["approve", "churn", "1", "--env", "qa"], "no environment 'qa'"),
        (["rollback", "--env", "dev"], "dev has no earlier release to roll back to"),
        (["history", "--env", "dev", "--at", "yesterday"], "not an ISO 8601 time"),
        (["serve", "--env", "staging"], "nothing is released to staging yet"),
        (["predict", "data/churn.csv", "--env", "dev"], "no endpoint is running for dev"),
    ],
)
def test_deployment_mistakes_are_one_line(project: Project, args: list[str], message: str) -> None:
    assert message in assert_user_error(run_cli(args, project.root))
