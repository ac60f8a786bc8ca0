"""The runtime's work queue: bounded concurrency, lanes, keys that never overlap, merging, stop."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from lockgate.local.work import Job, WorkQueue

WAIT = 10.0
"""Seconds any wait in these tests may take before it fails with a message (never reached)."""


class Probe:
    """Jobs that record when they start and end and, if held, wait until the test releases them.

    ``most`` and ``lane_most`` are the largest number of jobs (of a lane) seen running at once.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.lane_running: Counter[str] = Counter()
        self.lane_most: Counter[str] = Counter()
        self.events: list[str] = []
        self.payloads: list[Any] = []
        self.stopping_seen: dict[str, bool] = {}
        self._started: dict[str, threading.Event] = {}
        self._release: dict[str, threading.Event] = {}

    def job(
        self,
        title: str,
        key: str | None = None,
        lane: str = "data",
        hold: bool = True,
        payload: Any = None,
        merge: Callable[[Job, Job], Job] | None = None,
        fail: BaseException | None = None,
    ) -> Job:
        with self._lock:
            self._started.setdefault(title, threading.Event())
            self._release.setdefault(title, threading.Event())

        def run(stopping: threading.Event) -> None:
            with self._lock:
                self.running += 1
                self.most = max(self.most, self.running)
                self.lane_running[lane] += 1
                self.lane_most[lane] = max(self.lane_most[lane], self.lane_running[lane])
                self.events.append(f"start {title}")
                self.payloads.append(payload)
            self._started[title].set()
            try:
                if hold and not self._release[title].wait(WAIT):
                    raise AssertionError(f"{title} was never released by the test")
                if fail is not None:
                    raise fail
            finally:
                with self._lock:
                    self.running -= 1
                    self.lane_running[lane] -= 1
                    self.events.append(f"end {title}")
                    self.stopping_seen[title] = stopping.is_set()

        return Job(key or title, lane, title, run, merge=merge, payload=payload)

    def wait_started(self, *titles: str) -> None:
        for title in titles:
            if not self._started[title].wait(WAIT):
                raise AssertionError(f"{title} did not start within {WAIT:g}s: {self.events}")

    def started(self, title: str) -> bool:
        return self._started[title].is_set()

    def release(self, *titles: str) -> None:
        for title in titles:
            self._release[title].set()

    def release_all(self) -> None:
        with self._lock:
            gates = list(self._release.values())
        for gate in gates:
            gate.set()

    def runs_of(self, title: str) -> int:
        with self._lock:
            return self.events.count(f"start {title}")


@pytest.fixture
def probe() -> Iterator[Probe]:
    probe = Probe()
    try:
        yield probe
    finally:
        probe.release_all()


@pytest.fixture
def make_queue(probe: Probe) -> Iterator[Callable[..., WorkQueue]]:
    """``make_queue(workers, lane_limits=None, on_error=None)``: a started queue, stopped after."""
    queues: list[WorkQueue] = []

    def make(
        workers: int,
        lane_limits: dict[str, int] | None = None,
        on_error: Callable[[Job, BaseException], None] | None = None,
    ) -> WorkQueue:
        queue = WorkQueue(workers, lane_limits, on_error)
        queue.start()
        queues.append(queue)
        return queue

    try:
        yield make
    finally:
        probe.release_all()
        for queue in queues:
            queue.stop(WAIT)


def wait_idle(queue: WorkQueue) -> None:
    if not queue.wait_idle(WAIT):
        raise AssertionError(f"the queue did not finish within {WAIT:g}s: {queue.snapshot()}")


def test_at_most_workers_jobs_run_at_once(probe: Probe, make_queue: Callable[..., WorkQueue]):
    queue = make_queue(2)
    for index in range(5):
        assert queue.submit(probe.job(f"job {index}"))

    probe.wait_started("job 0", "job 1")
    snapshot = queue.snapshot()
    assert sorted(snapshot["running"]) == ["job 0", "job 1"]
    assert snapshot["waiting"] == ["job 2", "job 3", "job 4"]
    assert snapshot["queued"] == 3

    # Each freed worker takes the oldest waiting job, and only one.
    probe.release("job 0")
    probe.wait_started("job 2")
    assert sorted(queue.snapshot()["running"]) == ["job 1", "job 2"]
    assert not probe.started("job 3")

    probe.release_all()
    wait_idle(queue)
    assert probe.most == 2
    assert queue.snapshot() == {"queued": 0, "waiting": [], "running": [], "done": 5, "failed": 0}


