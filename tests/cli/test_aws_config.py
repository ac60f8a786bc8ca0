"""[envs.<env>.aws] profile and region reach every AWS call a command makes, unless the shell
set them (an environment variable wins over lockgate.toml, as everywhere in lockgate)."""

from __future__ import annotations

import os
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
