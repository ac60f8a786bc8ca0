"""Configuration precedence: flag, then LOCKGATE_* variable, then lockgate.toml, then default."""

from __future__ import annotations

from pathlib import Path

import pytest

from lockgate.config import GatesConfig, load_settings
from lockgate.errors import ConfigError

TOML = """
default_dataset = "churn"

[datasets.churn]
target = "churned"
columns = { tenure = "numeric", plan = "categorical", id = "id" }

[datasets.wine]
target = "class"
columns = { alcohol = "numeric" }

[envs.dev]
store = "stores/dev"

[envs.prod]
store = "s3://acme-prod/lockgate"
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "lockgate.toml"
    path.write_text(TOML, encoding="utf-8")
    return path


def test_defaults_without_a_file(tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "lockgate.toml", environ={})
    assert settings.env == "dev"
    assert settings.store_uri == (tmp_path / ".lockgate" / "dev" / "store").as_uri()
    with pytest.raises(ConfigError, match="lockgate init"):
        settings.dataset()


def test_file_values_relative_to_the_file(config: Path) -> None:
    settings = load_settings(config, environ={})
    assert settings.store_uri == (config.parent / "stores" / "dev").as_uri()
    assert settings.dataset()[0] == "churn"
    assert settings.dataset()[1].feature_columns == {"tenure": "numeric", "plan": "categorical"}


def test_environment_variable_beats_file_and_flag_beats_variable(config: Path) -> None:
    environ = {"LOCKGATE_ENV": "prod", "LOCKGATE_DATASET": "wine"}
    settings = load_settings(config, environ=environ)
    assert settings.env == "prod"
    assert settings.store_uri == "s3://acme-prod/lockgate"
    assert settings.dataset()[0] == "wine"
    flagged = load_settings(config, env="staging", dataset="churn", environ=environ)
    assert flagged.env == "staging"
    assert flagged.store_uri == (config.parent / ".lockgate" / "staging" / "store").as_uri()
    assert flagged.dataset()[0] == "churn"


def test_store_override_precedence(config: Path) -> None:
    by_variable = load_settings(config, environ={"LOCKGATE_STORE": "s3://from-env/x"})
    assert by_variable.store_uri == "s3://from-env/x"
    by_flag = load_settings(config, store="file:///tmp/flag", environ={"LOCKGATE_STORE": "s3://e"})
    assert by_flag.store_uri == "file:///tmp/flag"


def test_config_path_from_variable(config: Path) -> None:
    settings = load_settings(environ={"LOCKGATE_CONFIG": str(config)})
    assert settings.config_path == config
    assert "wine" in settings.datasets


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "lockgate.toml"
    path.write_text("default_dataset = \n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(path, environ={})


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('[datasets.d]\ntarget = "y"\ncolumns = { a = "number" }\n', "datasets.d.columns.a"),
        ('[datasets.d]\ntarget = "y"\ncolumns = { y = "numeric", a = "numeric" }\n', "target"),
        ('[datasets.d]\ntarget = "y"\ncolumns = { a = "id" }\n', "feature column"),
        (
            '[datasets.d]\ntarget = "y"\ncolumns = {a="numeric"}\nprep = {test_fraction=0.6, '
            "validation_fraction=0.5}\n",
            "below 1",
        ),
        ("unknown_key = 1\n", "unknown_key"),
        ('[datasets."a/b"]\ntarget = "y"\ncolumns = {a="numeric"}\n', "store prefix"),
    ],
)
def test_invalid_values_are_reported_with_their_location(
    tmp_path: Path, text: str, where: str
) -> None:
    path = tmp_path / "lockgate.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=where):
        load_settings(path, environ={})


def test_unknown_or_ambiguous_dataset(config: Path, tmp_path: Path) -> None:
    settings = load_settings(config, environ={})
    with pytest.raises(ConfigError, match="configured: churn, wine"):
        settings.dataset("nope")
    two = tmp_path / "two.toml"
    two.write_text(TOML.replace('default_dataset = "churn"', ""), encoding="utf-8")
    with pytest.raises(ConfigError, match="pick one with --dataset"):
        load_settings(two, environ={}).dataset()


def test_default_gates_follow_the_promotion_order(tmp_path: Path) -> None:
    defaults = load_settings(tmp_path / "none.toml", environ={})
    assert defaults.env_names == ["dev", "staging", "prod"]
    assert defaults.gates("dev") == GatesConfig()
    assert defaults.gates("staging") == GatesConfig(approval=True)
    prod = defaults.gates("prod")
    assert prod.approver_not_trainer and prod.served_in == "staging"
    assert prod.min_served_requests == 1
    assert [defaults.endpoint_port(env) for env in defaults.env_names] == [8080, 8081, 8082]

    config = tmp_path / "lockgate.toml"
    config.write_text("[envs.dev]\n[envs.qa]\n[envs.live]\n[envs.live.gates]\napproval = false\n")
    custom = load_settings(config, environ={})
    assert custom.env_names == ["dev", "qa", "live"]
    assert custom.gates("qa").served_in == "dev"  # the one before it, not a missing "staging"
    assert custom.gates("live") == GatesConfig(approval=False)  # written: taken as is
    assert [custom.endpoint_port(env) for env in custom.env_names] == [8080, 8091, 8092]
    with pytest.raises(ConfigError, match="environment 'staging' is not in"):
        custom.for_env("staging")