def test_lane_limit_holds_its_jobs_while_other_lanes_run(
    probe: Probe, make_queue: Callable[..., WorkQueue]
):
    queue = make_queue(3, {"training": 1})
    assert queue.submit(probe.job("study churn", lane="training"))
    probe.wait_started("study churn")
    assert queue.submit(probe.job("study fraud", lane="training"))
    assert queue.submit(probe.job("prepare churn", lane="data"))

    # A worker is free, yet the second study waits; the data job behind it is not held up.
    probe.wait_started("prepare churn")
    snapshot = queue.snapshot()
    assert sorted(snapshot["running"]) == ["prepare churn", "study churn"]
    assert snapshot["waiting"] == ["study fraud"]

    probe.release("prepare churn")
    assert queue.submit(probe.job("prepare fraud", lane="data"))
    probe.wait_started("prepare fraud")
    assert not probe.started("study fraud")

    probe.release("study churn")
    probe.wait_started("study fraud")
    probe.release_all()
    wait_idle(queue)
    assert probe.lane_most["training"] == 1
    assert probe.events.index("end study churn") < probe.events.index("start study fraud")
    assert queue.snapshot()["done"] == 4


def test_jobs_with_one_key_never_overlap(probe: Probe, make_queue: Callable[..., WorkQueue]):
    queue = make_queue(3)
    assert queue.submit(probe.job("first run", key="data:churn"))
    probe.wait_started("first run")
    # The first run already runs, so this one queues (it is not merged into a running job).
    assert queue.submit(probe.job("second run", key="data:churn"))
    assert queue.submit(probe.job("other dataset", key="data:fraud"))

    probe.wait_started("other dataset")
    snapshot = queue.snapshot()
    assert sorted(snapshot["running"]) == ["first run", "other dataset"]
    assert snapshot["waiting"] == ["second run"]
    assert not probe.started("second run")

    probe.release("first run")
    probe.wait_started("second run")
    probe.release_all()
    wait_idle(queue)
    assert probe.events.index("end first run") < probe.events.index("start second run")
    assert probe.runs_of("second run") == 1


def test_waiting_job_merges_with_a_merge_function(
    probe: Probe, make_queue: Callable[..., WorkQueue]
):
    def upload(objects: list[str]) -> Job:
        return probe.job("prepare churn", key="data:churn", hold=False, payload=objects, merge=both)

    def both(waiting: Job, other: Job) -> Job:
        return upload(waiting.payload + other.payload)

    queue = make_queue(1)
    assert queue.submit(probe.job("blocker", key="data:other"))
    probe.wait_started("blocker")

    assert queue.submit(upload(["raw/churn/a.csv"]))
    assert not queue.submit(upload(["raw/churn/b.csv"]))
    assert not queue.submit(upload(["raw/churn/c.csv"]))
    assert queue.snapshot()["waiting"] == ["prepare churn"]

    probe.release("blocker")
    wait_idle(queue)
    assert probe.runs_of("prepare churn") == 1
    assert probe.payloads[-1] == ["raw/churn/a.csv", "raw/churn/b.csv", "raw/churn/c.csv"]
    assert queue.snapshot()["done"] == 2


def test_waiting_job_is_replaced_without_a_merge_function(
    probe: Probe, make_queue: Callable[..., WorkQueue]
):
    # Without ``merge`` the newer job replaces the waiting one: each data run prepares from
    # every raw object present, so the newer job's run covers the older one's objects too.
    queue = make_queue(1)
    assert queue.submit(probe.job("blocker", key="data:other"))
    probe.wait_started("blocker")

    assert queue.submit(probe.job("older", key="data:churn", hold=False, payload=["a.csv"]))
    assert not queue.submit(probe.job("newer", key="data:churn", hold=False, payload=["b.csv"]))
    assert queue.snapshot()["waiting"] == ["newer"]

    probe.release("blocker")
    wait_idle(queue)
    assert probe.runs_of("newer") == 1
    assert probe.runs_of("older") == 0
    assert probe.payloads[-1] == ["b.csv"]


def test_burst_on_one_key_becomes_at_most_two_runs_covering_every_object(
    probe: Probe, make_queue: Callable[..., WorkQueue]
):
    def upload(objects: list[int]) -> Job:
        return probe.job("prepare churn", key="data:churn", hold=False, payload=objects, merge=both)

    def both(waiting: Job, other: Job) -> Job:
        return upload(waiting.payload + other.payload)

    queue = make_queue(2)
    accepted = [queue.submit(upload([index])) for index in range(50)]
    wait_idle(queue)

    runs = probe.runs_of("prepare churn")
    assert 1 <= runs <= 2
    assert accepted.count(True) == runs
    assert sorted(item for payload in probe.payloads for item in payload) == list(range(50))
    assert probe.most == 1


def test_burst_of_distinct_keys_runs_each_job_exactly_once(
    probe: Probe, make_queue: Callable[..., WorkQueue]
):
    queue = make_queue(4)
    titles = [f"prepare dataset-{index}" for index in range(50)]
    assert all(queue.submit(probe.job(title, hold=False)) for title in titles)
    wait_idle(queue)

    assert Counter(event for event in probe.events if event.startswith("start ")) == Counter(
        f"start {title}" for title in titles
    )
    assert queue.snapshot() == {"queued": 0, "waiting": [], "running": [], "done": 50, "failed": 0}
    assert 1 <= probe.most <= 4


