"""``lockgate up`` end to end: a long-running subprocess that prepares every upload to raw/.

Every wait is a deadline loop; every process started here is killed in a ``finally``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lockgate.local.file_store import FileStore
from lockgate.pipelines.data.versions import latest_version, load_transformer, read_verified
from tests.cli.conftest import (
    Project,
    assert_ok,
    assert_user_error,
    cli_env,
    data_versions,
    describe,
    lockgate_executable,
    run_cli,
    wait_until,
)

pytestmark = pytest.mark.slow

WAIT = 30.0
"""Seconds to wait for `up` to start or for a version to appear (a cold start imports
pyarrow and scikit-learn; a loaded CI machine is slow)."""
STOP_WAIT = 15.0
STATUS = re.compile(r"^(committed|exists) churn (dv-[0-9a-f]{16})", re.MULTILINE)


@dataclass
class Up:
    """A running ``lockgate up`` and the files its output goes to."""

    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    def output(self) -> str:
        return self.stdout.read_text(encoding="utf-8", errors="replace")

    def details(self) -> str:
        return (
            f"up exit code: {self.process.poll()}\n--- up stdout\n{self.output()}"
            f"--- up stderr\n{self.stderr.read_text(encoding='utf-8', errors='replace')}"
        )

    def wait_for(self, pattern: re.Pattern[str] | str, what: str) -> re.Match[str]:
        """Wait until the output matches; fail at once if the process ended instead."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern

        def seen() -> re.Match[str] | None:
            if self.process.poll() is not None:
                pytest.fail(f"lockgate up ended while waiting for {what}\n{self.details()}")
            return regex.search(self.output())

        return wait_until(seen, WAIT, what, self.details)

    def stop(self) -> int:
        """SIGTERM, then the exit code (bounded wait)."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=STOP_WAIT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"lockgate up did not stop within {STOP_WAIT:g}s\n{self.details()}")


@contextmanager
def lockgate_up(
    project: Project,
    name: str = "up",
    root: Path | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[Up]:
    """Start ``lockgate up`` in the project (or in ``root``); it is killed on the way out
    whatever happened."""
    stdout = project.root.parent / f"{name}.stdout"
    stderr = project.root.parent / f"{name}.stderr"
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        process = subprocess.Popen(
            [str(lockgate_executable()), "up"],
            cwd=root or project.root,
            env=cli_env(env),
            stdout=out,
            stderr=err,
        )
        try:
            yield Up(process, stdout, stderr)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=STOP_WAIT)


def wait_for_versions(project: Project, count: int, up: Up) -> list[dict[str, Any]]:
    def enough() -> list[dict[str, Any]] | None:
        versions = data_versions(project.root)
        assert len(versions) <= count, versions
        return versions if len(versions) == count else None

    return wait_until(enough, WAIT, f"{count} committed version(s)", up.details)


def put(project: Project, *files: str) -> None:
    assert_ok(run_cli(["put", *files], project.root))


def temp_files(store: Path) -> list[str]:
    """Leftover temp files anywhere in the store folder, the store's own folders included."""
    return [
        os.path.join(folder, name)
        for folder, _, names in os.walk(store)
        for name in names
        if name.startswith(".lockgate-tmp")
    ]


def test_up_prepares_each_upload_and_stops_cleanly_on_sigterm(project: Project) -> None:
    second = project.write_csv("churn-02.csv", seed=8)

    with lockgate_up(project) as up:
        up.wait_for("lockgate up: watching", "up to start watching")

        put(project, "data/churn.csv")
        (first_version,) = wait_for_versions(project, 1, up)
        put(project, f"data/{second.name}")
        versions = wait_for_versions(project, 2, up)

        assert versions[0] == first_version
        assert [s["key"] for s in versions[1]["sources"]] == [
            "raw/churn/churn-02.csv",
            "raw/churn/churn.csv",
        ]
        up.wait_for(r"event: 1 object\(s\) under raw/: raw/churn/churn-02\.csv", "the second event")
        assert up.stop() == 0, up.details()
        assert "lockgate up: stopped" in up.output()
        assert "Traceback" not in up.details()


