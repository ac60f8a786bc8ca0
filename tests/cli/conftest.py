"""End-to-end CLI helpers: the installed ``lockgate`` console script, run in a subprocess.

Every run gets the test process's environment minus ``LOCKGATE_*`` (a developer's own
settings must not leak into a test), plus what the test passes, and a bounded timeout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from lockgate.sample.churn import write_churn_csv

LOCKGATE = Path(sys.executable).parent / "lockgate"
"""The console script installed next to the interpreter running the tests."""

ROWS = 400
"""Rows of the project's churn csv: enough for a stratified split, small enough to be quick."""

T = TypeVar("T")


def lockgate_executable() -> Path:
    """The ``lockgate`` console script; the test fails (not skips) when it is not installed."""
    if not LOCKGATE.is_file() or not os.access(LOCKGATE, os.X_OK):
        pytest.fail(
            f"no lockgate console script at {LOCKGATE}; install the package into this "
            "interpreter's environment (pip install -e .)"
        )
    return LOCKGATE


def cli_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without ``LOCKGATE_*`` variables, plus ``extra``."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("LOCKGATE_")}
    env.update(extra or {})
    return env


def run_cli(
    args: Sequence[str],
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run ``lockgate ARGS`` in ``cwd``; ``env`` adds variables to a LOCKGATE_*-free environment.

    ``subprocess.run`` kills the child if it outlives ``timeout`` (and the test then fails with
    ``TimeoutExpired``).
    """
    return subprocess.run(
        [str(lockgate_executable()), *args],
        cwd=cwd,
        env=cli_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def describe(result: subprocess.CompletedProcess[str]) -> str:
    """The command, its exit code and its output, for assertion messages."""
    return (
        f"$ {' '.join(map(str, result.args))}\nexit code {result.returncode}\n"
        f"--- stdout\n{result.stdout}--- stderr\n{result.stderr}"
    )


def assert_ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    """The command succeeded; returns it for chaining."""
    assert result.returncode == 0, describe(result)
    assert "Traceback" not in result.stderr, describe(result)
    return result


def assert_user_error(result: subprocess.CompletedProcess[str]) -> str:
    """The command failed as a user error should: one line on stderr, exit 1. Returns the line."""
    assert result.returncode == 1, describe(result)
    assert "Traceback" not in result.stdout + result.stderr, describe(result)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, describe(result)
    assert lines[0].startswith("lockgate: error: "), describe(result)
    return lines[0]


def data_versions(cwd: Path, env: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """The manifests ``lockgate data versions --json`` prints, one per line."""
    result = assert_ok(run_cli(["data", "versions", "--json"], cwd, env))
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def wait_until(
    condition: Callable[[], T | None],
    timeout: float,
    what: str,
    details: Callable[[], str] = lambda: "",
) -> T:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout:g}s for {what}\n{details()}")
        time.sleep(0.1)


@dataclass(frozen=True)
class Project:
    """A user's project folder: data/churn.csv and the lockgate.toml `lockgate init` wrote."""

    root: Path
    csv: Path

    def store(self, env: str = "dev") -> Path:
        """The embedded default store folder of ``env``."""
        return self.root / ".lockgate" / env / "store"

    def write_csv(self, name: str, seed: int, rows: int = ROWS) -> Path:
        """Another churn export under data/ (a different seed gives different customers)."""
        return write_churn_csv(self.root / "data" / name, rows, seed=seed)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """A project folder with data/churn.csv, initialised with ``lockgate init``."""
    root = tmp_path / "project"
    csv = write_churn_csv(root / "data" / "churn.csv", ROWS, seed=7)
    assert_ok(
        run_cli(
            ["init", "--dataset", "churn", "--from", "data/churn.csv", "--target", "churned"],
            cwd=root,
        )
    )
    return Project(root=root, csv=csv)
