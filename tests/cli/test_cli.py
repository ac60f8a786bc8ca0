"""The ``lockgate`` command end to end: the real console script in a subprocess, a temp store."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import lockgate
from lockgate.sample.churn import CHURN_COLUMNS, CHURN_TARGET
from tests.cli.conftest import (
    ROWS,
    Project,
    assert_ok,
    assert_user_error,
    cli_env,
    data_versions,
    describe,
    run_cli,
)

VERSION_ID = re.compile(r"\bdv-[0-9a-f]{16}\b")
JUNK = bytes(range(256)) * 16
"""Binary junk with NUL bytes, named .csv as a mistaken export would be."""


def put(project: Project, *files: Path | str, args: tuple[str, ...] = ()) -> str:
    result = assert_ok(run_cli([*args, "put", *map(str, files)], project.root))
    return result.stdout


# -- init --------------------------------------------------------------------------------------


def test_init_writes_lockgate_toml_with_the_inferred_column_kinds(project: Project) -> None:
    config = tomllib.loads((project.root / "lockgate.toml").read_text(encoding="utf-8"))

    assert config["default_dataset"] == "churn"
    churn = config["datasets"]["churn"]
    assert churn["target"] == CHURN_TARGET
    assert churn["task"] == "classification"
    assert churn["columns"] == CHURN_COLUMNS


def test_init_refuses_to_overwrite_lockgate_toml_without_force(project: Project) -> None:
    path = project.root / "lockgate.toml"
    before = path.read_bytes()
    args = ["init", "--dataset", "customers", "--from", "data/churn.csv", "--target", "churned"]

    message = assert_user_error(run_cli(args, project.root))
    assert "--force" in message
    assert path.read_bytes() == before

    assert_ok(run_cli([*args, "--force"], project.root))
    assert tomllib.loads(path.read_text(encoding="utf-8"))["default_dataset"] == "customers"


def test_init_writes_the_file_lockgate_config_names(project: Project) -> None:
    env = {"LOCKGATE_CONFIG": "other.toml"}
    args = ["init", "--dataset", "other", "--from", "data/churn.csv", "--target", "churned"]

    assert_ok(run_cli(args, project.root, env))

    assert (project.root / "other.toml").is_file()


# -- put / ls / get ----------------------------------------------------------------------------


def test_put_uploads_to_raw_dataset_and_ls_lists_it_with_its_size(project: Project) -> None:
    size = project.csv.stat().st_size
    assert 1_000 <= size < 1_000_000  # the size below is printed in KB

    out = put(project, "data/churn.csv")

    assert "raw/churn/churn.csv" in out
    stored = project.store() / "raw" / "churn" / "churn.csv"
    assert stored.read_bytes() == project.csv.read_bytes()
    listing = assert_ok(run_cli(["ls", "raw/"], project.root)).stdout
    row = next(line.split() for line in listing.splitlines() if "raw/churn/churn.csv" in line)
    assert row[1:3] == [f"{size / 1000:.1f}", "KB"]
    assert "1 object(s)" in listing
    (record,) = [
        json.loads(line)
        for line in assert_ok(run_cli(["ls", "--json", "raw/"], project.root)).stdout.splitlines()
    ]
    assert record["key"] == "raw/churn/churn.csv"
    assert record["size"] == size


def test_ls_of_an_empty_prefix_lists_nothing(project: Project) -> None:
    listing = assert_ok(run_cli(["ls", "processed/"], project.root)).stdout

    assert "0 object(s)" in listing


def test_get_writes_the_identical_bytes_to_a_file_or_into_a_folder(project: Project) -> None:
    put(project, "data/churn.csv")
    expected = project.csv.read_bytes()

    assert_ok(run_cli(["get", "raw/churn/churn.csv", "copy.csv"], project.root))
    (project.root / "downloads").mkdir()
    assert_ok(run_cli(["get", "raw/churn/churn.csv", "downloads"], project.root))

    assert (project.root / "copy.csv").read_bytes() == expected
    assert (project.root / "downloads" / "churn.csv").read_bytes() == expected


# -- data prep / data versions -----------------------------------------------------------------


def test_data_prep_commits_a_version_then_finds_it_exists(project: Project) -> None:
    put(project, "data/churn.csv")

    first = assert_ok(run_cli(["data", "prep"], project.root)).stdout
    second = assert_ok(run_cli(["data", "prep"], project.root)).stdout

    assert first.startswith("committed churn ")
    version = VERSION_ID.search(first)
    assert version is not None
    assert second.startswith("exists churn ")
    assert VERSION_ID.findall(second)[0] == version.group()
    assert (project.store() / "processed" / "churn" / version.group() / "manifest.json").is_file()


def test_data_versions_lists_the_version_with_rows_and_source_files(project: Project) -> None:
    put(project, "data/churn.csv")
    prep = assert_ok(run_cli(["data", "prep"], project.root)).stdout
    version = VERSION_ID.findall(prep)[0]

    table = assert_ok(run_cli(["data", "versions"], project.root)).stdout

    row = next(line.split() for line in table.splitlines() if version in line)
    assert str(ROWS) in row
    assert "churn.csv" in row


def test_data_versions_json_prints_one_manifest_per_line(project: Project) -> None:
    put(project, "data/churn.csv")
    prep = assert_ok(run_cli(["data", "prep"], project.root)).stdout
    (etag_record,) = [
        json.loads(line)
        for line in assert_ok(run_cli(["ls", "--json", "raw/"], project.root)).stdout.splitlines()
    ]

    (manifest,) = data_versions(project.root)

    assert manifest["version"] == VERSION_ID.findall(prep)[0]
    assert manifest["dataset"] == "churn"
    assert manifest["target"] == CHURN_TARGET
    assert manifest["rows"]["total"] == ROWS
    assert sum(manifest["rows"][split] for split in ("train", "validation", "test")) == ROWS
    assert [source["key"] for source in manifest["sources"]] == ["raw/churn/churn.csv"]
    assert manifest["sources"][0]["etag"] == etag_record["etag"]
    assert manifest["quarantined"] == []
    assert manifest["lockgate_version"] == lockgate.__version__
    assert {"train.safetensors", "transformer.pkl", "schema.json"} <= set(manifest["files"])
    assert manifest["n_features"] > 0


def test_data_versions_without_a_version_says_how_to_make_one(project: Project) -> None:
    result = assert_ok(run_cli(["data", "versions"], project.root))

    assert result.stdout == ""
    assert "lockgate data prep" in result.stderr
    assert data_versions(project.root) == []


def test_a_binary_file_is_quarantined_and_the_good_one_still_committed(project: Project) -> None:
    junk = project.root / "data" / "junk.csv"
    junk.write_bytes(JUNK)
    put(project, "data/churn.csv", "data/junk.csv")

    out = assert_ok(run_cli(["data", "prep"], project.root)).stdout

    assert out.startswith("committed churn ")
    line = next(line for line in out.splitlines() if "quarantined" in line)
    assert "raw/churn/junk.csv" in line
    assert "[binary]" in line
    listing = assert_ok(run_cli(["ls", "quarantine/"], project.root)).stdout
    (folder,) = set(re.findall(r"quarantine/churn/[0-9a-f]+/", listing))
    assert folder + "junk.csv" in listing
    assert folder + "error.json" in listing
    assert_ok(run_cli(["get", folder + "error.json", "error.json"], project.root))
    error = json.loads((project.root / "error.json").read_text(encoding="utf-8"))
    assert error["file"] == "raw/churn/junk.csv"
    assert error["rule"] == "binary"
    assert (project.store() / folder / "junk.csv").read_bytes() == JUNK
    assert (project.store() / "raw" / "churn" / "junk.csv").read_bytes() == JUNK
    (manifest,) = data_versions(project.root)
    assert [source["key"] for source in manifest["sources"]] == ["raw/churn/churn.csv"]
    assert [item["key"] for item in manifest["quarantined"]] == ["raw/churn/junk.csv"]


def test_data_prep_exits_non_zero_when_every_file_is_quarantined(project: Project) -> None:
    (project.root / "data" / "junk.csv").write_bytes(JUNK)
    put(project, "data/junk.csv")

    result = run_cli(["data", "prep"], project.root)

    assert "all_quarantined" in result.stdout, describe(result)
    assert result.returncode == 1, describe(result)


def test_a_usage_error_is_reported_as_usage_not_as_an_unexpected_error(project: Project) -> None:
    result = run_cli(["put"], project.root)

    assert result.returncode == 2, describe(result)
    assert "unexpected error" not in result.stderr, describe(result)
    assert "Missing argument" in result.stderr, describe(result)


def test_data_prep_writes_the_same_bytes_in_every_process(project: Project) -> None:
    put(project, "data/churn.csv", args=("--store", "one"))
    put(project, "data/churn.csv", args=("--store", "two"))
    assert_ok(run_cli(["--store", "one", "data", "prep"], project.root))
    assert_ok(run_cli(["--store", "two", "data", "prep"], project.root))

    one = project.root / "one" / "processed" / "churn"
    two = project.root / "two" / "processed" / "churn"
    files = sorted(path.relative_to(one) for path in one.rglob("*") if path.is_file())
    assert files == sorted(path.relative_to(two) for path in two.rglob("*") if path.is_file())
    differ = [
        str(name)
        for name in files
        if name.name != "manifest.json" and (one / name).read_bytes() != (two / name).read_bytes()
    ]
    assert differ == []


# -- user errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(
            ["get", "raw/churn/nope.csv", "out.csv"], "raw/churn/nope.csv", id="get-missing"
        ),
        pytest.param(["--config", "bad.toml", "ls"], "bad.toml is not valid TOML", id="bad-toml"),
        pytest.param(["--store", "ftp://x", "ls"], "ftp://x", id="unknown-scheme"),
        pytest.param(["put", "data/missing.csv"], "data/missing.csv", id="put-missing-file"),
    ],
)
def test_a_user_error_is_one_line_on_stderr_and_exit_1(
    project: Project, args: list[str], expected: str
) -> None:
    (project.root / "bad.toml").write_text("datasets = [\n", encoding="utf-8")

    message = assert_user_error(run_cli(args, project.root))

    assert expected in message
    assert not (project.root / "out.csv").exists()
    assert not (project.store() / "raw").exists()


def test_an_unknown_store_scheme_lists_the_valid_ones(project: Project) -> None:
    message = assert_user_error(run_cli(["--store", "ftp://x", "ls"], project.root))

    assert "file://" in message
    assert "s3://" in message


def test_data_prep_without_a_configured_dataset_says_to_run_init(tmp_path: Path) -> None:
    message = assert_user_error(run_cli(["data", "prep"], tmp_path))

    assert "lockgate init" in message


def test_lockgate_config_variable_is_read_like_the_flag(project: Project) -> None:
    (project.root / "bad.toml").write_text("datasets = [\n", encoding="utf-8")

    message = assert_user_error(run_cli(["ls"], project.root, {"LOCKGATE_CONFIG": "bad.toml"}))

    assert "bad.toml is not valid TOML" in message


# -- environments and precedence ---------------------------------------------------------------


def test_env_staging_uses_its_own_store_folder(project: Project) -> None:
    put(project, "data/churn.csv", args=("--env", "staging"))

    assert (project.store("staging") / "raw" / "churn" / "churn.csv").is_file()
    assert not (project.store("dev") / "raw").exists()
    staging = assert_ok(run_cli(["--env", "staging", "ls", "raw/"], project.root)).stdout
    dev = assert_ok(run_cli(["ls", "raw/"], project.root)).stdout
    assert "raw/churn/churn.csv" in staging
    assert ".lockgate/staging/store" in staging
    assert "0 object(s)" in dev


def test_lockgate_env_variable_is_honoured_and_the_flag_beats_it(project: Project) -> None:
    env = {"LOCKGATE_ENV": "staging"}

    assert_ok(run_cli(["put", "data/churn.csv"], project.root, env))
    assert (project.store("staging") / "raw" / "churn" / "churn.csv").is_file()
    assert not (project.store("dev") / "raw").exists()

    assert_ok(run_cli(["--env", "prod", "put", "data/churn.csv"], project.root, env))
    assert (project.store("prod") / "raw" / "churn" / "churn.csv").is_file()


def test_lockgate_store_variable_is_honoured_and_the_store_flag_beats_it(
    project: Project, tmp_path: Path
) -> None:
    from_env, from_flag = tmp_path / "env-store", tmp_path / "flag-store"
    env = {"LOCKGATE_STORE": from_env.as_uri()}

    assert_ok(run_cli(["put", "data/churn.csv"], project.root, env))
    assert (from_env / "raw" / "churn" / "churn.csv").is_file()
    assert not project.store().exists()

    assert_ok(run_cli(["--store", str(from_flag), "put", "data/churn.csv"], project.root, env))
    assert (from_flag / "raw" / "churn" / "churn.csv").is_file()
    assert sorted(p.name for p in (from_env / "raw" / "churn").iterdir()) == ["churn.csv"]


def test_lockgate_store_variable_beats_the_store_in_lockgate_toml(
    project: Project, tmp_path: Path
) -> None:
    config = project.root / "lockgate.toml"
    config.write_text(
        config.read_text(encoding="utf-8") + '\n[envs.dev]\nstore = "toml-store"\n',
        encoding="utf-8",
    )

    assert_ok(run_cli(["put", "data/churn.csv"], project.root))
    assert (project.root / "toml-store" / "raw" / "churn" / "churn.csv").is_file()

    from_env = tmp_path / "env-store"
    assert_ok(run_cli(["put", "data/churn.csv"], project.root, {"LOCKGATE_STORE": str(from_env)}))
    assert (from_env / "raw" / "churn" / "churn.csv").is_file()


# -- help and version --------------------------------------------------------------------------


def test_help_lists_the_commands(tmp_path: Path) -> None:
    out = assert_ok(run_cli(["--help"], tmp_path)).stdout
    data = assert_ok(run_cli(["data", "--help"], tmp_path)).stdout

    listed = set(re.findall(r"^  (\w+)  ", out, flags=re.MULTILINE))
    assert {"init", "put", "ls", "get", "data", "up", "demo"} <= listed
    assert {"prep", "versions"} <= set(re.findall(r"^  (\w+)  ", data, flags=re.MULTILINE))
    for option in ("--config", "--env", "--store", "--version"):
        assert option in out


HELP_IMPORTS = """
import json
import sys

sys.argv = ["lockgate", "--help"]
from lockgate.cli.app import main

try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
heavy = ("pandas", "sklearn", "mlflow", "boto3", "botocore", "pyarrow", "optuna", "torch")
print(json.dumps({"code": code, "heavy": sorted(name for name in heavy if name in sys.modules)}))
"""


def test_help_does_not_import_heavy_modules(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", HELP_IMPORTS],
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert_ok(result)
    assert "Commands" in result.stdout
    report = json.loads(result.stdout.splitlines()[-1])
    assert report == {"code": 0, "heavy": []}


def test_version_prints_the_package_version(tmp_path: Path) -> None:
    result = assert_ok(run_cli(["--version"], tmp_path))

    assert result.stdout.strip() == f"lockgate {lockgate.__version__}"
