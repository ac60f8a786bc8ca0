"""What `lockgate up` runs on its clock: monitoring when the schedule says, retrain requests
once each. The monitoring job and the study themselves have their own tests; here they are
replaced by recorders, so what is checked is when `up` starts them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from lockgate.cli import monitoring, training
from lockgate.cli.schedules import Scheduled
from lockgate.config import load_settings
from lockgate.local.file_store import FileStore
from lockgate.pipelines.ledger import Ledger
from lockgate.pipelines.monitoring.job import MONITORING, REQUESTS, RUNS, TRAINING


@pytest.fixture
def project(tmp_path: Path) -> Path:
    config = tmp_path / "lockgate.toml"
    config.write_text(
        '[datasets.churn]\ntarget = "churned"\n[datasets.churn.columns]\nx = "numeric"\n'
        '[monitor]\nschedule = "rate(1 hour)"\n'
    )
    return config


def test_up_monitors_released_environments_when_due_and_retrains_once_per_request(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(project, environ={})
    dev = FileStore(settings.for_env("dev").store_uri)
    Ledger(dev).append(
        "releases",
        "dev",
        {
            "action": "promote",
            "model": "churn",
            "version": 1,
            "package_sha256": "a" * 64,
            "package_prefix": "m/",
        },
    )
    monitored: list[tuple[str, str]] = []

    def fake_monitor(
        settings: Any, env: str, store: Any, window: Any = None, trigger: str = "", now: Any = None
    ) -> Any:
        monitored.append((env, trigger))
        Ledger(store).append(RUNS, MONITORING, {"env": env, "ended": datetime.now(UTC).isoformat()})
        return None

    trained: list[str | None] = []

    class Result:
        model_version = 2

    def fake_train(named: Any, store: Any, *args: Any, **kwargs: Any) -> Result:
        trained.append(named.dataset_override)
        return Result()

    monkeypatch.setattr(monitoring, "monitor_env", fake_monitor)
    monkeypatch.setattr(monitoring, "print_result", lambda result: None)
    monkeypatch.setattr(training, "run_training", fake_train)
    monkeypatch.setattr(training, "print_training", lambda result: None)

    scheduled = Scheduled(settings, dev, check_every=0.0)
    scheduled.tick()
    # Only dev has a release; a rate schedule never run is due at once.
    assert monitored == [("dev", "schedule")]
    scheduled.tick()
    assert monitored == [("dev", "schedule")]  # the next run is an hour away

    Ledger(dev).append(REQUESTS, TRAINING, {"reason": "drift", "env": "dev", "dataset": "churn"})
    scheduled.tick()
    scheduled.tick()
    assert trained == ["churn"]  # once, however often `up` looks
    (handled,) = Ledger(dev).entries(REQUESTS, TRAINING + "-handled")
    assert handled.record == {"request": 0, "state": "succeeded", "version": 2}


def test_a_bad_schedule_expression_stops_up_with_the_reason(project: Path) -> None:
    from lockgate.errors import ConfigError

    project.write_text(project.read_text().replace("rate(1 hour)", "rate(2 fortnights)"))
    settings = load_settings(project, environ={})
    with pytest.raises(ConfigError, match="rate"):
        Scheduled(settings, FileStore(settings.store_uri))
