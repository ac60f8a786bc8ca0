"""`lockgate train`, `runs`, `report study` and `ui` as a user runs them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.cli.conftest import Project, assert_ok, assert_user_error, run_cli

pytestmark = pytest.mark.slow

TRAIN_TOML = """
[train]
trials = 3
seed = 5
[train.families.logistic]
C = [0.01, 10.0, "log"]
[train.families.random_forest]
n_estimators = [10, 30]
"""


def test_train_then_runs_then_report(project: Project) -> None:
    assert_ok(run_cli(["put", "data/churn.csv"], project.root))
    assert_ok(run_cli(["data", "prep"], project.root))
    config = project.root / "lockgate.toml"
    config.write_text(config.read_text() + TRAIN_TOML)

    out = assert_ok(run_cli(["train", "--workers", "2"], project.root, timeout=300)).stdout
    assert re.search(r"registered churn version 1 \(pending approval\): test roc_auc=0\.\d+", out)
    report = Path(re.search(r"report:\s+(\S+\.html)", out).group(1))  # type: ignore[union-attr]
    assert report.is_file()
    package = project.store() / "models" / "churn" / "1" / "package.json"
    assert json.loads(package.read_text())["metrics"]["roc_auc"] > 0.5

    runs = assert_ok(run_cli(["runs"], project.root)).stdout
    assert "churn-dv-" in runs
    assert len(re.findall(r"^\s*\d+\s+(complete|pruned|fail)", runs, re.MULTILINE)) == 3

    again = assert_ok(run_cli(["report", "study"], project.root)).stdout.strip()
    assert again.endswith(".html") and Path(again).is_file()
    assert "http://" not in Path(again).read_text()


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[train]\nmetric = "rmse"\n', "not valid for classification"),
        ("[train.families.catboost]\n", "catboost"),
        ('[train]\ntimeout = "soon"\n', "timeout"),
    ],
)
def test_bad_training_configuration_is_one_line(project: Project, toml: str, message: str) -> None:
    assert_ok(run_cli(["put", "data/churn.csv"], project.root))
    assert_ok(run_cli(["data", "prep"], project.root))
    config = project.root / "lockgate.toml"
    config.write_text(config.read_text() + toml)
    result = run_cli(["train"], project.root, timeout=120)
    assert_user_error(result)
    assert message in result.stderr


def test_train_without_a_data_version_says_what_to_do(project: Project) -> None:
    result = run_cli(["train"], project.root, timeout=120)
    assert_user_error(result)
    assert "lockgate data prep" in result.stderr


def test_runs_and_report_before_any_study(project: Project) -> None:
    out = run_cli(["runs"], project.root)
    assert out.returncode == 0 and "no study yet" in out.stderr
    assert_user_error(run_cli(["report", "study"], project.root))


def test_train_env_picks_that_environments_compute(project: Project) -> None:
    """`lockgate train --env staging` trains with staging's [envs.staging.training] table:
    SageMaker there needs an S3 store, and the one-line error says so."""
    config = project.root / "lockgate.toml"
    config.write_text(
        config.read_text()
        + '\n[envs.dev]\n[envs.staging.training]\ncompute = "sagemaker"\nrole_arn = "arn:x"\n'
    )
    local = run_cli(["train"], project.root, timeout=120)  # dev: local, no data yet
    assert_user_error(local)
    assert "lockgate data prep" in local.stderr
    result = run_cli(["train", "--env", "staging"], project.root, timeout=120)
    assert_user_error(result)
    assert "needs the environment's store on S3" in result.stderr
    assert "[envs.staging.training]" in result.stderr