def test_up_catches_up_on_an_upload_made_while_it_was_not_running(project: Project) -> None:
    put(project, "data/churn.csv")
    assert data_versions(project.root) == []

    with lockgate_up(project) as up:
        (version,) = wait_for_versions(project, 1, up)

        up.wait_for(STATUS, "the prepared version in up's output")
        assert f"committed churn {version['version']}" in up.output()
        assert "raw/churn/churn.csv" in up.output()
        assert up.stop() == 0, up.details()


def test_a_second_up_in_the_same_project_is_refused(project: Project) -> None:
    with lockgate_up(project) as up:
        up.wait_for("lockgate up: watching", "up to start watching")

        second = run_cli(["up"], project.root)

        line = assert_user_error(second)
        assert "lockgate up already runs for this project" in line
        assert f"pid {up.process.pid}" in line
        assert up.process.poll() is None, up.details()
        assert up.stop() == 0, up.details()


def test_two_ups_and_a_concurrent_prep_commit_exactly_one_version(project: Project) -> None:
    # Two machines watching one store: the second `up` runs from another folder (one `up` per
    # project folder) with the first one's store.
    other = project.root.parent / "other-machine"
    other.mkdir()
    shutil.copy(project.root / "lockgate.toml", other / "lockgate.toml")
    shared = {"LOCKGATE_STORE": project.store().as_uri()}
    with ExitStack() as stack:
        ups = [
            stack.enter_context(lockgate_up(project, "up-1")),
            stack.enter_context(lockgate_up(project, "up-2", other, shared)),
        ]
        for up in ups:
            up.wait_for("lockgate up: watching", "up to start watching")

        put(project, "data/churn.csv")
        prep = subprocess.Popen(
            [str(lockgate_executable()), "data", "prep"],
            cwd=project.root,
            env=cli_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            prep_out, prep_err = prep.communicate(timeout=60)
        finally:
            if prep.poll() is None:
                prep.kill()
                prep.wait(timeout=STOP_WAIT)
        assert prep.returncode == 0, f"data prep failed\n{prep_out}\n{prep_err}"
        for up in ups:
            up.wait_for(STATUS, "up's run of the data pipeline")
        statuses = [
            match
            for out in [prep_out] + [up.output() for up in ups]
            for match in STATUS.findall(out)
        ]

        assert len(statuses) == 3, "\n".join(up.details() for up in ups) + prep_out
        assert [status for status, _ in statuses].count("committed") == 1, statuses
        assert len({version for _, version in statuses}) == 1, statuses
        assert len(data_versions(project.root)) == 1
        assert temp_files(project.store()) == []
        store = FileStore(project.store().as_uri())
        manifest = latest_version(store, "churn")
        for name in manifest.files:
            read_verified(store, manifest, name)
        for up in ups:
            assert up.stop() == 0, up.details()


LATE_RUN = """
from lockgate.config import load_settings
from lockgate.pipelines.data import prepare
from lockgate.wiring import open_store

settings = load_settings()
store = open_store(settings.store_uri)
name, config = settings.dataset()
exists = store.exists
# A run that looked for the manifest just before another run committed it.
store.exists = lambda key: False if key.endswith("/manifest.json") else exists(key)
print(prepare(store, name, config).status)
"""


def test_a_run_that_loses_the_commit_race_leaves_the_version_intact(project: Project) -> None:
    put(project, "data/churn.csv")
    assert_ok(run_cli(["data", "prep"], project.root))

    late = subprocess.run(
        [sys.executable, "-c", LATE_RUN],
        cwd=project.root,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert_ok(late)
    assert late.stdout.strip() == "exists", describe(late)
    store = FileStore(project.store().as_uri())
    load_transformer(store, latest_version(store, "churn"))
