"""A Lambda handler's cold start configures the 'lockgate' loggers for the whole process;
tests of handlers put them back as they were."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from lockgate import logs


@contextmanager
def restored_logging() -> Iterator[None]:
    """Runs the block, then restores the 'lockgate' logger and lockgate's log defaults."""
    root = logging.getLogger("lockgate")
    saved = (list(root.handlers), root.level, root.propagate, dict(logs._process_defaults))
    try:
        yield
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        handlers, level, propagate, defaults = saved
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        root.propagate = propagate
        logs._process_defaults.clear()
        logs._process_defaults.update(defaults)
