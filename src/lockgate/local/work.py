"""The local runtime's work queue: what events and schedules ask for, run with bounded
concurrency.

A job has a key (``data:churn``, ``training:churn``, ``monitoring:staging``): two jobs with one
key never run at once, and a job submitted while another with its key is still waiting is merged
into it, so a burst of 50 uploads to one dataset becomes one or two runs of its pipeline rather
than 50 (each run prepares from every raw object present, so nothing is lost by merging). A
lane (``data``, ``training``, ``monitoring``) caps how many of its jobs run at once: a study
already uses every core, so studies run one at a time.

Nothing here is durable, by design: the store is. Whatever the queue held when ``up`` stopped
is found again when it starts (raw objects, versions without a study, due schedules, open
retrain requests).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lockgate.logs import event

log = logging.getLogger("lockgate.runtime")


@dataclass
class Job:
    """One piece of work.

    Args:
        key: jobs with the same key never run at once, and merge while waiting.
        lane: jobs of a lane run at most ``lane_limits[lane]`` at once.
        run: does the work; ``stopping`` is set when ``up`` is stopping (a job that can stop
            early -- a study in a child process -- watches it).
        merge: what this waiting job becomes when ``other`` (same key) is submitted; default:
            ``other`` replaces it.
    """

    key: str
    lane: str
    title: str
    run: Callable[[threading.Event], None]
    merge: Callable[[Job, Job], Job] | None = None
    payload: Any = None
    """What the job works on, for ``merge`` (the data pipeline's: the objects of its event)."""
    submitted: float = field(default_factory=time.monotonic)


@dataclass
class Running:
    job: Job
    started: float
    thread: threading.Thread


class WorkQueue:
    """Runs submitted jobs on ``workers`` threads; see the module docstring for the rules."""

    def __init__(
        self,
        workers: int,
        lane_limits: Mapping[str, int] | None = None,
        on_error: Callable[[Job, BaseException], None] | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.workers = workers
        self.lane_limits = dict(lane_limits or {})
        self.on_error = on_error
        self._waiting: list[Job] = []
        self._running: dict[str, Running] = {}
        self._lock = threading.Condition()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self.done = 0
        self.failed = 0

    def start(self) -> None:
        for index in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"lockgate-job-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def submit(self, job: Job) -> bool:
        """Queue ``job``; False if it was merged into a waiting job with its key (or ``up`` is
        stopping and takes no more work)."""
        with self._lock:
            if self._stopping.is_set():
                return False
            for index, waiting in enumerate(self._waiting):
                if waiting.key == job.key:
                    merged = job.merge(waiting, job) if job.merge else job
                    merged.submitted = waiting.submitted
                    self._waiting[index] = merged
                    return False
            self._waiting.append(job)
            self._lock.notify_all()
            return True

    def snapshot(self) -> dict[str, Any]:
        """What is waiting and running, for ``up``'s state file and ``status``."""
        with self._lock:
            return {
                "queued": len(self._waiting),
                "waiting": [job.title for job in self._waiting],
                "running": [running.job.title for running in self._running.values()],
                "done": self.done,
                "failed": self.failed,
            }

    def busy(self) -> bool:
        with self._lock:
            return bool(self._waiting or self._running)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing waits or runs; False if ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._waiting or self._running:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, 0.5))
        return True

    def stop(
        self, grace: float, hurry: threading.Event | None = None
    ) -> tuple[list[str], list[str]]:
        """Take no more work, drop what waits, give running jobs ``grace`` seconds (their
        ``stopping`` event is set at once), or less if ``hurry`` is set meanwhile. Returns
        (dropped titles, still running titles)."""
        with self._lock:
            self._stopping.set()
            dropped = [job.title for job in self._waiting]
            self._waiting.clear()
            self._lock.notify_all()
        deadline = time.monotonic() + grace
        with self._lock:
            while self._running and time.monotonic() < deadline:
                if hurry is not None and hurry.is_set():
                    break
                self._lock.wait(min(0.2, max(deadline - time.monotonic(), 0.0)))
            left = [running.job.title for running in self._running.values()]
        return dropped, left

    def _next(self) -> Job | None:
        """The oldest waiting job that may run now (caller holds the lock)."""
        lanes: dict[str, int] = {}
        for running in self._running.values():
            lanes[running.job.lane] = lanes.get(running.job.lane, 0) + 1
        for index, job in enumerate(self._waiting):
            if job.key in self._running:
                continue
            limit = self.lane_limits.get(job.lane)
            if limit is not None and lanes.get(job.lane, 0) >= limit:
                continue
            return self._waiting.pop(index)
        return None

    def _work(self) -> None:
        while True:
            with self._lock:
                job = self._next()
                while job is None:
                    if self._stopping.is_set():
                        return
                    self._lock.wait(0.5)
                    job = self._next()
                self._running[job.key] = Running(job, time.monotonic(), threading.current_thread())
            waited = time.monotonic() - job.submitted
            event(
                log, logging.INFO, "job.started", f"{job.title}: started", waited=round(waited, 3)
            )
            ok = True
            try:
                job.run(self._stopping)
            except BaseException as exc:  # one failed job must not end `up`; it is recorded
                ok = False
                try:
                    if self.on_error is None:
                        raise
                    self.on_error(job, exc)
                except BaseException:  # reporting failed too: log it, keep the worker
                    log.exception("%s failed", job.title)
            finally:
                with self._lock:
                    del self._running[job.key]
                    self.done += 1
                    self.failed += 0 if ok else 1
                    self._lock.notify_all()
