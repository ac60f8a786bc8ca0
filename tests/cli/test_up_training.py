"""``lockgate up`` with ``train.on_new_data``: an upload becomes a version, then a model."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lockgate.config import DatasetConfig
from lockgate.local.file_store import FileStore
from lockgate.local.runtime import Runtime
from lockgate.pipelines.data import prepare
from tests.cli.conftest import Project, wait_until
from tests.cli.test_up import lockgate_up, put

TRAIN_ON_NEW_DATA = """
[train]
on_new_data = true
trials = 2
[train.families.logistic]
"""


@pytest.mark.slow
def test_a_new_version_under_up_trains_and_registers_a_model(project: Project) -> None:
    config = project.root / "lockgate.toml"
    config.write_text(config.read_text() + TRAIN_ON_NEW_DATA)
    with lockgate_up(project) as up:
        up.wait_for("training on new versions", "up to start watching processed/ too")
        put(project, "data/churn.csv")
        found = wait_until(
            lambda: re.search(r"registered churn version 1 \(pending approval\)", up.output()),
            120,
            "the new version to be trained and registered",
            up.details,
        )
        assert found
        assert re.search(r"event: new dataset version churn dv-[0-9a-f]{16}", up.output())
        assert up.stop() == 0
    assert (project.store() / "models" / "churn" / "1" / "package.json").is_file()


def test_runtime_triggers_training_only_for_versions_committed_while_it_watches(
    file_store: FileStore, churn_config: DatasetConfig, churn_csv: object, tmp_path: Path
) -> None:
    make = churn_csv  # the shared fixture writes churn exports
    file_store.put_file("raw/churn/a.csv", make("a.csv", rows=300))  # type: ignore[operator]
    first = prepare(file_store, "churn", churn_config).version
    trained: list[tuple[str, str]] = []
    runtime = Runtime(
        file_store, {"churn": churn_config}, None, lambda d, v: trained.append((d, v))
    )

    assert runtime.poll_versions() == []  # the version that existed at start is known, not new
    file_store.put_file("raw/churn/b.csv", make("b.csv", rows=300, seed=2))  # type: ignore[operator]
    second = prepare(file_store, "churn", churn_config).version
    runtime.poll_versions()
    runtime.poll_versions()

    assert first != second
    assert trained == [("churn", second)]
