"""What `lockgate up` runs on a clock: monitoring on its schedule, retrain requests."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from lockgate.cli.output import console, stage
from lockgate.errors import LockgateError

if TYPE_CHECKING:
    from lockgate.config import Settings
    from lockgate.ports.store import Store

CHECK_EVERY = 30.0
"""Seconds between looks at the schedule and the request stream (each look lists the ledger)."""


class Scheduled:
    """Runs each environment's monitoring job when its schedule says, and acts on retrain
    requests monitoring left in the home ledger."""

    def __init__(self, settings: Settings, home: Store, check_every: float = CHECK_EVERY) -> None:
        from lockgate.pipelines.monitoring.schedule import RateSchedule, Schedule

        self.settings = settings
        self.home = home
        self.schedule = Schedule.parse(settings.file.monitor.schedule)
        self.check_every = check_every
        self._next_check = 0.0
        # A cron schedule never run counts from when `up` started (so its next time is not
        # pushed past at every check); a rate schedule never run is due at once.
        self.started = datetime.now(UTC)
        self._never_run = None if isinstance(self.schedule, RateSchedule) else self.started

    def describe(self) -> str:
        return (
            f"{self.settings.file.monitor.schedule} ({self.schedule.describe()}) for every "
            "environment with a release"
        )

    def tick(self) -> None:
        if time.monotonic() < self._next_check:
            return
        self._next_check = time.monotonic() + self.check_every
        self._monitor_due()
        self._retrain_requested()

    def _monitor_due(self) -> None:
        from lockgate.cli.monitoring import monitor_env, print_result
        from lockgate.pipelines.deployment.releases import read_history
        from lockgate.pipelines.ledger import Ledger
        from lockgate.pipelines.monitoring.job import past_runs
        from lockgate.wiring import open_store

        now = datetime.now(UTC)
        for env in self.settings.env_names:
            store = open_store(self.settings.for_env(env).store_uri)
            if read_history(Ledger(store), env).current() is None:
                continue
            runs = [run for run in past_runs(store) if run.get("env") == env]
            last = datetime.fromisoformat(runs[-1]["ended"]) if runs else self._never_run
            if self.schedule.next_run(last, now) > now:
                continue
            console.print(f"schedule: monitoring {env} ({self.schedule.describe()})")
            print_result(monitor_env(self.settings, env, store, trigger="schedule"))

    def _retrain_requested(self) -> None:
        from lockgate.cli.training import print_training, run_training
        from lockgate.pipelines.ledger import Ledger
        from lockgate.pipelines.monitoring.job import REQUESTS, TRAINING

        ledger = Ledger(self.home)
        handled = {
            int(entry.record.get("request", -1))
            for entry in ledger.entries(REQUESTS, TRAINING + "-handled")
        }
        for entry in ledger.entries(REQUESTS, TRAINING):
            if entry.seq in handled:
                continue
            stage(f"retrain requested by {entry.record.get('reason')} in {entry.record.get('env')}")
            dataset = entry.record.get("dataset")
            named = (
                self.settings
                if not dataset
                else self.settings.model_copy(update={"dataset_override": str(dataset)})
            )
            # Recorded as handled once the study ended (either way): a request whose study a
            # crash interrupted runs again when `up` restarts, and resumes the study.
            try:
                result = run_training(named, self.home)
            except LockgateError as exc:
                ledger.append(
                    REQUESTS,
                    TRAINING + "-handled",
                    {"request": entry.seq, "state": "failed", "error": str(exc)},
                )
                raise
            ledger.append(
                REQUESTS,
                TRAINING + "-handled",
                {"request": entry.seq, "state": "succeeded", "version": result.model_version},
            )
            print_training(result)
