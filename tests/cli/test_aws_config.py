"""[envs.<env>.aws] profile and region reach every AWS call a command makes, unless the shell
set them (an environment variable wins over lockgate.toml, as everywhere in lockgate)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lockgate.cli.app import Context

VARIABLES = ("AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION")


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in VARIABLES:
        # Recorded by monkeypatch (set, then removed), so what the code sets is undone after.
        monkeypatch.setenv(name, "placeholder")
        monkeypatch.delenv(name)
    path = tmp_path / "lockgate.toml"
    path.write_text(
        '[envs.dev.aws]\nprofile = "team-dev"\nregion = "eu-west-1"\n'
        '[envs.prod.aws]\nprofile = "team-prod"\n'
    )
    return path


def test_the_current_environments_profile_and_region_are_used(config: Path) -> None:
    Context(config=config, env="dev", store=None).settings()
    assert os.environ["AWS_PROFILE"] == "team-dev"
    assert os.environ["AWS_DEFAULT_REGION"] == "eu-west-1"


def test_the_shell_wins_over_lockgate_toml(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "mine")
    monkeypatch.setenv("AWS_REGION", "us-east-2")
    Context(config=config, env="dev", store=None).settings()
    assert os.environ["AWS_PROFILE"] == "mine"
    assert "AWS_DEFAULT_REGION" not in os.environ


def test_an_environment_without_an_aws_table_sets_nothing(config: Path) -> None:
    Context(config=config, env="staging", store=None).settings()
    assert not any(name in os.environ for name in VARIABLES)


WITHOUT_BOTO3 = """
import sys
sys.modules["boto3"] = None  # as if lockgate[aws] were not installed
sys.argv = ["lockgate", *sys.argv[1:]]
from lockgate.cli.app import main
main()
"""


@pytest.mark.parametrize(
    ("args", "needed_for"),
    [
        (["aws", "status", "--env", "dev"], "`lockgate aws`"),
        (["train", "--env", "prod"], "training on SageMaker"),
    ],
)
def test_without_the_aws_extra_the_error_says_what_to_install(
    tmp_path: Path, args: list[str], needed_for: str
) -> None:
    (tmp_path / "lockgate.toml").write_text(
        '[datasets.churn]\ntarget = "churned"\ncolumns = { tenure = "numeric" }\n'
        '[envs.dev]\n[envs.prod]\n[envs.prod.training]\ncompute = "sagemaker"\n'
    )
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_BOTO3, *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"lockgate: error: {needed_for} needs 'boto3': pip install 'lockgate[aws]'"
    )
