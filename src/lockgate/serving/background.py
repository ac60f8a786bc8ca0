"""A background writer's thread: work every few seconds, or at once when woken.

Data capture and serving records both write to the store off the request path; this is the
thread they share the shape of. Stopping it does no final work: the owner does that in the
stopping thread, after the loop has ended, so nothing is written twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Periodic:
    """Calls ``work`` every ``interval`` seconds, or sooner when :meth:`wake` is called."""

    def __init__(self, name: str, interval: float, work: Callable[[], None]) -> None:
        self.interval = interval
        self._work = work
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Do the work now rather than at the end of the interval."""
        self._wake.set()

    def stop(self) -> None:
        """End the loop (after any work in progress) and wait for the thread."""
        self._stopping = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stopping:
                return
            try:
                self._work()
            except Exception:  # a bug in one round must not end the writes for good
                log.exception("%s failed", self._thread.name)
