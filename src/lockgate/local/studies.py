"""A study run by ``lockgate up``: a ``lockgate train`` child process in its own process group,
so that stopping it stops its worker processes too, and a stopped one is recorded interrupted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable

from lockgate.pipelines import runs
from lockgate.pipelines.runs import Trigger
from lockgate.ports.store import Store

KILL_WAIT = 10.0
"""Seconds a stopped study gets to exit on SIGTERM before SIGKILL."""


def run_study(
    command: list[str],
    trigger: Trigger,
    store: Store,
    stopping: threading.Event,
    grace: float,
    hurry: threading.Event,
    say: Callable[[str], None],
    title: str,
) -> int | None:
    """Run ``command`` (a study) until it ends, or until ``grace`` seconds after ``stopping`` is
    set (at once once ``hurry`` is). The child learns its run id and trigger from the
    environment, so a study stopped here is recorded interrupted in ``store`` by this side.

    Returns:
        The child's exit code, or None if it was stopped.
    """
    run_id = runs.new_run_id("training")
    environ = dict(os.environ)
    environ[runs.TRIGGER_ENV] = f"{trigger.kind}:{trigger.detail}"
    environ[runs.RUN_ID_ENV] = run_id
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        command, env=environ, start_new_session=True, stdin=subprocess.DEVNULL
    )
    say(f"{title} started (pid {process.pid}, run {run_id})")
    stop_by: float | None = None
    while True:
        try:
            return process.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            pass
        if stopping.is_set():
            stop_by = stop_by or time.monotonic() + grace
            if time.monotonic() >= stop_by or hurry.is_set():
                break
    say(f"{title}: stopping it (pid {process.pid}) and its workers")
    stop_group(process)
    runs.interrupted(
        store,
        "training",
        run_id,
        "lockgate up stopped before the study finished; `lockgate train` (or the next "
        "`lockgate up`) resumes it",
    )
    return None


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the child's process group, then SIGKILL what is left after a while."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=KILL_WAIT)
        except subprocess.TimeoutExpired:
            continue
        # The leader is gone; its workers may linger a moment: one more KILL for them.
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        break