def test_failed_job_goes_to_on_error_and_the_queue_keeps_working(
    probe: Probe, make_queue: Callable[..., WorkQueue]
):
    failures: list[tuple[str, BaseException]] = []
    queue = make_queue(1, on_error=lambda job, exc: failures.append((job.title, exc)))

    assert queue.submit(probe.job("bad study", hold=False, fail=RuntimeError("no such column")))
    wait_idle(queue)
    assert [(title, str(exc)) for title, exc in failures] == [("bad study", "no such column")]
    assert queue.snapshot()["failed"] == 1

    # The one worker survived the failure and runs the next job.
    assert queue.submit(probe.job("next study", hold=False))
    wait_idle(queue)
    assert probe.runs_of("next study") == 1
    assert len(failures) == 1
    snapshot = queue.snapshot()
    assert (snapshot["done"], snapshot["failed"]) == (2, 1)


def test_failed_job_without_on_error_is_logged(
    probe: Probe, make_queue: Callable[..., WorkQueue], caplog: pytest.LogCaptureFixture
):
    queue = make_queue(1)
    with caplog.at_level(logging.ERROR, logger="lockgate.runtime"):
        assert queue.submit(probe.job("bad study", hold=False, fail=ValueError("bad input")))
        wait_idle(queue)

    failed = [record for record in caplog.records if record.getMessage() == "bad study failed"]
    assert len(failed) == 1
    assert failed[0].exc_info is not None and "bad input" in str(failed[0].exc_info[1])
    assert queue.snapshot()["failed"] == 1


def test_stop_drops_waiting_jobs_and_tells_running_ones(make_queue: Callable[..., WorkQueue]):
    seen: dict[str, bool] = {}
    ran: list[str] = []
    started = threading.Event()

    def watches_stopping(stopping: threading.Event) -> None:
        started.set()
        seen["study"] = stopping.wait(WAIT)

    queue = make_queue(1)
    assert queue.submit(Job("training:churn", "training", "study churn", watches_stopping))
    assert started.wait(WAIT), "the study did not start"
    assert queue.submit(Job("data:churn", "data", "prepare churn", lambda s: ran.append("p")))
    assert queue.submit(Job("data:fraud", "data", "prepare fraud", lambda s: ran.append("f")))

    dropped, left = queue.stop(WAIT)

    assert dropped == ["prepare churn", "prepare fraud"]
    assert left == []  # the study saw ``stopping`` and ended within the grace
    assert seen == {"study": True}
    assert ran == []
    assert queue.snapshot()["queued"] == 0


def test_stop_returns_jobs_still_running_after_the_grace(
    probe: Probe, make_queue: Callable[..., WorkQueue]
):
    queue = make_queue(2)
    assert queue.submit(probe.job("stubborn study", lane="training"))
    probe.wait_started("stubborn study")

    dropped, left = queue.stop(0.2)

    assert (dropped, left) == ([], ["stubborn study"])
    assert queue.snapshot()["running"] == ["stubborn study"]
    probe.release("stubborn study")
    wait_idle(queue)
    assert probe.stopping_seen == {"stubborn study": True}


def test_submit_after_stop_is_refused(probe: Probe, make_queue: Callable[..., WorkQueue]):
    queue = make_queue(1)
    assert queue.stop(WAIT) == ([], [])

    assert not queue.submit(probe.job("late", hold=False))
    assert queue.snapshot()["queued"] == 0
    assert queue.wait_idle(WAIT)
    assert probe.runs_of("late") == 0


def test_wait_idle(probe: Probe, make_queue: Callable[..., WorkQueue]):
    queue = make_queue(1)
    assert queue.wait_idle(WAIT)  # nothing submitted yet
    assert not queue.busy()

    assert queue.submit(probe.job("held"))
    assert queue.submit(probe.job("behind", hold=False))
    probe.wait_started("held")
    assert queue.busy()
    assert not queue.wait_idle(0.1)

    probe.release("held")
    assert queue.wait_idle(WAIT)
    assert probe.runs_of("behind") == 1
    assert not queue.busy()


def test_needs_at_least_one_worker():
    with pytest.raises(ValueError, match="workers must be at least 1"):
        WorkQueue(0)


def test_merged_job_reports_waiting_since_its_first_submission(
    probe: Probe, make_queue: Callable[..., WorkQueue], caplog: pytest.LogCaptureFixture
):
    queue = make_queue(1)
    assert queue.submit(probe.job("blocker", key="data:other"))
    probe.wait_started("blocker")
    older = probe.job("prepare churn", key="data:churn", hold=False)
    older.submitted = time.monotonic() - 100.0  # as if the first upload came 100 s ago

    with caplog.at_level(logging.INFO, logger="lockgate.runtime"):
        assert queue.submit(older)
        assert not queue.submit(probe.job("prepare churn", key="data:churn", hold=False))
        probe.release("blocker")
        wait_idle(queue)

    started = [
        record
        for record in caplog.records
        if getattr(record, "event", None) == "job.started"
        and record.getMessage() == "prepare churn: started"
    ]
    assert len(started) == 1
    assert getattr(started[0], "fields", {})["waited"] >= 100.0
