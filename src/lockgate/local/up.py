"""``lockgate up``: one process that stands in for S3 notifications, Lambda, EventBridge and
the SageMaker endpoints.

The loop lists the store every ``poll_interval``: each stable new object under ``raw/`` becomes
the S3 event AWS would deliver, queued as a job for the data pipeline; each new dataset version
(with ``train.on_new_data``) a study. Every 30 s it looks at the schedule (monitoring of each
environment with a release) and at retrain requests. A supervisor thread keeps the endpoint of
every environment with a release serving. A state file (``.lockgate/up.json``) says what runs,
for ``lockgate status``.

Stopping (SIGTERM, Ctrl-C) takes no more work, gives running jobs ``stop_grace`` seconds, stops
a study still running (its child processes included) and records it interrupted, and drains the
endpoints. Starting again finds whatever arrived meanwhile: the raw objects are dispatched
again (the data handler is idempotent), the latest version without a study is trained, due
schedules run, open retrain requests are taken up, and runs a crash left open are closed.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lockgate.config import Settings
from lockgate.errors import LockgateError
from lockgate.events.s3 import ObjectEvent
from lockgate.local.runtime import Dispatch, Runtime
from lockgate.local.studies import run_study
from lockgate.local.supervisor import EndpointSpec, Supervisor
from lockgate.local.up_state import live_up, read_up_state, state_path, write_up_state
from lockgate.local.work import Job, WorkQueue
from lockgate.logs import event, log_context
from lockgate.pipelines import runs
from lockgate.pipelines.data.handler import shorten_keys
from lockgate.pipelines.runs import Trigger
from lockgate.ports.store import Store

log = logging.getLogger("lockgate.runtime")

CHECK_EVERY = 30.0
"""Seconds between looks at the schedule and the request stream (each lists the ledger)."""
RELEASES_EVERY = 5.0
"""Seconds between looks for environments that got their first release (an endpoint to start)."""
STATE_EVERY = 2.0
VERSIONS_EVERY = 1.0
"""Seconds between listings of processed/ for new dataset versions (``train.on_new_data``)."""
RETRY_FAILED_AFTER = 600.0
"""Seconds before a scheduled monitoring run that failed is tried again."""
KILL_WAIT = 10.0
"""Seconds endpoints get to drain on stop, and jobs beyond the grace period."""


@dataclass
class Hooks:
    """What ``up`` needs from the command line layer: how to run and show things."""

    say: Callable[[str], None]
    show_dispatch: Callable[[Dispatch], None]
    monitor: Callable[[str, Trigger], None]
    """Run monitoring of an environment now (in this process)."""
    study_command: Callable[[str, str | None], list[str]]
    """The command that runs a study of ``(dataset, version or None for the latest)``."""
    endpoint_spec: Callable[[str], EndpointSpec]
    env_store: Callable[[str], Store]


@dataclass
class _Schedule:
    failed_at: dict[str, float] = field(default_factory=dict)
    in_flight: set[str] = field(default_factory=set)


class LocalRuntime:
    """The pieces of ``up`` and the loop that drives them."""

    def __init__(self, settings: Settings, home: Store, hooks: Hooks) -> None:
        from lockgate.pipelines.monitoring.schedule import RateSchedule, Schedule

        self.settings = settings
        self.home = home
        self.hooks = hooks
        config = settings.file.runtime
        self.interval = config.interval_for(home.uri)
        self.grace = config.stop_grace
        self.watcher = Runtime(
            home,
            settings.datasets,
            None,
            self._train_new_version if settings.file.train.on_new_data else None,
        )
        self.queue = WorkQueue(
            config.workers, {"training": 1, "monitoring": 1}, on_error=self._job_failed
        )
        self.supervisor = (
            Supervisor(config.restart_backoff, config.restart_backoff_max, hooks.say)
            if config.serve
            else None
        )
        self.schedule = Schedule.parse(settings.file.monitor.schedule)
        self.started = datetime.now(UTC)
        # A cron schedule never run counts from when `up` started; a rate schedule is due.
        self._never_run = None if isinstance(self.schedule, RateSchedule) else self.started
        self._scheduled = _Schedule()
        self._state_file = state_path(settings)
        self._stopping = threading.Event()
        self._hurry = threading.Event()
        self._previous: dict[str, Any] | None = None
        self._next_versions = 0.0

    # -- start and stop ---------------------------------------------------------------------

    def hurry(self) -> None:
        """Stop now (a second Ctrl-C): no grace for running jobs; a study and the endpoints
        are still stopped, and what was running is still recorded interrupted."""
        self._hurry.set()

    def claim(self) -> None:
        """Refuse to run beside another ``up`` of this project; then say we are here."""
        other = live_up(self._state_file)
        if other is not None and int(other.get("pid", -1)) != os.getpid():
            raise LockgateError(
                f"lockgate up already runs for this project (pid {other['pid']}, since "
                f"{other.get('started')}); stop it first, or see `lockgate status`"
            )
        if other is None:
            self._previous = read_up_state(self._state_file)
        self.write_state()

    def _adopt(self) -> None:
        """Take over the endpoints a killed ``up`` left serving, rather than start new ones
        beside them (the old ones would hold the ports and never be stopped)."""
        previous = self._previous or {}
        self._previous = None
        if self.supervisor is None or previous.get("stopped"):
            return
        for env, entry in (previous.get("endpoints") or {}).items():
            pid = entry.get("pid") if isinstance(entry, dict) else None
            if env in self.settings.env_names and isinstance(pid, int):
                restarts = int(entry.get("restarts") or 0)
                self.supervisor.adopt(self.hooks.endpoint_spec(env), pid, restarts)

    def run(self, stop: threading.Event) -> None:
        """Run until ``stop`` is set, then stop gracefully."""
        with log_context(pipeline="runtime"):
            self.claim()
            self._adopt()
            self._close_abandoned()
            self.watcher.warm_up()
            self.queue.start()
            supervising = None
            if self.supervisor is not None:
                supervising = threading.Thread(
                    target=self._supervise, name="lockgate-supervisor", daemon=True
                )
                supervising.start()
            self._catch_up_studies()
            next_check = next_state = 0.0
            try:
                while not stop.is_set():
                    self._poll()
                    now = time.monotonic()
                    if now >= next_check:
                        next_check = now + CHECK_EVERY
                        self._check_schedule()
                    if now >= next_state:
                        next_state = now + STATE_EVERY
                        self.write_state()
                    stop.wait(self.interval)
            finally:
                self._stopping.set()
                self._shutdown(supervising)

    def _shutdown(self, supervising: threading.Thread | None) -> None:
        busy = self.queue.snapshot()
        if busy["running"] or busy["queued"]:
            self.hooks.say(
                f"stopping: {len(busy['running'])} job(s) running get {self.grace:g}s to finish"
                + (f"; {busy['queued']} queued for the next start" if busy["queued"] else "")
            )
        dropped, left = self.queue.stop(self.grace + KILL_WAIT, self._hurry)
        for title in dropped:
            event(log, logging.WARNING, "job.dropped", f"{title}: left for the next start")
        if supervising is not None and self.supervisor is not None:
            supervising.join(timeout=5)
            self.supervisor.stop(1.0 if self._hurry.is_set() else KILL_WAIT)
        if left:
            self.hooks.say(f"still running at exit, recorded interrupted: {', '.join(left)}")
        self._close_own_runs()
        self.write_state(stopped=True)

    def _close_abandoned(self) -> None:
        for store in self._stores():
            for pipeline in runs.PIPELINES:
                try:
                    closed = runs.close_abandoned(store, pipeline)
                except (LockgateError, OSError) as exc:
                    log.warning("could not read the %s runs in %s: %s", pipeline, store.uri, exc)
                    continue
                if closed:
                    self.hooks.say(
                        f"recorded {len(closed)} {pipeline} run(s) a crash left open as interrupted"
                    )

    def _close_own_runs(self) -> None:
        """Runs of this process still open (a job still running at exit) end interrupted."""
        for store in self._stores():
            for pipeline in runs.PIPELINES:
                try:
                    views = runs.recent_runs(store, pipeline, 20)
                except (LockgateError, OSError):
                    continue
                for view in views:
                    record = view.record
                    if (
                        record.get("state") == "running"
                        and record.get("pid") == os.getpid()
                        and record.get("host") == socket.gethostname()
                    ):
                        runs.interrupted(
                            store, pipeline, view.run_id, "lockgate up stopped before it finished"
                        )

    def _stores(self) -> list[Store]:
        stores = {self.home.uri: self.home}
        for env in self.settings.env_names:
            try:
                store = self.hooks.env_store(env)
            except LockgateError as exc:
                log.warning("environment %s: %s", env, exc)
                continue
            stores.setdefault(store.uri, store)
        return list(stores.values())

    # -- events ----------------------------------------------------------------------------

    def _poll(self) -> None:
        try:
            ready = self.watcher.changes()
        except Exception as exc:  # a store hiccup (network, permissions) must not end `up`
            log.warning("polling %s failed: %s", self.home.uri, exc)
            ready = []
        by_dataset: dict[str, list[ObjectEvent]] = {}
        for obj in ready:
            parts = obj.key[len(self.home.prefix) :].split("/")
            by_dataset.setdefault(parts[1] if len(parts) > 2 else "", []).append(obj)
        for dataset, objects in by_dataset.items():
            self.queue.submit(self._data_job(dataset, objects))
        if self.watcher.train_version is None or time.monotonic() < self._next_versions:
            return
        # processed/ holds every version's tensors: listing it at the upload pace would cost
        # far more than a study started a second later does.
        self._next_versions = time.monotonic() + VERSIONS_EVERY
        try:
            self.watcher.poll_versions()
        except Exception as exc:  # a failed listing is reported; `up` keeps watching
            log.warning("looking for new dataset versions failed: %s", exc)

    def _data_job(self, dataset: str, objects: list[ObjectEvent]) -> Job:
        def run(stopping: threading.Event) -> None:
            keys = [obj.key[len(self.home.prefix) :] for obj in objects]
            self.hooks.say(f"event: {len(keys)} object(s) under raw/: {shorten_keys(keys)}")
            dispatch = self.watcher.dispatch(objects)
            self.hooks.show_dispatch(dispatch)

        def merge(waiting: Job, new: Job) -> Job:
            # The waiting job's objects plus the new ones: one run prepares them all.
            merged = {obj.key: obj for obj in [*waiting.payload, *objects]}
            return self._data_job(dataset, list(merged.values()))

        title = f"data {dataset or '(unconfigured)'}"
        return Job(f"data:{dataset}", "data", title, run, merge, payload=objects)

    # -- studies ---------------------------------------------------------------------------

    def _train_new_version(self, dataset: str, version: str) -> None:
        key = f"processed/{dataset}/{version}/manifest.json"
        self.hooks.say(f"event: new dataset version {dataset} {version}: a study is queued")
        self.queue.submit(self._study_job(dataset, version, Trigger("new-version", key)))

    def _catch_up_studies(self) -> None:
        """With ``train.on_new_data``: queue a study of each dataset's latest version that no
        study has taken up (it was committed while ``up`` was not running)."""
        if not self.settings.file.train.on_new_data:
            return
        from lockgate.pipelines.data.versions import list_versions

        trained = {
            str((view.record.get("inputs") or {}).get("data_version"))
            for view in runs.recent_runs(self.home, "training", 50)
            if view.state in ("succeeded", "running")
        }
        for dataset in self.settings.datasets:
            versions = list_versions(self.home, dataset)
            if versions and versions[-1].version not in trained:
                latest = versions[-1].version
                self.hooks.say(f"catch-up: {dataset} {latest} has no study yet: queued")
                key = f"processed/{dataset}/{latest}/manifest.json"
                self.queue.submit(self._study_job(dataset, latest, Trigger("new-version", key)))

    def _study_job(
        self,
        dataset: str,
        version: str | None,
        trigger: Trigger,
        key: str | None = None,
        done: Callable[[int | None], None] | None = None,
    ) -> Job:
        def run(stopping: threading.Event) -> None:
            code = self._run_study(dataset, version, trigger, stopping)
            if done is not None:
                done(code)
            if code is None:
                return
            if code != 0:
                raise LockgateError(
                    f"the study of {dataset} exited with code {code}; see `lockgate status`"
                )

        return Job(
            key or f"training:{dataset}",
            "training",
            f"study {dataset} {version or 'latest'}",
            run,
        )

    def _run_study(
        self, dataset: str, version: str | None, trigger: Trigger, stopping: threading.Event
    ) -> int | None:
        """The exit code of the study's child process, or None if ``up`` stopped it."""
        return run_study(
            self.hooks.study_command(dataset, version),
            trigger,
            self.home,
            stopping,
            self.grace,
            self._hurry,
            self.hooks.say,
            f"study {dataset}",
        )

    # -- schedules and requests ------------------------------------------------------------

    def _check_schedule(self) -> None:
        try:
            self._monitoring_due()
            self._retrain_requested()
        except Exception as exc:  # a failed look at the ledger must not end `up`
            log.warning("checking the schedule failed: %s", exc)
            self.hooks.say(f"checking the schedule failed: {exc}")

    def _monitoring_due(self) -> None:
        from lockgate.pipelines.deployment.releases import read_history
        from lockgate.pipelines.ledger import Ledger
        from lockgate.pipelines.monitoring.job import past_runs

        now = datetime.now(UTC)
        for env in self.settings.env_names:
            key = f"monitoring:{env}"
            if key in self._scheduled.in_flight:
                continue
            failed = self._scheduled.failed_at.get(env)
            if failed is not None and time.monotonic() - failed < RETRY_FAILED_AFTER:
                continue
            store = self.hooks.env_store(env)
            if read_history(Ledger(store), env).current() is None:
                continue
            done = [run for run in past_runs(store) if run.get("env") == env]
            last = datetime.fromisoformat(done[-1]["ended"]) if done else self._never_run
            if self.schedule.next_run(last, now) > now:
                continue
            self._scheduled.in_flight.add(key)
            self.queue.submit(self._monitoring_job(env, key))

    def _monitoring_job(self, env: str, key: str) -> Job:
        expression = self.settings.file.monitor.schedule

        def run(stopping: threading.Event) -> None:
            try:
                self.hooks.say(f"schedule: monitoring {env} ({self.schedule.describe()})")
                self.hooks.monitor(env, Trigger("schedule", expression))
                self._scheduled.failed_at.pop(env, None)
            except BaseException:
                self._scheduled.failed_at[env] = time.monotonic()
                raise
            finally:
                self._scheduled.in_flight.discard(key)

        return Job(key, "monitoring", f"monitoring {env}", run)

    def _retrain_requested(self) -> None:
        from lockgate.pipelines.ledger import Ledger
        from lockgate.pipelines.monitoring.job import REQUESTS, TRAINING

        ledger = Ledger(self.home)
        handled = {
            int(entry.record.get("request", -1))
            for entry in ledger.entries(REQUESTS, TRAINING + "-handled")
        }
        for entry in ledger.entries(REQUESTS, TRAINING):
            key = f"retrain:{entry.seq}"
            if entry.seq in handled or key in self._scheduled.in_flight:
                continue
            record = entry.record
            dataset = str(record.get("dataset") or self.settings.dataset()[0])
            trigger = Trigger(
                "request",
                f"{record.get('reason')} in {record.get('env')} (request {entry.seq})",
            )
            self.hooks.say(f"retrain requested by {trigger.detail}: a study is queued")
            self._scheduled.in_flight.add(key)
            self.queue.submit(
                self._study_job(
                    dataset, None, trigger, key, self._request_done(ledger, entry.seq, key)
                )
            )

    def _request_done(self, ledger: Any, seq: int, key: str) -> Callable[[int | None], None]:
        from lockgate.pipelines.monitoring.job import REQUESTS, TRAINING

        def done(code: int | None) -> None:
            self._scheduled.in_flight.discard(key)
            if code is None:
                return  # stopped: the request stays open and runs at the next start
            ledger.append(
                REQUESTS,
                TRAINING + "-handled",
                {"request": seq, "state": "succeeded" if code == 0 else "failed", "exit": code},
            )

        return done

    # -- endpoints -------------------------------------------------------------------------

    def _supervise(self) -> None:
        from lockgate.pipelines.deployment.releases import read_history
        from lockgate.pipelines.ledger import Ledger

        assert self.supervisor is not None  # noqa: S101 - only started with one
        next_look = 0.0
        while not self._stopping.is_set():
            if time.monotonic() >= next_look:
                next_look = time.monotonic() + RELEASES_EVERY
                wanted = []
                for env in self.settings.env_names:
                    if self.settings.env_config(env).endpoint.kind != "local":
                        continue
                    try:
                        released = read_history(Ledger(self.hooks.env_store(env)), env).current()
                    except Exception as exc:  # one unreadable store must not stop the others
                        log.warning("reading the releases of %s failed: %s", env, exc)
                        continue
                    if released is not None:
                        wanted.append(self.hooks.endpoint_spec(env))
                self.supervisor.want(wanted)
            try:
                self.supervisor.check()
            except Exception as exc:  # the endpoints must stay watched whatever one round hit
                log.warning("checking the endpoints failed: %s", exc)
            self._stopping.wait(1.0)

    # -- state -----------------------------------------------------------------------------

    def write_state(self, stopped: bool = False) -> None:
        """Replace ``.lockgate/up.json`` with what runs now."""
        write_up_state(
            self._state_file,
            {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started": self.started.isoformat(timespec="seconds"),
                "store": self.home.uri,
                "interval": self.interval,
                "workers": self.queue.workers,
                "queue": self.queue.snapshot(),
                "endpoints": self.supervisor.snapshot() if self.supervisor is not None else {},
            },
            stopped,
        )

    def _job_failed(self, job: Job, exc: BaseException) -> None:
        message = runs.describe_error(exc)
        self.hooks.say(f"[failed] {job.title}: {message}")
        event(log, logging.ERROR, "job.failed", f"{job.title} failed: {message}", job=job.key)
